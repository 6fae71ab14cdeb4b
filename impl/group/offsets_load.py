"""Loading one partition of ``__consumer_offsets``: its log replayed from the log start
offset to the log end offset (as it is when loading starts, as Kafka's loader reads it),
offset commits and their tombstones building each group's committed offsets, group
metadata records and their tombstones each group's metadata.  The log is read in chunks
of offsets.load.buffer.size bytes, yielding to the broker's other work between them.
A record this broker cannot read (a key version of Kafka's newer consumer-group records)
is skipped with a warning."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import attrs

from impl import mutants
from impl.group import records as codec
from impl.group.records import GroupRecord, OffsetRecord
from impl.storage.errors import OffsetOutOfRangeError
from impl.wire.records import decode_records, iter_batches
from spec.state import TopicPartition

if TYPE_CHECKING:
    from impl.storage.partition_log import PartitionLog

_log = logging.getLogger(__name__)

Offsets = dict[str, dict[TopicPartition, "Committed"]]


@attrs.frozen(slots=True)
class Committed:
    """A committed offset and where its record is in the log (a later record wins).
    ``record`` None: removed by the record at ``log_offset``, remembered only while a
    commit appended before it is still waiting to be committed."""

    record: OffsetRecord | None
    log_offset: int


async def read_partition(
    log: PartitionLog | None, chunk_bytes: int
) -> tuple[dict[str, GroupRecord], Offsets]:
    """The groups' metadata and committed offsets in ``log`` (module doc)."""
    groups: dict[str, GroupRecord] = {}
    offsets: Offsets = {}
    if log is None:
        return groups, offsets
    end = log.end_offset
    position = log.start_offset
    while position < end:
        try:
            data = log.read(position, chunk_bytes, end)
        except OffsetOutOfRangeError:
            if position >= log.start_offset:
                raise
            position = log.start_offset  # the log start moved on: read from there
            continue
        if not data:
            break
        for start, header in iter_batches(data):
            position = header.last_offset + 1
            if header.is_control:
                continue
            for record in decode_records(memoryview(data)[start : start + header.size]):
                if record.key is not None:
                    replay(record.key, record.value, record.offset, groups, offsets)
        await asyncio.sleep(0)  # let the broker's other work run between chunks
    if mutants.active(mutants.COMMITTED_OFFSET_LOST_ON_COORDINATOR_MOVE) and offsets:
        del offsets[max(offsets, key=lambda g: max(c.log_offset for c in offsets[g].values()))]
    return groups, offsets


def replay(
    key_bytes: bytes,
    value: bytes | None,
    log_offset: int,
    groups: dict[str, GroupRecord],
    offsets: Offsets,
) -> None:
    """Apply the record at ``log_offset`` to what has been loaded so far."""
    try:
        key = codec.decode_key(key_bytes)
        if isinstance(key, codec.OffsetCommitKey):
            tp = TopicPartition(key.topic, key.partition)
            record = codec.decode_offset_commit_value(value)
            cache = offsets.setdefault(key.group, {})
            if record is None:
                cache.pop(tp, None)
                if not cache:
                    del offsets[key.group]
            else:
                cache[tp] = Committed(record, log_offset)
        else:
            group = codec.decode_group_metadata_value(value)
            if group is None:
                groups.pop(key.group, None)
            else:
                groups[key.group] = group
    except codec.RecordCodecError as e:
        _log.warning("skipping the record at offset %d: %s", log_offset, e)
