"""The partition of ``__consumer_offsets`` a group lives in: Java's String.hashCode,
computed here by hand for known strings, then Utils.abs and the modulo."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from impl.group.partitioner import java_string_hash, kafka_abs, partition_for


def test_java_string_hash_known_vectors() -> None:
    assert java_string_hash("") == 0
    assert java_string_hash("a") == 97
    assert java_string_hash("ab") == 97 * 31 + 98  # 3105
    assert java_string_hash("hello") == 99162322
    # overflow wraps at 32 bits, signed: "polygenelubricants" hashes to Integer.MIN_VALUE
    assert java_string_hash("polygenelubricants") == -(2**31)
    # U+1F600 is two UTF-16 code units, the surrogates 0xD83D and 0xDE00
    assert java_string_hash("\U0001f600") == 0xD83D * 31 + 0xDE00
    assert java_string_hash("é") == 0xE9  # one code unit, not its two UTF-8 bytes


def test_kafka_abs() -> None:
    assert kafka_abs(-(2**31)) == 0
    assert kafka_abs(-5) == 5
    assert kafka_abs(5) == 5


def test_partition_for() -> None:
    assert partition_for("", 50) == 0
    assert partition_for("a", 50) == 97 % 50
    assert partition_for("polygenelubricants", 50) == 0  # Utils.abs(MIN_VALUE) = 0
    negative = java_string_hash("consumer-group-1")
    assert partition_for("consumer-group-1", 7) == abs(negative) % 7


@given(st.text(), st.integers(1, 1000))
def test_partition_in_range_and_hash_in_int32(group: str, partitions: int) -> None:
    assert -(2**31) <= java_string_hash(group) < 2**31
    assert 0 <= partition_for(group, partitions) < partitions
