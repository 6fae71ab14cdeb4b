"""Durable per-partition logs as Kafka keeps them on disk.

A partition is a directory of segments (``<base offset>.log`` with a sparse ``.index``),
plus the ``leader-epoch-checkpoint``, ``log-start-offset-checkpoint`` and
``recovery-point-offset-checkpoint`` files.  ``PartitionLog`` owns one partition
(append, read, roll, retention, recovery, truncation, the leader-epoch cache and the
idempotent producers' state); ``LogManager`` owns the data directory of them.
"""
