"""The group coordinator's log: the ``__consumer_offsets`` partitions this broker leads
and the committed offsets they hold (Kafka's GroupMetadataManager, classic groups).

Loading.  When this broker becomes the leader of a partition of ``__consumer_offsets``
(``leadership_changed``, called by the replica manager, by topic creation in
single-broker mode, and by ``start`` for the logs led at startup) the partition is read
from its log start offset to its log end offset (impl.group.offsets_load): offset commits
and tombstones build the committed-offset cache, group metadata records and tombstones
the groups handed to ``ctx.groups.groups_loaded``.  Meanwhile ``status`` answers
COORDINATOR_LOAD_IN_PROGRESS for the groups of that partition; once loaded, NONE.  When
it stops leading, the partition's offsets are dropped, ``ctx.groups.partition_unloaded``
is told, and its groups get NOT_COORDINATOR.

Appends.  Offset commits and group metadata are one record batch per request, appended
through the leader (``PartitionState.append_as_leader``, acks=-1) and awaited until the
high watermark passes them (offsets.commit.timeout.ms).  Only then do committed offsets
become visible to OffsetFetch.  Errors are mapped as Kafka's GroupMetadataManager maps
them (``commit_error``, ``group_error``).  A later record wins over an earlier one by its
offset in the log, so commits completing out of order cannot go back in time.

Expiry (every offsets.retention.check.interval.ms, ``expire_offsets``): see
``expired_offsets``.  Offsets of deleted topics are removed when the topic is deleted
(``topics_deleted``).  Removed offsets get tombstones; a group left without offsets is
reported to ``ctx.groups.offsets_expired``, and so, after each expiry pass and each
deletion, is every other group held here that has none (committed or being appended),
as Kafka's cleanupGroupMetadata looks at every group: an Empty one dies there.  There is
no log cleaner here: the compacted topic keeps every record and loading replays them all."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Collection, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from impl.broker.partition import PartitionError
from impl.group import records as codec
from impl.group.offsets_load import Committed, read_partition
from impl.group.partitioner import GROUP_METADATA_TOPIC_NAME, partition_for
from impl.group.records import GroupRecord, OffsetRecord
from impl.wire.records import build_batch
from spec.errors import ErrorCode
from spec.state import TopicPartition

if TYPE_CHECKING:
    from impl.broker.context import BrokerContext

_log = logging.getLogger(__name__)

MIN_INSYNC = "min.insync.replicas"
EMPTY_STATE = "Empty"  # DescribeGroups' name of the phase


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class DescribedGroup(Protocol):
    @property
    def state(self) -> str: ...


class GroupsCallbacks(Protocol):
    """What the log calls on the membership coordinator (``ctx.groups``,
    impl.group.coordinator.GroupCoordinator)."""

    def groups_loaded(
        self, partition: int, groups: dict[str, GroupRecord], offsets_only: frozenset[str]
    ) -> None: ...

    def partition_unloaded(self, partition: int) -> None: ...

    def group_known(self, group_id: str) -> bool: ...

    def empty_since(self, group_id: str) -> int | None: ...

    def offsets_expired(self, group_id: str) -> None: ...

    def group_ids(self) -> list[str]: ...

    def describe_group(self, group_id: str) -> tuple[ErrorCode, DescribedGroup]: ...


def commit_error(code: ErrorCode) -> ErrorCode:
    """An offset commit's append error as the client gets it (storeOffsets)."""
    if code in (
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.NOT_ENOUGH_REPLICAS,
        ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode.REQUEST_TIMED_OUT,
    ):
        return ErrorCode.COORDINATOR_NOT_AVAILABLE
    if code in (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.KAFKA_STORAGE_ERROR):
        return ErrorCode.NOT_COORDINATOR
    if code in (
        ErrorCode.MESSAGE_TOO_LARGE,
        ErrorCode.RECORD_LIST_TOO_LARGE,
        ErrorCode.INVALID_FETCH_SIZE,
    ):
        return ErrorCode.INVALID_COMMIT_OFFSET_SIZE
    return code


def group_error(code: ErrorCode) -> ErrorCode:
    """A group metadata append's error as the coordinator gets it (storeGroup): the
    same as ``commit_error`` except that anything unexpected, a too large record
    included, is UNKNOWN_SERVER_ERROR."""
    mapped = commit_error(code)
    if mapped in (
        ErrorCode.NONE,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.NOT_COORDINATOR,
    ):
        return mapped
    return ErrorCode.UNKNOWN_SERVER_ERROR


