"""The broker's ZooKeeper side: Kafka's znode layout and JSON (layout), the session bridged
to asyncio (session), registration and /cluster/id (registration), and the watches that
keep the metadata cache current and deliver partition states (metadata_sync)."""
