"""The Kafka wire codec: frames, request and response bodies (through kio's schemas) and
record batches.

A leaf package: it imports nothing of the broker, so the harness (which tests any Kafka
implementation through the wire only) and the broker share it.
"""
