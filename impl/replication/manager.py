"""The replica manager (Kafka's ReplicaManager in ZooKeeper mode): applies each partition
state this broker learns (``apply_leader_and_isr``) by becoming the partition's leader or
follower, stops replicas (``stop_replica``), runs one fetcher per leader broker for the
partitions it follows, and makes the leader's ISR changes: expand when a follower caught
up, shrink after replica.lag.time.max.ms, each a conditional write of the state znode on
the version this leader knows (re-read when it fails).

A state whose leader epoch is older than the one applied is ignored; one of the same
epoch with a newer znode version is an ISR change (this leader's own write coming back
through the watch, or the controller's).  Leading partitions are in ``ctx.partitions``
(the data path's table); followed ones are here in ``followers``.

The high watermarks of every replica held here are checkpointed to the data directory's
replication-offset-checkpoint (impl.storage.hw_checkpoint) every
replica.high.watermark.checkpoint.interval.ms and at ``close``; the checkpoint is read
when the manager is made, so a replica taking a role after a restart starts from the high
watermark it had (never above its log end offset).  ``high_watermark`` is the bound the
retention pass must respect for every log (leader or follower): a segment is deletable
only below it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import attrs

from impl import mutants
from impl.broker.partition import PartitionState
from impl.replication.config import ReplicationConfig
from impl.replication.fetcher import FollowerReplica, ReplicaFetcher
from impl.storage.errors import StorageError
from impl.storage.hw_checkpoint import read_high_watermarks, write_high_watermarks
from impl.zk import layout
from impl.zk.layout import NO_LEADER, LeaderAndIsr
from spec.state import TopicPartition

if TYPE_CHECKING:
    from impl.broker.context import BrokerContext
    from impl.storage.partition_log import PartitionLog

_log = logging.getLogger(__name__)


MUTANT_ISR_WRITE_PATIENCE_S = 1.0
"""How long the seeded defect STALE_LEADER_ACCEPTS_PRODUCE waits for ZooKeeper's answer
to an ISR write before it takes the new ISR anyway (the correct broker waits, as Kafka's
ZooKeeper client does, until ZooKeeper answers or the session is found expired)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _impatient(tp: TopicPartition, write: Coroutine[Any, Any, int | None]) -> int | None:
    """The seeded defect STALE_LEADER_ACCEPTS_PRODUCE's wait for an ISR write: its new
    znode version, or None when refused, failed, or not answered within
    MUTANT_ISR_WRITE_PATIENCE_S (ZooKeeper cannot be reached)."""
    try:
        return await asyncio.wait_for(write, MUTANT_ISR_WRITE_PATIENCE_S)
    except Exception as e:
        _log.info("%s: no answer to the ISR write (%r)", tp, e)
        return None


