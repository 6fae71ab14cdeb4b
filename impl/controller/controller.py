"""The controller: elected by creating the ephemeral /controller and, in the same
multi-op, incrementing /controller_epoch (conditional on its znode version); while it
leads it watches /brokers/ids, /brokers/topics and /admin/delete_topics and brings every
partition state in line with the election rules (impl.controller.election).  Each write
is a multi-op that also checks /controller_epoch's version, so a controller that was
replaced cannot write; when that check fails, or its session is lost, or /controller
names another broker, it resigns.  All work runs in one task, one pass at a time (as
Kafka's controller event thread).

A broker that went away and came back between two passes is recognised by its new
registration's creation zxid (Kafka's broker epoch) and handled as a failure first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from impl.controller.election import initial_state, partition_update
from impl.zk import layout
from impl.zk.session import ZkSession, is_session_error
from spec.state import TopicPartition

_log = logging.getLogger(__name__)

UNCLEAN = "unclean.leader.election.enable"


class ControllerMovedError(Exception):
    """Another controller has been elected: this one must stop."""


class KafkaController:
    """Controller election and, while elected, the controller's work."""

    def __init__(self, zk: ZkSession, broker_id: int, unclean_default: bool) -> None:
        self._zk = zk
        self.broker_id = broker_id
        self._unclean_default = unclean_default
        self.epoch: int | None = None
        self._epoch_zk_version = -1
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stops: list[Callable[[], None]] = []
        self._watch_stops: list[Callable[[], None]] = []
        self._broker_epochs: dict[int, int] = {}

    @property
    def active(self) -> bool:
        return self.epoch is not None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._zk.add_state_listener(self._on_session)
        self._stops.append(await self._zk.watch_data(layout.CONTROLLER, self._on_controller))

    async def close(self) -> None:
        for stop in self._stops:
            stop()
        self._resign("shutting down")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- triggers (on the loop, from watches) ----------------------------------------------

    def _on_session(self, state: str) -> None:
        if state == "LOST":
            self._resign("ZooKeeper session lost")
        if state != "SUSPENDED":  # nothing to do until the connection is back
            self._wake.set()

    def _on_controller(self, data: bytes | None, _version: int | None) -> None:
        if self.active and (data is None or layout.decode_controller(data) != self.broker_id):
            self._resign("/controller changed")
        self._wake.set()

    def _changed(self, _: object = None, __: object = None) -> None:
        self._wake.set()

    # --- the event loop ---------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                if not self.active:
                    await self._elect()
                else:
                    await self._reconcile()
            except asyncio.CancelledError:
                raise
            except ControllerMovedError as e:
                self._resign(str(e))
            except Exception as e:
                if is_session_error(e):  # the session listener resigns if it is lost
                    _log.info("controller pass interrupted (%r); trying again", e)
                else:
                    _log.exception("controller pass failed; trying again")
                await asyncio.sleep(0.5)  # backoff before the retry, not synchronisation
                self._wake.set()

    async def _elect(self) -> None:
        if self._zk.state != "CONNECTED" or await self._zk.exists(layout.CONTROLLER) is not None:
            return
        found = await self._zk.get(layout.CONTROLLER_EPOCH)
        if found is None:
            await self._zk.create(
                layout.CONTROLLER_EPOCH,
                layout.encode_controller_epoch(layout.INITIAL_CONTROLLER_EPOCH),
            )
            found = await self._zk.get(layout.CONTROLLER_EPOCH)
            if found is None:
                return
        epoch = layout.decode_controller_epoch(found[0]) + 1
        version = found[1]

        def build(t: object) -> None:
            t.create(  # type: ignore[attr-defined]
                layout.CONTROLLER, layout.encode_controller(self.broker_id), ephemeral=True
            )
            t.set_data(  # type: ignore[attr-defined]
                layout.CONTROLLER_EPOCH, layout.encode_controller_epoch(epoch), version
            )

        results = await self._zk.commit(build)
        if results is None:
            return  # another broker won
        self.epoch = epoch
        self._epoch_zk_version = int(results[1].version)
        self._broker_epochs = {}
        _log.info("broker %d is the controller (epoch %d)", self.broker_id, epoch)
        for path in (layout.BROKER_IDS, layout.BROKER_TOPICS, layout.DELETE_TOPICS):
            self._watch_stops.append(await self._zk.watch_children(path, self._changed))
        self._wake.set()

    def _resign(self, why: str) -> None:
        if self.epoch is None:
            return
        _log.info("controller (epoch %d) resigns: %s", self.epoch, why)
        self.epoch = None
        for stop in self._watch_stops:
            stop()
        self._watch_stops.clear()
        self._wake.set()

    # --- one pass ---------------------------------------------------------------------------

    async def _reconcile(self) -> None:
        ids = await self._zk.get_children(layout.BROKER_IDS) or []
        epochs: dict[int, int] = {}
        for child in ids:
            if child.lstrip("-").isdigit():
                zxid = await self._zk.creation_zxid(layout.broker_path(int(child)))
                if zxid is not None:
                    epochs[int(child)] = zxid
        bounced = {b for b, z in epochs.items() if self._broker_epochs.get(b, z) != z}
        live = set(epochs)
        deleting = set(await self._zk.get_children(layout.DELETE_TOPICS) or [])
        topics = await self._zk.get_children(layout.BROKER_TOPICS) or []
        for name in sorted(deleting):
            await self._delete_topic(name)
        retry = False
        for name in topics:
            if name in deleting:
                continue
            if bounced and not await self._topic_pass(name, live - bounced):
                retry = True
            if not await self._topic_pass(name, live):
                retry = True
        self._broker_epochs = epochs
        if retry:
            self._wake.set()

    async def _topic_pass(self, name: str, live: set[int]) -> bool:
        """Bring one topic's partitions in line; False if a write lost a race."""
        found = await self._zk.get(layout.topic_path(name))
        if found is None:
            return True
        assignment = layout.decode_topic(found[0])
        unclean = await self._unclean(name)
        ok = True
        for index, replicas in sorted(assignment.partitions.items()):
            tp = TopicPartition(name, index)
            if not await self._partition_pass(tp, replicas, live, unclean):
                ok = False
        return ok

    async def _partition_pass(
        self, tp: TopicPartition, replicas: tuple[int, ...], live: set[int], unclean: bool
    ) -> bool:
        epoch = self.epoch
        if epoch is None:
            raise ControllerMovedError("resigned")
        state = await self._zk.read_leader_and_isr(tp)
        if state is None:
            new = initial_state(replicas, live, epoch)
            if new is None:
                _log.warning("%s has no live replica: not initialised", tp)
                return True
            written = await self._zk.create_leader_and_isr(tp, new, self._epoch_zk_version)
        else:
            update = partition_update(state, replicas, live, unclean, epoch)
            if update is None:
                return True
            new = update
            written = await self._zk.update_leader_and_isr(
                tp, new, state.zk_version, self._epoch_zk_version
            )
        if written is None:
            await self._check_epoch()
            return False
        _log.info(
            "%s: leader %d, leader epoch %d, isr %s", tp, new.leader, new.leader_epoch, new.isr
        )
        return True

    async def _check_epoch(self) -> None:
        version = await self._zk.exists(layout.CONTROLLER_EPOCH)
        if version != self._epoch_zk_version:
            raise ControllerMovedError("/controller_epoch moved on: another controller was elected")

    async def _unclean(self, name: str) -> bool:
        found = await self._zk.get(layout.topic_config_path(name))
        configs = {} if found is None else layout.decode_topic_config(found[0])
        value = configs.get(UNCLEAN)
        return self._unclean_default if value is None else value.strip().lower() == "true"

    async def _delete_topic(self, name: str) -> None:
        """Kafka's topic deletion: the partitions' states and the topic's znodes go, then
        the deletion request."""
        await self._check_epoch()
        await self._zk.delete(layout.topic_path(name), recursive=True)
        await self._zk.delete(layout.topic_config_path(name))
        await self._zk.delete(layout.delete_topic_path(name))
        _log.info("deleted topic %s", name)
