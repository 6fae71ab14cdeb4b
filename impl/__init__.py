"""kafkaref's reference broker cluster.

It speaks the Kafka wire protocol over TCP, runs one OS process per broker, keeps cluster
metadata in ZooKeeper laid out as Kafka lays it out, and keeps its logs on disk.  It
depends on ``spec`` at most for shared value types, never the other way round.

Being built: this package is empty for now.
"""
