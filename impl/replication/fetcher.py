"""A follower's fetcher (Kafka's ReplicaFetcherThread): one task per leader broker, for
the partitions this broker follows there.

Each partition first truncates (KIP-101/279): OffsetForLeaderEpoch for its latest epoch
with its current leader epoch (KIP-320 fencing), a cut where the leader's answer says
(impl.replication.truncation), and again while the answer names an epoch the follower
lacks; a follower without epochs cuts to its high watermark.  Then Fetch with replica_id
= this broker at its log end offset (replica.fetch.wait.max.ms, replica.fetch.min.bytes):
the batches are appended as they are (offsets and epochs kept), the follower's high
watermark becomes min(the leader's, its log end offset) and its log start offset follows
the leader's.  FENCED_LEADER_EPOCH parks a partition until its next state arrives; other
partition errors and a lost connection retry after replica.fetch.backoff.ms.

Two departures from Kafka's fetcher thread, for latency only (what is fetched and appended
is the same):
- A partition added while a fetch is parked at the leader (up to replica.fetch.wait.max.ms)
  does not wait for it: the fetch is abandoned with its connection and the next one, at
  once, includes the partition.  Otherwise every new partition (a topic just created) would
  add up to replica.fetch.wait.max.ms to its first acks=all produces.
- NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION and UNKNOWN_LEADER_EPOCH most often
  mean the leader has not applied the partition's state yet (every broker learns it from
  its own ZooKeeper watch, in any order): the partition is retried after 10 ms, then
  doubling delays up to replica.fetch.backoff.ms, instead of the whole backoff at once;
  meanwhile the fetch for the other partitions asks the leader to park it no longer than
  that delay, so the retry does not wait out replica.fetch.wait.max.ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from typing import TYPE_CHECKING, Any

import attrs
from kio.schema.fetch.v12 import request as fetch_v12
from kio.schema.list_offsets.v7 import request as list_offsets_v7
from kio.schema.offset_for_leader_epoch.v4 import request as epoch_v4
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import i8, i32, i32Timedelta, i64

from impl import mutants
from impl.replication.connection import BrokerConnection
from impl.replication.truncation import truncation_for
from impl.storage.epoch_cache import UNDEFINED_EPOCH
from impl.storage.errors import StorageError
from impl.storage.partition_log import PartitionLog
from impl.wire.codec import DecodeError
from spec.errors import ErrorCode
from spec.state import TopicPartition

if TYPE_CHECKING:
    from impl.replication.manager import ReplicaManager

_log = logging.getLogger(__name__)

EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1
_CONNECTION_ERRORS = (OSError, ConnectionError, TimeoutError, DecodeError)
_LEADER_NOT_READY = frozenset(
    {
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
    }
)
FIRST_RETRY_S = 0.01  # the first retry after a _LEADER_NOT_READY error (module doc)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@attrs.define(eq=False)
class FollowerReplica:
    """A partition this broker follows: its log, the leader and leader epoch it follows,
    and its high watermark."""

    tp: TopicPartition
    log: PartitionLog
    leader_id: int
    leader_epoch: int
    high_watermark: int


@attrs.define(eq=False)
class _FetchState:
    replica: FollowerReplica
    truncating: bool = True
    fenced: bool = False  # FENCED_LEADER_EPOCH: wait for the next partition state
    delayed_until: float = 0.0  # loop time
    retries: int = 0  # consecutive _LEADER_NOT_READY errors


class ReplicaFetcher:
    """Fetches the partitions this broker follows from leader ``leader_id``."""

    def __init__(self, manager: ReplicaManager, leader_id: int) -> None:
        self.manager = manager
        self.leader_id = leader_id
        self.partitions: dict[TopicPartition, _FetchState] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: BrokerConnection | None = None
        self._in_flight: asyncio.Task[Any] | None = None  # a fetch awaiting its response
        cfg = manager.config
        self._backoff_s = cfg.replica_fetch_backoff_ms / 1000
        self._timeout_s = (
            cfg.replica_socket_timeout_ms / 1000 + cfg.replica_fetch_wait_max_ms / 1000
        )

    @property
    def idle(self) -> bool:
        return not self.partitions

    def add(self, replica: FollowerReplica) -> None:
        """Fetch ``replica`` (truncating first), replacing an earlier state of it."""
        self.partitions[replica.tp] = _FetchState(replica)
        self._changed.set()
        if self._in_flight is not None and not self._in_flight.done():
            self._in_flight.cancel()  # fetch again at once, with this partition (module doc)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def remove(self, tp: TopicPartition) -> None:
        if self.partitions.pop(tp, None) is not None:
            self._changed.set()

    async def close(self) -> None:
        self.partitions.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._disconnect()

    # --- the loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.partitions:
                now = loop.time()
                ready = self._ready(now)
                if not ready:
                    delays = [s.delayed_until for s in self.partitions.values() if not s.fenced]
                    await self._wait_changed(min(delays) - now if delays else None)
                    continue
                try:
                    connection = await self._connect()
                    if connection is None:
                        await self._wait_changed(self._backoff_s)
                        continue
                    # Partitions added while connecting go in this request too.
                    ready = self._ready(loop.time())
                    truncating = [s for s in ready if s.truncating]
                    if truncating:
                        await self._truncate(connection, truncating)
                    else:
                        await self._fetch(connection, ready)
                except _CONNECTION_ERRORS as e:
                    _log.info("fetcher for leader %d: %s; retrying", self.leader_id, e)
                    self._disconnect()
                    await self._wait_changed(self._backoff_s)
                except StorageError as e:
                    _log.warning("fetcher for leader %d: %s", self.leader_id, e)
                    await self._wait_changed(self._backoff_s)
        finally:
            self._disconnect()
            self.manager.fetcher_stopped(self)

    def _ready(self, now: float) -> list[_FetchState]:
        """The partitions to ask for now: neither fenced nor waiting out a delay."""
        return [s for s in self.partitions.values() if not s.fenced and s.delayed_until <= now]

    def _max_wait_ms(self, now: float) -> int:
        """How long the leader may park the next fetch: replica.fetch.wait.max.ms, cut
        short where a delayed partition becomes ready sooner (its retry must not wait
        for a fetch parked on the others)."""
        wait_ms = self.manager.config.replica_fetch_wait_max_ms
        for s in self.partitions.values():
            if not s.fenced and s.delayed_until > now:
                wait_ms = min(wait_ms, max(0, int((s.delayed_until - now) * 1000) + 1))
        return wait_ms

    async def _wait_changed(self, timeout_s: float | None) -> None:
        """Wait until a partition is added or removed, or ``timeout_s`` passes."""
        self._changed.clear()
        try:
            async with asyncio.timeout(timeout_s):
                await self._changed.wait()
        except TimeoutError:
            pass

    async def _connect(self) -> BrokerConnection | None:
        if self._connection is not None:
            return self._connection
        address = await self.manager.broker_address(self.leader_id)
        if address is None:
            return None
        host, port = address
        client_id = f"broker-{self.manager.broker_id}-fetcher-{self.leader_id}"
        self._connection = await BrokerConnection.open(host, port, client_id, self._timeout_s)
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _current(self, state: _FetchState) -> bool:
        """Whether ``state`` is still what this fetcher does for its partition."""
        return self.partitions.get(state.replica.tp) is state

    def _delay(self, state: _FetchState, code: ErrorCode) -> None:
        if code == ErrorCode.FENCED_LEADER_EPOCH:
            _log.info("%s: fenced by leader %d", state.replica.tp, self.leader_id)
            state.fenced = True
            return
        delay_s = self._backoff_s
        if code in _LEADER_NOT_READY:
            delay_s = min(delay_s, FIRST_RETRY_S * 2**state.retries)
            state.retries += 1
        state.delayed_until = asyncio.get_running_loop().time() + delay_s

    # --- truncation ----------------------------------------------------------------------

    async def _truncate(self, connection: BrokerConnection, states: list[_FetchState]) -> None:
        ask = []
        for state in states:
            rep = state.replica
            if rep.log.latest_epoch == UNDEFINED_EPOCH:
                self._truncate_to(state, min(rep.high_watermark, rep.log.end_offset))
                state.truncating = False
            else:
                ask.append(state)
        if not ask:
            return
        by_topic: dict[str, list[_FetchState]] = {}
        for state in ask:
            by_topic.setdefault(state.replica.tp.topic, []).append(state)
        request = epoch_v4.OffsetForLeaderEpochRequest(
            replica_id=BrokerId(self.manager.broker_id),
            topics=tuple(
                epoch_v4.OffsetForLeaderTopic(
                    topic=TopicName(topic),
                    partitions=tuple(
                        epoch_v4.OffsetForLeaderPartition(
                            partition=i32(s.replica.tp.partition),
                            current_leader_epoch=i32(s.replica.leader_epoch),
                            leader_epoch=i32(s.replica.log.latest_epoch),
                        )
                        for s in parts
                    ),
                )
                for topic, parts in by_topic.items()
            ),
        )
        response = await connection.request(request, self._timeout_s)
        for topic in response.topics:
            for part in topic.partitions:
                found = self.partitions.get(TopicPartition(str(topic.topic), int(part.partition)))
                if found is None or found not in ask:
                    continue
                state = found
                code = ErrorCode(int(part.error_code))
                if code != ErrorCode.NONE:
                    self._delay(state, code)
                    continue
                rep = state.replica
                cut = truncation_for(
                    rep.log, rep.high_watermark, int(part.leader_epoch), int(part.end_offset)
                )
                self._truncate_to(state, cut.offset)
                state.truncating = not cut.complete

    def _truncate_to(self, state: _FetchState, offset: int) -> None:
        rep = state.replica
        if mutants.active(mutants.SKIP_TRUNCATION):
            return
        if offset < rep.log.end_offset:
            _log.info(
                "%s: truncating from %d to %d (leader %d, epoch %d)",
                rep.tp,
                rep.log.end_offset,
                offset,
                self.leader_id,
                rep.leader_epoch,
            )
        rep.log.truncate_to(offset, _now_ms())
        rep.high_watermark = min(rep.high_watermark, rep.log.end_offset)

    # --- fetching ------------------------------------------------------------------------

    async def _fetch(self, connection: BrokerConnection, states: list[_FetchState]) -> None:
        cfg = self.manager.config
        by_topic: dict[str, list[_FetchState]] = {}
        for state in states:
            by_topic.setdefault(state.replica.tp.topic, []).append(state)
        sent = {s.replica.tp: (s, s.replica.log.end_offset) for s in states}
        request = fetch_v12.FetchRequest(
            cluster_id=None,
            replica_id=BrokerId(self.manager.broker_id),
            max_wait=i32Timedelta.parse(
                datetime.timedelta(
                    milliseconds=self._max_wait_ms(asyncio.get_running_loop().time())
                )
            ),
            min_bytes=i32(cfg.replica_fetch_min_bytes),
            max_bytes=i32(cfg.replica_fetch_response_max_bytes),
            isolation_level=i8(0),
            session_id=i32(0),
            session_epoch=i32(-1),
            topics=tuple(
                fetch_v12.FetchTopic(
                    topic=TopicName(topic),
                    partitions=tuple(
                        fetch_v12.FetchPartition(
                            partition=i32(s.replica.tp.partition),
                            current_leader_epoch=i32(s.replica.leader_epoch),
                            fetch_offset=i64(s.replica.log.end_offset),
                            last_fetched_epoch=i32(s.replica.log.latest_epoch),
                            log_start_offset=i64(s.replica.log.start_offset),
                            partition_max_bytes=i32(cfg.replica_fetch_max_bytes),
                        )
                        for s in parts
                    ),
                )
                for topic, parts in by_topic.items()
            ),
            forgotten_topics_data=(),
            rack_id="",
        )
        response = await self._fetch_response(connection, request)
        if response is None:
            return
        if int(response.error_code) != 0:
            raise ConnectionError(f"fetch failed: {ErrorCode(int(response.error_code)).name}")
        for topic in response.responses:
            for part in topic.partitions:
                found = sent.get(TopicPartition(str(topic.topic), int(part.partition_index)))
                if found is None:
                    continue
                state, offset = found
                if not self._current(state) or state.truncating:
                    continue
                await self._fetched(connection, state, offset, part)

    async def _fetch_response(
        self,
        connection: BrokerConnection,
        request: fetch_v12.FetchRequest,
    ) -> Any | None:
        """The leader's answer to ``request``; None when ``add`` abandoned it (the
        connection is then closed: its answer would come on it later)."""
        task = asyncio.get_running_loop().create_task(connection.request(request, self._timeout_s))
        self._in_flight = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # this fetcher is closing
            self._disconnect()
            return None
        finally:
            task.cancel()
            self._in_flight = None

    async def _fetched(
        self, connection: BrokerConnection, state: _FetchState, offset: int, part: Any
    ) -> None:
        rep = state.replica
        code = ErrorCode(int(part.error_code))
        if code == ErrorCode.OFFSET_OUT_OF_RANGE:
            await self._out_of_range(connection, state)
            return
        if code != ErrorCode.NONE:
            self._delay(state, code)
            return
        state.retries = 0
        if rep.log.end_offset != offset:
            return  # the log changed meanwhile; the next fetch asks again
        records = part.records
        if records:
            rep.log.append_replicated(records, _now_ms())
        rep.high_watermark = min(int(part.high_watermark), rep.log.end_offset)
        # The leader's log start offset is at most its high watermark, so the follower's
        # never passes its own (the log clamps it to its end); segments wholly below it
        # go at the next retention pass.
        leader_start = int(part.log_start_offset)
        if leader_start > rep.log.start_offset:
            rep.log.maybe_increment_log_start_offset(min(leader_start, rep.high_watermark))

    async def _out_of_range(self, connection: BrokerConnection, state: _FetchState) -> None:
        """Kafka's handleOutOfRangeError: a leader behind the follower (after an unclean
        election) truncates it to the leader's end; a follower below the leader's log
        start offset starts over there."""
        rep = state.replica
        leader_end = await self._list_offset(connection, state, LATEST_TIMESTAMP)
        if leader_end is None:
            return
        if leader_end < rep.log.end_offset:
            self._truncate_to(state, leader_end)
            return
        leader_start = await self._list_offset(connection, state, EARLIEST_TIMESTAMP)
        if leader_start is None or not self._current(state):
            return
        if leader_start > rep.log.end_offset:
            _log.info("%s: starting over at the leader's log start %d", rep.tp, leader_start)
            rep.log.truncate_fully_and_start_at(leader_start, _now_ms())
            rep.high_watermark = leader_start

    async def _list_offset(
        self, connection: BrokerConnection, state: _FetchState, timestamp: int
    ) -> int | None:
        rep = state.replica
        request = list_offsets_v7.ListOffsetsRequest(
            replica_id=BrokerId(self.manager.broker_id),
            isolation_level=i8(0),
            topics=(
                list_offsets_v7.ListOffsetsTopic(
                    name=TopicName(rep.tp.topic),
                    partitions=(
                        list_offsets_v7.ListOffsetsPartition(
                            partition_index=i32(rep.tp.partition),
                            current_leader_epoch=i32(rep.leader_epoch),
                            timestamp=i64(timestamp),
                        ),
                    ),
                ),
            ),
        )
        response = await connection.request(request, self._timeout_s)
        part = response.topics[0].partitions[0]
        code = ErrorCode(int(part.error_code))
        if code != ErrorCode.NONE:
            self._delay(state, code)
            return None
        return int(part.offset)
