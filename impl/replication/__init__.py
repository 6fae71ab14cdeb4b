"""Replication inside a broker (cluster mode): the replica manager that makes this broker
leader or follower of each partition as ZooKeeper's partition states say (manager), the
follower's fetcher that truncates by leader epoch and then copies the leader's log
(fetcher, truncation, connection), and the settings they read (config).  The leader's side
(follower progress, high watermark, ISR changes, acks=all waits) lives with the partition
in impl.broker.partition; the ISR writes go through the manager."""
