"""The broker's ZooKeeper side: Kafka's znode layout and JSON (layout), the session bridged
to asyncio (session), registration and /cluster/id (registration), and the watches that
keep the metadata cache current and deliver partition states (metadata_sync).

Deviation from Kafka: a broker restarted while its previous registration
/brokers/ids/<id> has not expired yet waits (up to 3 x zookeeper.session.timeout.ms,
announced on stderr) for it to expire instead of exiting with NodeExists."""
