"""Which partition of ``__consumer_offsets`` holds a group, and so which broker (that
partition's leader) is the group's coordinator: Kafka's ``partitionFor``,
``Utils.abs(groupId.hashCode()) % offsets.topic.num.partitions``.

``hashCode`` is Java's ``String.hashCode``: ``h = 31 * h + c`` over the string's UTF-16
code units (a character outside the Basic Multilingual Plane counts as its two
surrogates), wrapping at 32 bits (signed).  ``Utils.abs`` maps ``Integer.MIN_VALUE``,
whose absolute value an int cannot hold, to 0."""

from __future__ import annotations

GROUP_METADATA_TOPIC_NAME = "__consumer_offsets"

_INT_MIN = -(1 << 31)


def java_string_hash(s: str) -> int:
    """Java's ``String.hashCode`` of ``s`` (a signed 32-bit int)."""
    data = s.encode("utf-16-be", "surrogatepass")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFF_FFFF
    return h - (1 << 32) if h & 0x8000_0000 else h


def kafka_abs(n: int) -> int:
    """Kafka's ``Utils.abs``: the absolute value, 0 for ``Integer.MIN_VALUE``."""
    return 0 if n == _INT_MIN else abs(n)


def partition_for(group_id: str, num_partitions: int) -> int:
    """The ``__consumer_offsets`` partition of ``group_id``."""
    if num_partitions <= 0:
        raise ValueError(f"num_partitions must be positive, not {num_partitions}")
    return kafka_abs(java_string_hash(group_id)) % num_partitions
