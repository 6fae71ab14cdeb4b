"""The offsets log (impl.group.offsets_log) inside one broker context, without a
network: the expiry decision with explicit times, loading a partition by replaying its
log, commits visible only once the ISR has them, the error mapping when the append
fails or leadership is lost, expiry and deleted topics writing tombstones.  The
membership coordinator is a small stand-in recording what the log tells it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar, cast

from impl.broker.__main__ import open_context, retention_applies
from impl.broker.config import BrokerConfig
from impl.broker.context import BrokerContext
from impl.broker.partition import PartitionState
from impl.group import records as codec
from impl.group.coordinator import GroupCoordinator
from impl.group.internal_topic import ensure_offsets_topic
from impl.group.offsets_log import GroupLog, commit_error, expired_offsets, group_error
from impl.group.partitioner import GROUP_METADATA_TOPIC_NAME
from impl.group.records import GroupRecord, OffsetRecord
from impl.wire.records import build_batch, decode_records, iter_batches
from spec.errors import ErrorCode
from spec.state import TopicPartition

T = TypeVar("T")
OFFSETS_TP = TopicPartition(GROUP_METADATA_TOPIC_NAME, 0)
TP0, TP1 = TopicPartition("t", 0), TopicPartition("t", 1)
MINUTE = 60_000
YIELDS = 1000  # how many loop turns a background step may take (no wall-clock waits)


class StandInGroups:
    """What GroupLog calls on ctx.groups, recorded; group states set by the test."""

    def __init__(self) -> None:
        self.loaded: list[tuple[int, dict[str, GroupRecord]]] = []
        self.unloaded: list[int] = []
        self.expired: list[str] = []
        self.states: dict[str, str] = {}
        self.empty: dict[str, int] = {}

    def groups_loaded(
        self, partition: int, groups: dict[str, GroupRecord], offsets_only: frozenset[str]
    ) -> None:
        self.loaded.append((partition, dict(groups)))

    def partition_unloaded(self, partition: int) -> None:
        self.unloaded.append(partition)

    def group_known(self, group_id: str) -> bool:
        return group_id in self.states

    def empty_since(self, group_id: str) -> int | None:
        return self.empty.get(group_id)

    def group_ids(self) -> list[str]:
        return sorted(self.states)

    def offsets_expired(self, group_id: str) -> None:
        self.expired.append(group_id)
        if self.states.get(group_id) == "Empty":
            del self.states[group_id]

    def describe_group(self, group_id: str) -> tuple[ErrorCode, Any]:
        return ErrorCode.NONE, SimpleNamespace(state=self.states.get(group_id, "Dead"))


async def until(condition: Callable[[], bool], what: str) -> None:
    """Let the loop run until ``condition`` holds (a bounded number of turns)."""
    for _ in range(YIELDS):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


def run(tmp_path: Path, test: Callable[[BrokerContext, StandInGroups], Awaitable[None]]) -> None:
    """Run ``test`` with a single-broker context whose __consumer_offsets has one
    partition, created and loaded, and the stand-in coordinator."""

    async def main() -> None:
        props = {"offsets.topic.num.partitions": "1", "offsets.commit.timeout.ms": "200"}
        config = BrokerConfig.build(1, "127.0.0.1", 9092, str(tmp_path / "data"), props)
        ctx = open_context(config)
        groups = StandInGroups()
        ctx.groups = cast(GroupCoordinator, groups)
        log = group_log(ctx)
        try:
            assert await ensure_offsets_topic(ctx) is ErrorCode.COORDINATOR_NOT_AVAILABLE
            await until(lambda: log.status("g") is ErrorCode.NONE, "the partition loaded")
            await test(ctx, groups)
        finally:
            await log.close()
            ctx.logs.close()

    asyncio.run(main())


def group_log(ctx: BrokerContext) -> GroupLog:
    assert ctx.group_log is not None
    return ctx.group_log


def offset(value: int, at_ms: int = 1000, metadata: str = "", expire: int = -1) -> OffsetRecord:
    return OffsetRecord(value, -1, metadata, at_ms, expire)


def records_in_log(ctx: BrokerContext) -> list[tuple[bytes | None, bytes | None]]:
    log = ctx.logs.get(OFFSETS_TP)
    assert log is not None
    data = log.read(log.start_offset, 1 << 20)
    return [
        (r.key, r.value)
        for pos, h in iter_batches(data)
        for r in decode_records(data[pos : pos + h.size])
    ]


async def reload(ctx: BrokerContext) -> None:
    """Lose and regain the leadership of the partition: it is unloaded and loaded again."""
    log = group_log(ctx)
    state = ctx.partitions.pop(OFFSETS_TP)
    log.leadership_changed(OFFSETS_TP)
    assert log.status("g") is ErrorCode.NOT_COORDINATOR
    ctx.partitions[OFFSETS_TP] = PartitionState.lead_alone(OFFSETS_TP, state.log, 1, 1)
    log.leadership_changed(OFFSETS_TP)
    assert log.status("g") is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
    await until(lambda: log.status("g") is ErrorCode.NONE, "reloaded")


def spawn(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    return asyncio.get_running_loop().create_task(coro)


# --- the expiry decision -------------------------------------------------------------------


def test_simple_consumer_offsets_expire_by_their_commit_time() -> None:
    offsets = {TP0: offset(1, at_ms=1000), TP1: offset(2, at_ms=5000)}
    kwargs: dict[str, Any] = {"has_members": False, "empty_since": None}
    assert expired_offsets(offsets, 1000 + MINUTE - 1, MINUTE, **kwargs) == set()
    assert expired_offsets(offsets, 1000 + MINUTE, MINUTE, **kwargs) == {TP0}
    assert expired_offsets(offsets, 5000 + MINUTE, MINUTE, **kwargs) == {TP0, TP1}


def test_empty_group_offsets_expire_a_retention_after_it_emptied() -> None:
    # committed after the group emptied: still expires with the group's timer (KIP-211)
    offsets = {TP0: offset(1, at_ms=1000), TP1: offset(2, at_ms=9000)}
    kwargs: dict[str, Any] = {"has_members": False, "empty_since": 5000}
    assert expired_offsets(offsets, 5000 + MINUTE - 1, MINUTE, **kwargs) == set()
    assert expired_offsets(offsets, 5000 + MINUTE, MINUTE, **kwargs) == {TP0, TP1}


def test_offsets_of_a_group_with_members_never_expire() -> None:
    offsets = {TP0: offset(1, at_ms=0, expire=10)}
    assert expired_offsets(offsets, 10**12, MINUTE, has_members=True, empty_since=None) == set()


def test_explicit_expire_timestamp_wins() -> None:
    offsets = {TP0: offset(1, at_ms=0, expire=10 * MINUTE), TP1: offset(2, at_ms=0)}
    got = expired_offsets(offsets, 2 * MINUTE, MINUTE, has_members=False, empty_since=None)
    assert got == {TP1}
    got = expired_offsets(offsets, 10 * MINUTE, MINUTE, has_members=False, empty_since=None)
    assert got == {TP0, TP1}


def test_append_errors_map_as_kafka() -> None:
    assert commit_error(ErrorCode.NOT_LEADER_OR_FOLLOWER) is ErrorCode.NOT_COORDINATOR
    assert commit_error(ErrorCode.REQUEST_TIMED_OUT) is ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert commit_error(ErrorCode.NOT_ENOUGH_REPLICAS) is ErrorCode.COORDINATOR_NOT_AVAILABLE
    assert (
        commit_error(ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND)
        is ErrorCode.COORDINATOR_NOT_AVAILABLE
    )
    assert commit_error(ErrorCode.MESSAGE_TOO_LARGE) is ErrorCode.INVALID_COMMIT_OFFSET_SIZE
    assert group_error(ErrorCode.MESSAGE_TOO_LARGE) is ErrorCode.UNKNOWN_SERVER_ERROR
    assert group_error(ErrorCode.NOT_LEADER_OR_FOLLOWER) is ErrorCode.NOT_COORDINATOR
    assert group_error(ErrorCode.NONE) is ErrorCode.NONE


# --- loading ---------------------------------------------------------------------------------


def test_loading_replays_commits_tombstones_and_group_records(tmp_path: Path) -> None:
    member = codec.MemberRecord("m", None, "c", "/h", 1, 2, b"s", b"a")
    g2_old = GroupRecord("consumer", 1, "range", "m", 10, (member,))
    g2_new = GroupRecord("consumer", 2, "range", "m", 20, (member,))

    async def test(ctx: BrokerContext, groups: StandInGroups) -> None:
        key = codec.encode_offset_commit_key
        value = codec.encode_offset_commit_value
        gkey = codec.encode_group_metadata_key
        gvalue = codec.encode_group_metadata_value
        batches: list[list[tuple[bytes | None, bytes | None]]] = [
            [(key("g1", "t", 0), value(offset(5))), (key("g1", "t", 1), value(offset(3)))],
            [(gkey("g2"), gvalue(g2_old)), (gkey("g3"), gvalue(g2_old))],
            [(key("g1", "t", 0), value(offset(7, metadata="m")))],
            [(key("g1", "t", 1), None), (gkey("g3"), None), (gkey("g2"), gvalue(g2_new))],
            [(b"\x00\x09junk", b"junk")],  # a key version this broker does not know
            [(key("g4", "t", 0), value(offset(1))), (key("g4", "t", 0), None)],
        ]
        state = ctx.partitions[OFFSETS_TP]
        for batch in batches:
            state.append_as_leader(bytearray(build_batch(batch)), -1, 1, 0)
        await reload(ctx)
        log = group_log(ctx)
        assert log.committed("g1") == {TP0: offset(7, metadata="m")}
        assert log.committed("g4") == {} and not log.has_offsets("g4")
        assert groups.loaded[-1] == (0, {"g2": g2_new})
        assert groups.unloaded == [0]

    run(tmp_path, test)


# --- commits -------------------------------------------------------------------------------------


def _replicated_leader(ctx: BrokerContext) -> PartitionState:
    """Make this broker lead the partition with a follower (broker 2) in the ISR."""
    old = ctx.partitions[OFFSETS_TP]
    state = PartitionState.become_leader(
        OFFSETS_TP,
        old.log,
        broker_id=1,
        replicas=(1, 2),
        isr=frozenset({1, 2}),
        leader_epoch=1,
        zk_version=0,
        controller_epoch=1,
        high_watermark=old.high_watermark,
        now_ms=0,
    )
    ctx.partitions[OFFSETS_TP] = state
    return state


def test_commit_is_visible_only_once_the_isr_has_it(tmp_path: Path) -> None:
    async def test(ctx: BrokerContext, groups: StandInGroups) -> None:
        log = group_log(ctx)
        state = _replicated_leader(ctx)
        before = state.log_end_offset
        commit = spawn(log.commit_offsets("g", {TP0: offset(11), TP1: offset(12)}))
        await until(lambda: state.log_end_offset > before, "the commit appended")
        assert not commit.done()
        assert log.committed("g") == {}
        state.update_follower(2, state.log_end_offset, 0)  # the follower fetched it
        assert await commit is ErrorCode.NONE
        assert log.committed("g") == {TP0: offset(11), TP1: offset(12)}
        # the ISR never catches up: offsets.commit.timeout.ms, then COORDINATOR_NOT_AVAILABLE
        code = await log.commit_offsets("g", {TP0: offset(13)})
        assert code is ErrorCode.COORDINATOR_NOT_AVAILABLE
        assert log.committed("g")[TP0] == offset(11)

    run(tmp_path, test)


def test_losing_leadership_answers_not_coordinator(tmp_path: Path) -> None:
    async def test(ctx: BrokerContext, groups: StandInGroups) -> None:
        log = group_log(ctx)
        state = _replicated_leader(ctx)
        before = state.log_end_offset
        commit = spawn(log.commit_offsets("g", {TP0: offset(11)}))
        await until(lambda: state.log_end_offset > before, "the commit appended")
        ctx.partitions.pop(OFFSETS_TP).resign()  # as the replica manager does
        log.leadership_changed(OFFSETS_TP)
        assert await commit is ErrorCode.NOT_COORDINATOR
        assert log.status("g") is ErrorCode.NOT_COORDINATOR
        assert groups.unloaded == [0]
        assert await log.commit_offsets("g", {TP0: offset(1)}) is ErrorCode.NOT_COORDINATOR
        assert await log.store_group("g", None) is ErrorCode.NOT_COORDINATOR

    run(tmp_path, test)


def test_store_group_is_loaded_back(tmp_path: Path) -> None:
    record = GroupRecord("consumer", 4, "range", None, 99, ())

    async def test(ctx: BrokerContext, groups: StandInGroups) -> None:
        log = group_log(ctx)
        assert await log.store_group("g", record) is ErrorCode.NONE
        await reload(ctx)
        assert groups.loaded[-1] == (0, {"g": record})
        assert await log.store_group("g", None) is ErrorCode.NONE
        await reload(ctx)
        assert groups.loaded[-1] == (0, {})

    run(tmp_path, test)


# --- removal ------------------------------------------------------------------------------------


def test_expiry_writes_tombstones_and_ends_the_group(tmp_path: Path) -> None:
    async def test(ctx: BrokerContext, groups: StandInGroups) -> None:
        log = group_log(ctx)
        retention = ctx.config.get_int("offsets.retention.minutes") * MINUTE
        # a simple consumer's offsets (unknown to the coordinator): by commit time
        assert await log.commit_offsets("simple", {TP0: offset(1, at_ms=0)}) is ErrorCode.NONE
        assert await log.commit_offsets("simple", {TP1: offset(2, at_ms=500)}) is ErrorCode.NONE
        # a consumer group Empty since 100, and one with members
        groups.states.update(empty="Empty", busy="Stable")
        groups.empty["empty"] = 100
        for gid in ("empty", "busy"):
            assert await log.commit_offsets(gid, {TP0: offset(3, at_ms=10**6)}) is ErrorCode.NONE
        assert log.expire_offsets(retention - 1) == 0
        assert log.expire_offsets(retention) == 1  # simple's TP0
        assert log.committed("simple") == {TP1: offset(2, at_ms=500)}
        assert log.expire_offsets(retention + 500) == 2  # simple's TP1 and all of "empty"
        assert sorted(groups.expired) == ["empty", "simple"]
        assert log.committed("busy") == {TP0: offset(3, at_ms=10**6)}
        tail = records_in_log(ctx)[-4:]
        assert (codec.encode_group_metadata_key("simple"), None) in tail
        assert (codec.encode_group_metadata_key("empty"), None) in tail
        await reload(ctx)
        assert not log.has_offsets("simple") and not log.has_offsets("empty")
        assert log.has_offsets("busy")

    run(tmp_path, test)


def test_the_cleanup_ends_every_group_without_offsets(tmp_path: Path) -> None:
    """Kafka's cleanupGroupMetadata looks at every group: one with no offsets (none
    committed, none being appended) is reported, whether or not any offset expired."""

    async def test(ctx: BrokerContext, groups: StandInGroups) -> None:
        log = group_log(ctx)
        groups.states.update(idle="Empty", busy="Stable", holding="Empty", appending="Empty")
        assert await log.commit_offsets("holding", {TP0: offset(1)}) is ErrorCode.NONE
        state = _replicated_leader(ctx)
        before = state.log_end_offset
        commit = spawn(log.commit_offsets("appending", {TP0: offset(2)}))
        await until(lambda: state.log_end_offset > before, "the commit appended")
        assert log.expire_offsets(0) == 0
        assert groups.expired == ["busy", "idle"]  # the stand-in ends only Empty ones
        assert sorted(groups.states) == ["appending", "busy", "holding"]
        state.update_follower(2, state.log_end_offset, 0)
        assert await commit is ErrorCode.NONE
        log.topics_deleted(["t"])  # both lose their only offsets: both are reported
        assert groups.expired == ["busy", "idle", "holding", "appending", "busy"]
        assert sorted(groups.states) == ["busy"]

    run(tmp_path, test)


def test_deleted_topic_offsets_stay_deleted_despite_a_pending_commit(tmp_path: Path) -> None:
    async def test(ctx: BrokerContext, groups: StandInGroups) -> None:
        log = group_log(ctx)
        other = TopicPartition("u", 0)
        assert await log.commit_offsets("g", {TP0: offset(1), other: offset(2)}) is ErrorCode.NONE
        state = _replicated_leader(ctx)
        before = state.log_end_offset
        commit = spawn(log.commit_offsets("g", {TP0: offset(5)}))
        await until(lambda: state.log_end_offset > before, "the commit appended")
        log.topics_deleted(["t"])  # its tombstone lands after the pending commit
        assert log.committed("g") == {other: offset(2)}
        state.update_follower(2, state.log_end_offset, 0)
        assert await commit is ErrorCode.NONE
        assert log.committed("g") == {other: offset(2)}  # the older commit does not come back
        assert groups.expired == []  # the group still has offsets
        await reload(ctx)
        assert log.committed("g") == {other: offset(2)}

    run(tmp_path, test)


def test_retention_never_deletes_the_compacted_offsets_topic(tmp_path: Path) -> None:
    async def test(ctx: BrokerContext, groups: StandInGroups) -> None:
        # no log cleaner here: the compacted topic keeps every segment
        assert not retention_applies(ctx, GROUP_METADATA_TOPIC_NAME)
        assert retention_applies(ctx, "any-ordinary-topic")

    run(tmp_path, test)
