"""The reference broker: one asyncio process speaking the Kafka wire protocol, in
single-broker mode the controller of all metadata and leader of every partition.
Run it with ``python -m impl.broker``."""