def expired_offsets(
    offsets: Mapping[TopicPartition, OffsetRecord],
    now_ms: int,
    retention_ms: int,
    *,
    has_members: bool,
    empty_since: int | None,
) -> set[TopicPartition]:
    """Which of a group's offsets expire at ``now_ms`` (Kafka's removeExpiredOffsets,
    KIP-211).  None while the group has members (Kafka's expiry of the topics a Stable
    consumer group no longer subscribes to is not done here).  Otherwise an offset
    committed with a retention time (OffsetCommit v2-v4) expires at its expire
    timestamp, and the others ``retention_ms`` after the group became Empty
    (``empty_since``: a group with a protocol type) or, for a group without one (a
    simple consumer's, or one the coordinator does not hold), after their own commit."""
    if has_members:
        return set()
    out = set()
    for tp, o in offsets.items():
        if o.expire_timestamp_ms != -1:
            expired = now_ms >= o.expire_timestamp_ms
        else:
            base = o.commit_timestamp_ms if empty_since is None else empty_since
            expired = now_ms - base >= retention_ms
        if expired:
            out.add(tp)
    return out


class GroupLog:
    """The ``__consumer_offsets`` partitions of one broker (module doc)."""

    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        self._loading: dict[int, asyncio.Task[None]] = {}
        self._loaded: set[int] = set()
        self._offsets: dict[str, dict[TopicPartition, Committed]] = {}
        self._pending: dict[str, dict[TopicPartition, int]] = {}  # commits being appended
        self._expiry: asyncio.Task[None] | None = None
        self._closed = False

    # --- configuration ------------------------------------------------------------------

    @property
    def num_partitions(self) -> int:
        """The partitions of ``__consumer_offsets``: the topic's own count once it
        exists, else offsets.topic.num.partitions (Kafka's partition count lookup)."""
        info = self.ctx.topics.get(GROUP_METADATA_TOPIC_NAME)
        if info is not None:
            return info.partitions
        return self.ctx.config.get_int("offsets.topic.num.partitions")

    def partition_for(self, group_id: str) -> int:
        return partition_for(group_id, self.num_partitions)

    def _groups(self) -> GroupsCallbacks:
        return self.ctx.groups

    # --- status and reads ---------------------------------------------------------------

    def status(self, group_id: str) -> ErrorCode:
        """NONE when this broker is the group's loaded coordinator, else
        COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR or (shutting down)
        COORDINATOR_NOT_AVAILABLE."""
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        p = self.partition_for(group_id)
        if p in self._loaded:
            return ErrorCode.NONE
        if p in self._loading:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NOT_COORDINATOR

    def committed(
        self, group_id: str, partitions: Collection[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetRecord]:
        """The group's committed offsets (all, or those of ``partitions`` it has)."""
        cache = self._offsets.get(group_id, {})
        wanted = cache if partitions is None else partitions
        out = {}
        for tp in wanted:
            entry = cache.get(tp)
            if entry is not None and entry.record is not None:
                out[tp] = entry.record
        return out

    def has_offsets(self, group_id: str) -> bool:
        return bool(self.committed(group_id))

    def loaded_partitions(self) -> frozenset[int]:
        return frozenset(self._loaded)

    def loading(self) -> bool:
        """Whether some partition led here is still being loaded (Kafka's ``isLoading``)."""
        return bool(self._loading)

    # --- leadership: loading and unloading ----------------------------------------------

    def leadership_changed(self, tp: TopicPartition) -> None:
        """This broker's role for ``tp`` may have changed (any partition; only those of
        ``__consumer_offsets`` matter): load it when led here, unload it otherwise."""
        if tp.topic != GROUP_METADATA_TOPIC_NAME or self._closed:
            return
        state = self.ctx.partitions.get(tp)
        p = tp.partition
        if state is None or not state.leading:
            self._unload(p)
        elif p not in self._loaded and p not in self._loading:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # before the broker's loop runs: ``start`` loads it
            self._loading[p] = loop.create_task(self._load(p))

    def start(self) -> None:
        """Load the partitions led here already and start the periodic expiry."""
        for tp in list(self.ctx.partitions):
            self.leadership_changed(tp)
        if self._expiry is None:
            self._expiry = asyncio.get_running_loop().create_task(self._expire_periodically())

    async def close(self) -> None:
        self._closed = True
        tasks = [t for t in (self._expiry, *self._loading.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _unload(self, p: int) -> None:
        task = self._loading.pop(p, None)
        if task is not None:
            task.cancel()
        was_loaded = p in self._loaded
        self._loaded.discard(p)
        for gid in [g for g in self._offsets if self.partition_for(g) == p]:
            del self._offsets[gid]
        if was_loaded or task is not None:
            _log.info("%s-%d: unloaded", GROUP_METADATA_TOPIC_NAME, p)
            self._groups().partition_unloaded(p)

    async def _load(self, p: int) -> None:
        tp = TopicPartition(GROUP_METADATA_TOPIC_NAME, p)
        started = time.monotonic()
        try:
            log = self.ctx.logs.get(tp)
            chunk = self.ctx.config.get_int("offsets.load.buffer.size")
            groups, offsets = await read_partition(log, chunk)
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("%s: loading failed", tp)
            self._loading.pop(p, None)
            return
        if self._loading.get(p) is not asyncio.current_task():
            return  # unloaded meanwhile
        for gid, cache in offsets.items():
            self._offsets[gid] = cache
        # Groups with committed offsets but no group record (simple consumers) are held
        # too, Empty, as Kafka's loader does: they exist for OffsetCommit's checks.
        self._groups().groups_loaded(p, groups, frozenset(offsets.keys() - groups.keys()))
        del self._loading[p]
        self._loaded.add(p)
        _log.info(
            "%s: loaded %d groups and the offsets of %d in %.0f ms",
            tp,
            len(groups),
            len(offsets),
            (time.monotonic() - started) * 1000,
        )

    # --- appends ------------------------------------------------------------------------

    def _min_insync(self) -> int:
        info = self.ctx.topics.get(GROUP_METADATA_TOPIC_NAME)
        if info is not None and MIN_INSYNC in info.configs:
            return int(info.configs[MIN_INSYNC])
        return self.ctx.config.min_insync_replicas

    def _append_nowait(
        self, p: int, batch_records: list[tuple[bytes, bytes | None]], timestamp: int
    ) -> tuple[ErrorCode, int, int]:
        """Append one batch as the leader of partition ``p``: (error, base offset, the
        offset the high watermark must reach)."""
        state = self.ctx.partitions.get(TopicPartition(GROUP_METADATA_TOPIC_NAME, p))
        if state is None or not state.leading or p not in self._loaded:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER, -1, -1
        batch = bytearray(build_batch(batch_records, timestamp=timestamp))
        try:
            info = state.append_as_leader(batch, -1, self._min_insync(), timestamp)
        except PartitionError as e:
            return e.code, -1, -1
        _spawn(self._notify_data_arrived())  # wake the followers' long-polling fetches
        return ErrorCode.NONE, info.base_offset, info.last_offset + 1

    async def _append(
        self, p: int, batch_records: list[tuple[bytes, bytes | None]], timestamp: int
    ) -> tuple[ErrorCode, int]:
        """Append and wait until committed (acks=-1): (error, base offset)."""
        state = self.ctx.partitions.get(TopicPartition(GROUP_METADATA_TOPIC_NAME, p))
        code, base, committed = self._append_nowait(p, batch_records, timestamp)
        if code is not ErrorCode.NONE or state is None:
            return code, -1
        timeout_s = self.ctx.config.get_int("offsets.commit.timeout.ms") / 1000
        code = await state.wait_for_high_watermark(committed, timeout_s, self._min_insync())
        return code, base

    async def store_group(self, group_id: str, record: GroupRecord | None) -> ErrorCode:
        """Write the group's metadata (None: its tombstone) and wait until committed."""
        status = self.status(group_id)
        if status is not ErrorCode.NONE:
            return status
        key = codec.encode_group_metadata_key(group_id)
        value = None if record is None else codec.encode_group_metadata_value(record)
        code, _ = await self._append(self.partition_for(group_id), [(key, value)], now_ms())
        return group_error(code)

    async def commit_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, OffsetRecord]
    ) -> ErrorCode:
        """Write the offsets as one batch, wait until committed, then make them visible
        to ``committed``.  The error applies to every partition."""
        status = self.status(group_id)
        if status is not ErrorCode.NONE or not offsets:
            return status
        p = self.partition_for(group_id)
        items = list(offsets.items())
        batch_records: list[tuple[bytes, bytes | None]] = [
            (
                codec.encode_offset_commit_key(group_id, tp.topic, tp.partition),
                codec.encode_offset_commit_value(o),
            )
            for tp, o in items
        ]
        pending = self._pending.setdefault(group_id, {})
        for tp, _ in items:
            pending[tp] = pending.get(tp, 0) + 1
        try:
            code, base = await self._append(p, batch_records, now_ms())
        finally:
            for tp, _ in items:
                pending[tp] -= 1
                if not pending[tp]:
                    del pending[tp]
            if not pending:
                self._pending.pop(group_id, None)
        if p in self._loaded:
            cache = self._offsets.setdefault(group_id, {})
            for i, (tp, o) in enumerate(items):
                entry = cache.get(tp)
                if code is ErrorCode.NONE and (entry is None or entry.log_offset < base + i):
                    cache[tp] = Committed(o, base + i)
                elif entry is not None and entry.record is None and tp not in pending:
                    del cache[tp]  # a removal no earlier commit can undo any more
            if not cache:
                del self._offsets[group_id]
        return commit_error(code)

    # --- removal: expiry and deleted topics ---------------------------------------------

    def _remove(self, group_id: str, partitions: Collection[TopicPartition]) -> None:
        """Remove offsets, writing their tombstones (not waited for, as Kafka's cleanup
        does not wait).  A group left without offsets is reported to
        ``ctx.groups.offsets_expired`` (an Empty group dies there); when the group is
        then gone, its own tombstone goes in the same batch."""
        cache = self._offsets.get(group_id)
        if cache is None or not partitions:
            return
        records: list[tuple[bytes, bytes | None]] = [
            (codec.encode_offset_commit_key(group_id, tp.topic, tp.partition), None)
            for tp in partitions
        ]
        left = set(self.committed(group_id)) - set(partitions)
        if not left and not self._pending.get(group_id):
            groups = self._groups()
            groups.offsets_expired(group_id)
            if not groups.group_known(group_id):
                records.append((codec.encode_group_metadata_key(group_id), None))
        code, base, _ = self._append_nowait(self.partition_for(group_id), records, now_ms())
        if code is not ErrorCode.NONE:
            _log.warning("group %s: removing offsets failed: %s", group_id, code)
            return
        pending = self._pending.get(group_id, {})
        for i, tp in enumerate(partitions):
            if tp in pending:
                cache[tp] = Committed(None, base + i)
            else:
                cache.pop(tp, None)
        if not cache:
            del self._offsets[group_id]

    def _has_members(self, group_id: str) -> tuple[bool, int | None]:
        """(whether the group has members, when it became Empty) as the coordinator
        holds it; a group it does not hold has neither."""
        groups = self._groups()
        if not groups.group_known(group_id):
            return False, None
        empty_since = groups.empty_since(group_id)
        if empty_since is not None:
            return False, empty_since
        error, described = groups.describe_group(group_id)
        return error is not ErrorCode.NONE or described.state != EMPTY_STATE, None

    def expire_offsets(self, at_ms: int) -> int:
        """One expiry pass at ``at_ms`` (``expired_offsets``); how many offsets went."""
        retention_ms = self.ctx.config.get_int("offsets.retention.minutes") * 60_000
        removed = 0
        for gid in list(self._offsets):
            if self.partition_for(gid) not in self._loaded:
                continue
            pending = self._pending.get(gid, {})
            candidates = {tp: o for tp, o in self.committed(gid).items() if tp not in pending}
            has_members, empty_since = self._has_members(gid)
            expired = expired_offsets(
                candidates,
                at_ms,
                retention_ms,
                has_members=has_members,
                empty_since=empty_since,
            )
            if expired:
                _log.info("group %s: %d offsets expired", gid, len(expired))
                removed += len(expired)
                self._remove(gid, sorted(expired))
        self._end_groups_without_offsets()
        return removed

    async def _expire_periodically(self) -> None:
        interval_s = self.ctx.config.get_int("offsets.retention.check.interval.ms") / 1000
        while True:
            await asyncio.sleep(interval_s)  # a periodic task, as Kafka's scheduler runs it
            try:
                self.expire_offsets(now_ms())
            except Exception:
                _log.exception("offsets expiry failed")

    def topics_deleted(self, topics: Collection[str]) -> None:
        """Remove every group's offsets of the deleted ``topics`` (Kafka's
        handleDeletedPartitions), in the partitions loaded here."""
        gone = set(topics)
        for gid in list(self._offsets):
            if self.partition_for(gid) in self._loaded:
                drop = sorted(tp for tp in self.committed(gid) if tp.topic in gone)
                self._remove(gid, drop)
        self._end_groups_without_offsets()

    def _end_groups_without_offsets(self) -> None:
        """Tell the coordinator of every group of the partitions loaded here that has no
        offsets, committed or being appended (``offsets_expired``: an Empty one dies),
        as Kafka's cleanupGroupMetadata does for every group, not only for those whose
        offsets it has just removed."""
        groups = self._groups()
        for gid in groups.group_ids():
            if (
                self.partition_for(gid) in self._loaded
                and not self.has_offsets(gid)
                and not self._pending.get(gid)
            ):
                groups.offsets_expired(gid)

    async def _notify_data_arrived(self) -> None:
        async with self.ctx.data_arrived:
            self.ctx.data_arrived.notify_all()


_background: set[asyncio.Task[None]] = set()


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` as a task of the running loop, referenced until it ends."""
    task = asyncio.get_running_loop().create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)