class ReplicaManager:
    """The replicas of one broker; ``start`` it on the broker's loop, ``close`` at exit."""

    def __init__(self, ctx: BrokerContext, config: ReplicationConfig | None = None) -> None:
        self.ctx = ctx
        self.config = ReplicationConfig.from_broker(ctx.config) if config is None else config
        self.states: dict[TopicPartition, LeaderAndIsr] = {}  # the last applied
        self.followers: dict[TopicPartition, FollowerReplica] = {}
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._isr_expiration: asyncio.Task[None] | None = None
        self._hw_checkpointer: asyncio.Task[None] | None = None
        self._hw_write: asyncio.Future[None] | None = None  # a checkpoint write running
        self._notify_pending = False
        self._data_dir = ctx.logs.data_dir
        try:
            self._checkpointed = read_high_watermarks(self._data_dir)
        except StorageError as e:
            # As after the loss of the file: every replica starts at its log start offset
            # (nothing known to be committed) and the high watermark advances as it fetches.
            _log.warning("ignoring the high-watermark checkpoint: %s", e)
            self._checkpointed = {}
        self._written: dict[TopicPartition, int] | None = None

    @property
    def broker_id(self) -> int:
        return self.ctx.broker_id

    def start(self) -> None:
        """Start the periodic ISR expiration check (every replica.lag.time.max.ms / 2, as
        Kafka schedules it) and the high-watermark checkpoint (every
        replica.high.watermark.checkpoint.interval.ms)."""
        loop = asyncio.get_running_loop()
        if self._isr_expiration is None:
            self._isr_expiration = loop.create_task(self._expire_isr())
        if self._hw_checkpointer is None:
            self._hw_checkpointer = loop.create_task(self._checkpoint_periodically())

    async def close(self) -> None:
        """Stop the fetchers and the background work, then checkpoint the high watermarks
        (a clean shutdown; call before the logs are closed)."""
        background = (self._isr_expiration, self._hw_checkpointer, *self._tasks)
        tasks = [t for t in background if t is not None]
        for task in tasks:
            task.cancel()
        for fetcher in list(self.fetchers.values()):
            await fetcher.close()
        self.fetchers.clear()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._hw_write is not None:  # a periodic write still running in its thread
            with contextlib.suppress(Exception):
                await self._hw_write
        try:
            self._write_checkpoint(self._checkpoint_entries())
        except OSError as e:
            _log.warning("cannot write the high-watermark checkpoint: %s", e)

    # --- high watermarks and their checkpoint ------------------------------------------

    def high_watermark(self, tp: TopicPartition) -> int | None:
        """This replica's high watermark of ``tp``: the leader's or the follower's, else
        the checkpointed one (at most the log end offset), else the log start offset (no
        offset known to be committed); None when there is no log of ``tp`` here."""
        led = self.ctx.partitions.get(tp)
        if led is not None:
            return led.high_watermark
        follower = self.followers.get(tp)
        if follower is not None:
            return follower.high_watermark
        log = self.ctx.logs.get(tp)
        if log is None:
            return None
        return self._recovered_high_watermark(tp, log)

    def _recovered_high_watermark(self, tp: TopicPartition, log: PartitionLog) -> int:
        saved = self._checkpointed.get(tp, log.start_offset)
        return min(max(saved, log.start_offset), log.end_offset)

    def _checkpoint_entries(self) -> dict[TopicPartition, int]:
        out: dict[TopicPartition, int] = {}
        for tp, _ in self.ctx.logs.all():
            hw = self.high_watermark(tp)
            if hw is not None:
                out[tp] = hw
        return out

    def _write_checkpoint(self, entries: dict[TopicPartition, int]) -> None:
        if entries != self._written:
            write_high_watermarks(self._data_dir, entries)
            self._written = entries

    async def checkpoint_high_watermarks(self) -> None:
        """Write the checkpoint now (when it changed), the file work in a thread."""
        entries = self._checkpoint_entries()
        if entries == self._written:
            return
        self._hw_write = asyncio.ensure_future(asyncio.to_thread(self._write_checkpoint, entries))
        try:
            await asyncio.shield(self._hw_write)
        finally:
            if self._hw_write.done():
                self._hw_write = None

    async def _checkpoint_periodically(self) -> None:
        interval_s = self.config.replica_high_watermark_checkpoint_interval_ms / 1000
        while True:
            await asyncio.sleep(interval_s)  # a periodic task, as Kafka's scheduler runs it
            try:
                await self.checkpoint_high_watermarks()
            except OSError as e:
                _log.warning("cannot write the high-watermark checkpoint: %s", e)

    # --- partition states --------------------------------------------------------------

    async def apply_leader_and_isr(
        self, tp: TopicPartition, assignment: tuple[int, ...], state: LeaderAndIsr
    ) -> None:
        """Become the partition's leader or follower as ``state`` says (module doc)."""
        if self.broker_id not in assignment:
            self.stop_replica(tp, delete=False)
            return
        known = self.states.get(tp)
        if known is not None:
            if state.leader_epoch < known.leader_epoch:
                return  # stale
            if state.leader_epoch == known.leader_epoch and state.leader == known.leader:
                if state.zk_version > known.zk_version:
                    self._same_epoch_update(tp, assignment, state)
                return
        self.states[tp] = state
        log = self._log_for(tp)
        if state.leader == self.broker_id:
            self._become_leader(tp, log, assignment, state)
        else:
            self._become_follower(tp, log, state)

    def _same_epoch_update(
        self, tp: TopicPartition, assignment: tuple[int, ...], state: LeaderAndIsr
    ) -> None:
        self.states[tp] = state
        partition = self.ctx.partitions.get(tp)
        if partition is not None and state.leader == self.broker_id:
            partition.replicas = assignment
            if partition.update_isr(frozenset(state.isr), state.zk_version):
                self.notify_data_arrived()

    def _log_for(self, tp: TopicPartition) -> PartitionLog:
        log = self.ctx.logs.get(tp)
        if log is None:
            info = self.ctx.topics.get(tp.topic)
            log = self.ctx.logs.create(tp, _now_ms(), info.configs if info is not None else None)
        return log

    def _high_watermark(self, tp: TopicPartition, log: PartitionLog) -> int:
        """This replica's high watermark as it changes role: the leader's or follower's it
        had, else the checkpointed one (a restart), else the log start offset (nothing is
        known to be committed; it advances as the ISR fetches)."""
        led = self.ctx.partitions.get(tp)
        if led is not None:
            return led.high_watermark
        follower = self.followers.get(tp)
        if follower is not None:
            return follower.high_watermark
        return self._recovered_high_watermark(tp, log)

    def _become_leader(
        self,
        tp: TopicPartition,
        log: PartitionLog,
        assignment: tuple[int, ...],
        state: LeaderAndIsr,
    ) -> None:
        hw = self._high_watermark(tp, log)
        self._stop_fetching(tp)
        self.followers.pop(tp, None)
        old = self.ctx.partitions.get(tp)
        partition = PartitionState.become_leader(
            tp,
            log,
            broker_id=self.broker_id,
            replicas=assignment,
            isr=frozenset(state.isr),
            leader_epoch=state.leader_epoch,
            zk_version=state.zk_version,
            controller_epoch=state.controller_epoch,
            high_watermark=hw,
            now_ms=_now_ms(),
        )
        if old is not None:  # leading again in a newer epoch: its produces keep waiting
            partition.adopt_waiters(old)
        self.ctx.partitions[tp] = partition
        _log.info(
            "%s: leader in epoch %d, ISR %s, high watermark %d, log end offset %d",
            tp,
            state.leader_epoch,
            list(state.isr),
            partition.high_watermark,
            log.end_offset,
        )
        self.notify_data_arrived()
        if self.ctx.group_log is not None:
            self.ctx.group_log.leadership_changed(tp)

    def _become_follower(self, tp: TopicPartition, log: PartitionLog, state: LeaderAndIsr) -> None:
        hw = self._high_watermark(tp, log)
        old = self.ctx.partitions.pop(tp, None)
        if old is not None:
            old.resign()
            self.notify_data_arrived()
        if self.ctx.group_log is not None:
            self.ctx.group_log.leadership_changed(tp)
        self._stop_fetching(tp)
        follower = FollowerReplica(
            tp=tp,
            log=log,
            leader_id=state.leader,
            leader_epoch=state.leader_epoch,
            high_watermark=min(hw, log.end_offset),
        )
        self.followers[tp] = follower
        _log.info(
            "%s: follower of %d in epoch %d, log end offset %d",
            tp,
            state.leader,
            state.leader_epoch,
            log.end_offset,
        )
        if state.leader != NO_LEADER:
            fetcher = self.fetchers.get(state.leader)
            if fetcher is None:
                fetcher = self.fetchers[state.leader] = ReplicaFetcher(self, state.leader)
            fetcher.add(follower)

    def _stop_fetching(self, tp: TopicPartition) -> None:
        for leader, fetcher in list(self.fetchers.items()):
            fetcher.remove(tp)
            if fetcher.idle:
                del self.fetchers[leader]
                self._spawn(fetcher.close())

    def stop_replica(self, tp: TopicPartition, delete: bool) -> None:
        """Stop leading or following ``tp``; with ``delete`` remove its log too."""
        hw = self.high_watermark(tp)
        if hw is not None:  # kept for the checkpoint while the log stays
            self._checkpointed[tp] = hw
        self._stop_fetching(tp)
        self.followers.pop(tp, None)
        self.states.pop(tp, None)
        old = self.ctx.partitions.pop(tp, None)
        if old is not None:
            old.resign()
            self.notify_data_arrived()
        if self.ctx.group_log is not None:
            self.ctx.group_log.leadership_changed(tp)
        if delete:
            self._checkpointed.pop(tp, None)
            if self.ctx.logs.get(tp) is not None:
                self.ctx.logs.delete(tp)

    def fetcher_stopped(self, fetcher: ReplicaFetcher) -> None:
        """A fetcher with nothing left to fetch ended."""
        if self.fetchers.get(fetcher.leader_id) is fetcher and fetcher.idle:
            del self.fetchers[fetcher.leader_id]

    async def broker_address(self, broker_id: int) -> tuple[str, int] | None:
        """Where broker ``broker_id`` listens: the metadata cache, else its registration."""
        info = self.ctx.cluster.broker(broker_id)
        if info is None and self.ctx.zk is not None:
            found = await self.ctx.zk.get(layout.broker_path(broker_id))
            if found is not None:
                info = layout.decode_broker(broker_id, found[0])
        return None if info is None else (info.host, info.port)

    # --- the leader's ISR changes ------------------------------------------------------

    def maybe_expand_isr(self, partition: PartitionState, replica_id: int) -> None:
        """Add a caught-up follower to the ISR (called from a replica fetch)."""
        if self.ctx.zk is None or partition.isr_update_in_flight:
            return
        self._change_isr(partition, partition.isr | {replica_id})

    def maybe_shrink_isr(self, partition: PartitionState, now_ms: int) -> None:
        """Remove the ISR followers out of sync for longer than replica.lag.time.max.ms."""
        if self.ctx.zk is None or partition.isr_update_in_flight:
            return
        out = partition.out_of_sync_replicas(now_ms, self.config.replica_lag_time_max_ms)
        if out:
            _log.info("%s: shrinking the ISR, %s out of sync", partition.tp, sorted(out))
            self._change_isr(partition, partition.isr - out)

    def _change_isr(self, partition: PartitionState, isr: frozenset[int]) -> None:
        partition.isr_update_in_flight = True
        self._spawn(self._write_isr(partition, isr))

    async def _write_isr(self, partition: PartitionState, isr: frozenset[int]) -> None:
        """The conditional write of the new ISR; on success take it (the high watermark
        may advance), on a version conflict re-read the znode and take it if this broker
        still leads in the same epoch (the next fetch or check proposes again).  Until
        ZooKeeper answers the cached ISR stays, however long that takes: cut off from
        ZooKeeper, the write waits in the client until it connects again (and fails if
        the session was found expired), as a ZooKeeper-mode Kafka leader's does, so the
        acks=all produces of a leader that was replaced meanwhile keep waiting for the
        followers that left it (REQUEST_TIMED_OUT)."""
        zk = self.ctx.zk
        assert zk is not None
        tp = partition.tp
        order = [r for r in partition.replicas if r in isr]
        new = LeaderAndIsr(
            leader=self.broker_id,
            leader_epoch=partition.leader_epoch,
            isr=tuple(order),
            controller_epoch=partition.controller_epoch,
            zk_version=partition.zk_version + 1,
        )
        try:
            write = zk.update_leader_and_isr(tp, new, partition.zk_version)
            stale_leader = mutants.active(mutants.STALE_LEADER_ACCEPTS_PRODUCE)
            version = await (_impatient(tp, write) if stale_leader else write)
            if version is not None:
                _log.info("%s: ISR now %s (znode version %d)", tp, order, version)
                if self._still_leading(partition, new.leader_epoch):
                    self.states[tp] = attrs.evolve(new, zk_version=version)
                    if partition.update_isr(isr, version):
                        self.notify_data_arrived()
                return
            _log.info("%s: ISR write at version %d failed", tp, partition.zk_version)
            if stale_leader:  # takes the ISR that ZooKeeper did not accept
                if partition.update_isr(isr, partition.zk_version):
                    self.notify_data_arrived()
                return
            current = await zk.read_leader_and_isr(tp)
            if (
                current is not None
                and current.leader == self.broker_id
                and current.leader_epoch == partition.leader_epoch
                and current.zk_version > partition.zk_version
                and self._still_leading(partition, current.leader_epoch)
            ):
                self.states[tp] = current
                if partition.update_isr(frozenset(current.isr), current.zk_version):
                    self.notify_data_arrived()
        except Exception:
            _log.exception("%s: ISR change failed", tp)
        finally:
            partition.isr_update_in_flight = False

    def _still_leading(self, partition: PartitionState, leader_epoch: int) -> bool:
        return (
            partition.leading
            and self.ctx.partitions.get(partition.tp) is partition
            and partition.leader_epoch == leader_epoch
        )

    async def _expire_isr(self) -> None:
        interval_s = self.config.replica_lag_time_max_ms / 2000
        while True:
            await asyncio.sleep(interval_s)  # a periodic check, as Kafka's scheduler runs it
            now_ms = _now_ms()
            for partition in list(self.ctx.partitions.values()):
                self.maybe_shrink_isr(partition, now_ms)

    # --- helpers -------------------------------------------------------------------------

    def notify_data_arrived(self) -> None:
        """Wake the long-polling fetches (from synchronous code; coalesced)."""
        if self._notify_pending:
            return
        self._notify_pending = True
        self._spawn(self._notify())

    async def _notify(self) -> None:
        self._notify_pending = False
        async with self.ctx.data_arrived:
            self.ctx.data_arrived.notify_all()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
