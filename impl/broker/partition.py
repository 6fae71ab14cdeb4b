"""The state of one partition this broker leads: its log, leader epoch, replicas, ISR and
high watermark, and the leader's side of the data path and of replication: validated
appends, reads up to the high watermark, the KIP-320 leader-epoch check, what the leader
knows of each follower (its log end offset from its latest fetch, when it last caught up),
the high watermark as the smallest log end offset over the ISR (never moving back), which
followers may join or must leave the ISR, and the acks=all produces waiting for the high
watermark (Kafka's DelayedProduce, answered by futures, never by polling).

Single-broker mode is the degenerate case: the ISR is this broker alone, so the high
watermark follows the log end offset after every append.  The ISR itself is changed only
by the replica manager (impl.replication.manager), after its conditional ZooKeeper write.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import attrs

from impl import mutants
from impl.storage.errors import StorageError
from impl.storage.partition_log import AppendInfo, PartitionLog
from impl.wire import records
from spec.errors import ErrorCode
from spec.state import TopicPartition

if TYPE_CHECKING:
    from impl.broker.context import BrokerContext

VALID_ACKS = frozenset({0, 1, -1})
NO_EPOCH = -1  # a request's current_leader_epoch when the client does not know it
UNKNOWN_OFFSET = -1  # a follower's log end offset before its first fetch


class PartitionError(Exception):
    """A per-partition failure with the Kafka error code the client gets."""

    def __init__(self, code: ErrorCode, message: str = "") -> None:
        super().__init__(message or code.name)
        self.code = code


def not_led_error(ctx: BrokerContext, tp: TopicPartition) -> ErrorCode:
    """The error for a partition this broker does not lead: in cluster mode
    NOT_LEADER_OR_FOLLOWER when the cluster has the partition (this broker follows it, or
    another broker leads it), otherwise UNKNOWN_TOPIC_OR_PARTITION."""
    if ctx.zk is not None and ctx.cluster.assignment(tp) is not None:
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def validate_batch(data: bytes | bytearray | memoryview) -> records.BatchHeader:
    """The header of the one v2 batch a produce request carries for a partition, checked
    as Kafka's ProduceRequest and LogValidator check it (no record is decoded); the size
    limit and the CRC are checked by the log as it appends.  Raises PartitionError with
    CORRUPT_MESSAGE (malformed) or INVALID_RECORD."""
    if not data:
        raise PartitionError(ErrorCode.INVALID_RECORD, "no record batch")
    try:
        header = records.parse_header(data)
    except records.CorruptBatchError as e:
        raise PartitionError(ErrorCode.CORRUPT_MESSAGE, str(e)) from None
    if header.size != len(data):
        raise PartitionError(
            ErrorCode.INVALID_RECORD, "produce v3+ carries exactly one batch per partition"
        )
    if header.base_offset != 0:
        raise PartitionError(ErrorCode.INVALID_RECORD, "a produced batch has base offset 0")
    if header.records_count != header.last_offset_delta + 1:
        raise PartitionError(ErrorCode.INVALID_RECORD, "record count != last offset delta + 1")
    if header.is_control:
        raise PartitionError(ErrorCode.INVALID_RECORD, "clients may not append control batches")
    return header


@attrs.define(slots=True)
class FollowerState:
    """What the leader knows of one follower (Kafka's Replica): the fetch offset of its
    latest fetch (its log end offset), when it was last caught up to the leader's log end
    offset, and the leader's log end offset and the time at its previous fetch."""

    log_end_offset: int = UNKNOWN_OFFSET
    last_caught_up_ms: int = 0
    last_fetch_leader_leo: int = UNKNOWN_OFFSET
    last_fetch_ms: int = 0

    def update(self, fetch_offset: int, leader_leo: int, now_ms: int) -> None:
        """A fetch at ``fetch_offset`` arrived (Kafka's Replica.updateFetchState): caught
        up now if it reached the leader's log end offset, or caught up as of the previous
        fetch if it reached what the leader's log end offset was then."""
        if fetch_offset >= leader_leo:
            self.last_caught_up_ms = max(self.last_caught_up_ms, now_ms)
        elif fetch_offset >= self.last_fetch_leader_leo:
            self.last_caught_up_ms = max(self.last_caught_up_ms, self.last_fetch_ms)
        self.log_end_offset = fetch_offset
        self.last_fetch_leader_leo = leader_leo
        self.last_fetch_ms = now_ms


# An acks=all produce waiting: (offset the high watermark must reach, min.insync.replicas,
# the future that gets the produce's error code).
_Waiter = tuple[int, int, "asyncio.Future[ErrorCode]"]


@attrs.define(eq=False)
class PartitionState:
    """A partition led by this broker."""

    tp: TopicPartition
    log: PartitionLog
    leader_id: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: frozenset[int]
    high_watermark: int
    zk_version: int = -1  # of the partition state znode this leader last knew
    controller_epoch: int = -1
    epoch_start_offset: int = 0  # where this leader's epoch began in its log
    followers: dict[int, FollowerState] = attrs.field(factory=dict)
    leading: bool = True  # False once it stopped leading: waiters are answered
    isr_update_in_flight: bool = False
    _hw_waiters: list[_Waiter] = attrs.field(factory=list, init=False)

    @classmethod
    def lead_alone(
        cls, tp: TopicPartition, log: PartitionLog, broker_id: int, leader_epoch: int = 0
    ) -> PartitionState:
        """This broker as the only replica and leader (single-broker mode): everything in
        the recovered log was acknowledged by the whole ISR, so it is all committed.
        As Kafka's makeLeader, the new epoch starts at the log end offset in the
        leader-epoch cache (a no-op when it is the latest epoch already)."""
        log.epoch_cache.assign(leader_epoch, log.end_offset)
        return cls(
            tp=tp,
            log=log,
            leader_id=broker_id,
            leader_epoch=leader_epoch,
            replicas=(broker_id,),
            isr=frozenset({broker_id}),
            high_watermark=log.end_offset,
            epoch_start_offset=_epoch_start(log, leader_epoch),
        )

    @classmethod
    def become_leader(
        cls,
        tp: TopicPartition,
        log: PartitionLog,
        *,
        broker_id: int,
        replicas: tuple[int, ...],
        isr: frozenset[int],
        leader_epoch: int,
        zk_version: int,
        controller_epoch: int,
        high_watermark: int,
        now_ms: int,
    ) -> PartitionState:
        """Kafka's makeLeader: the new epoch starts at the log end offset in the
        leader-epoch cache, every follower's progress is forgotten (caught up as of now,
        log end offset unknown), and the high watermark starts where this replica's was
        (it may then advance as the ISR's followers fetch)."""
        log.epoch_cache.assign(leader_epoch, log.end_offset)
        state = cls(
            tp=tp,
            log=log,
            leader_id=broker_id,
            leader_epoch=leader_epoch,
            replicas=replicas,
            isr=isr,
            high_watermark=min(max(high_watermark, log.start_offset), log.end_offset),
            zk_version=zk_version,
            controller_epoch=controller_epoch,
            epoch_start_offset=_epoch_start(log, leader_epoch),
            followers={
                r: FollowerState(last_caught_up_ms=now_ms) for r in replicas if r != broker_id
            },
        )
        state.maybe_advance_high_watermark()
        return state

    @property
    def log_start_offset(self) -> int:
        return self.log.start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.end_offset

    @property
    def last_stable_offset(self) -> int:
        """No transactions here: the last stable offset is the high watermark."""
        return self.high_watermark

    def check_leader_epoch(self, current_leader_epoch: int) -> ErrorCode:
        """KIP-320: a client's view of the leader epoch that is older than ours is fenced,
        a newer one means this broker has not caught up yet; -1 skips the check."""
        if current_leader_epoch in (NO_EPOCH, self.leader_epoch):
            return ErrorCode.NONE
        if current_leader_epoch < self.leader_epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        return ErrorCode.UNKNOWN_LEADER_EPOCH

    def append_as_leader(
        self,
        batch: bytes | bytearray | memoryview,
        acks: int,
        min_insync_replicas: int,
        now_ms: int,
        header: records.BatchHeader | None = None,
    ) -> AppendInfo:
        """Append a validated batch with this leader's epoch; offsets are assigned by the
        log (or the original ones returned for a duplicate idempotent batch); ``batch``
        itself is left as it is (the log writes the offsets and epoch as it copies it).
        ``header``: the batch's header, when the caller has parsed it already.
        Raises PartitionError (NOT_ENOUGH_REPLICAS, or the log's idempotence verdict)."""
        if acks == -1 and len(self.isr) < min_insync_replicas:
            raise PartitionError(
                ErrorCode.NOT_ENOUGH_REPLICAS,
                f"ISR {sorted(self.isr)} is smaller than min.insync.replicas {min_insync_replicas}",
            )
        try:
            info = self.log.append(batch, self.leader_epoch, now_ms, header)
        except StorageError as e:
            raise PartitionError(e.code, str(e)) from None
        self.maybe_advance_high_watermark()
        return info

    # --- the leader's view of its followers ------------------------------------------

    def update_follower(self, replica_id: int, fetch_offset: int, now_ms: int) -> bool:
        """Record a follower's fetch at ``fetch_offset`` (its log end offset); whether the
        high watermark advanced."""
        follower = self.followers.get(replica_id)
        if follower is None:
            follower = self.followers[replica_id] = FollowerState(last_caught_up_ms=now_ms)
        follower.update(fetch_offset, self.log.end_offset, now_ms)
        if replica_id in self.isr:
            return self.maybe_advance_high_watermark()
        return False

    def may_join_isr(self, replica_id: int) -> bool:
        """A follower outside the ISR may join once its log end offset has reached the
        high watermark and the start of this leader's epoch (KIP-320 / KAFKA-7128)."""
        follower = self.followers.get(replica_id)
        if follower is None or replica_id in self.isr or replica_id not in self.replicas:
            return False
        leo = follower.log_end_offset
        return leo >= self.high_watermark and leo >= self.epoch_start_offset

    def out_of_sync_replicas(self, now_ms: int, lag_time_max_ms: int) -> frozenset[int]:
        """ISR followers behind the log end offset that have not caught up for longer than
        replica.lag.time.max.ms (Kafka's getOutOfSyncReplicas)."""
        end = self.log.end_offset
        out = set()
        for r in self.isr:
            if r == self.leader_id:
                continue
            f = self.followers.get(r)
            if f is None:
                f = self.followers[r] = FollowerState(last_caught_up_ms=now_ms)
            if f.log_end_offset < end and now_ms - f.last_caught_up_ms > lag_time_max_ms:
                out.add(r)
        return frozenset(out)

    def update_isr(self, isr: frozenset[int], zk_version: int) -> bool:
        """Take a new ISR (written or read at ``zk_version``); whether the high watermark
        advanced (an ISR without a lagging follower)."""
        self.isr = isr
        self.zk_version = zk_version
        return self.maybe_advance_high_watermark()

    # --- the high watermark and the acks=all produces waiting for it -----------------

    def maybe_advance_high_watermark(self) -> bool:
        """Advance the high watermark to the smallest log end offset over the ISR (never
        back); answer the acks=all produces it passes.  Whether it moved."""
        hw = self.log.end_offset
        if hw <= self.high_watermark:
            return False
        for r in () if mutants.active(mutants.HW_PAST_ISR) else self.isr:
            if r != self.leader_id:
                f = self.followers.get(r)
                leo = UNKNOWN_OFFSET if f is None else f.log_end_offset
                if leo < hw:
                    hw = leo
                    if hw <= self.high_watermark:
                        return False
        self.high_watermark = hw
        if self._hw_waiters:
            self._answer_due()
        return True

    def _answer_due(self) -> None:
        """Answer the waiting acks=all produces the high watermark has passed."""
        hw = self.high_watermark
        waiting = []
        for waiter in self._hw_waiters:
            offset, min_insync, future = waiter
            if offset <= hw:
                if not future.done():
                    ok = len(self.isr) >= min_insync
                    future.set_result(
                        ErrorCode.NONE if ok else ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
                    )
            else:
                waiting.append(waiter)
        self._hw_waiters = waiting

    async def wait_for_high_watermark(
        self, offset: int, timeout_s: float, min_insync_replicas: int = 1
    ) -> ErrorCode:
        """An acks=all produce's answer once the high watermark reaches ``offset``: NONE,
        or NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR is then smaller than
        ``min_insync_replicas``; REQUEST_TIMED_OUT after ``timeout_s``;
        NOT_LEADER_OR_FOLLOWER when this broker stops leading first."""
        if not self.leading:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if self.high_watermark >= offset:
            if len(self.isr) < min_insync_replicas:
                return ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
            return ErrorCode.NONE
        future: asyncio.Future[ErrorCode] = asyncio.get_running_loop().create_future()
        self._hw_waiters.append((offset, min_insync_replicas, future))
        try:
            return await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            self._hw_waiters = [w for w in self._hw_waiters if w[2] is not future]
            return ErrorCode.REQUEST_TIMED_OUT

    def adopt_waiters(self, previous: PartitionState) -> None:
        """Take over the acks=all produces waiting on this partition's previous leadership
        (this broker leads again in a newer epoch) and answer those now due."""
        self._hw_waiters.extend(previous._hw_waiters)
        previous._hw_waiters = []
        self.high_watermark = max(self.high_watermark, previous.high_watermark)
        self.high_watermark = min(self.high_watermark, self.log.end_offset)
        self.maybe_advance_high_watermark()
        self._answer_due()

    def resign(self) -> None:
        """This broker stopped leading: the waiting acks=all produces get
        NOT_LEADER_OR_FOLLOWER (Kafka's DelayedProduce after a leader change)."""
        self.leading = False
        for _, _, future in self._hw_waiters:
            if not future.done():
                future.set_result(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        self._hw_waiters = []

    def check_fetch_offset(self, offset: int) -> None:
        """Raise OFFSET_OUT_OF_RANGE unless log start <= offset <= log end."""
        end = self.log.end_offset
        if mutants.active(mutants.FETCH_AT_LOG_END_OUT_OF_RANGE):
            end -= 1
        if not self.log.start_offset <= offset <= end:
            raise PartitionError(
                ErrorCode.OFFSET_OUT_OF_RANGE,
                f"offset {offset} outside [{self.log.start_offset}, {self.log.end_offset}]",
            )

    def read(self, offset: int, max_bytes: int, min_one: bool, max_offset: int) -> bytes:
        """Stored batches from ``offset`` below ``max_offset`` (the high watermark for a
        consumer), at most ``max_bytes`` unless ``min_one``, in which case at least the
        first batch whatever its size.  Call check_fetch_offset first."""
        if offset >= max_offset or (max_bytes <= 0 and not min_one):
            return b""
        try:
            data = self.log.read(offset, max_bytes, max_offset)
        except StorageError as e:
            raise PartitionError(e.code, str(e)) from None
        if len(data) > max_bytes and not min_one:
            return b""
        return data


def _epoch_start(log: PartitionLog, leader_epoch: int) -> int:
    """The start offset of ``leader_epoch`` in the log's leader-epoch cache (the log end
    offset when the cache does not have it)."""
    for entry in reversed(log.epoch_cache.entries):
        if entry.epoch == leader_epoch:
            return entry.start_offset
    return log.end_offset
