"""Interop tests: real, unmodified Kafka clients against a kafkaref broker subprocess."""
