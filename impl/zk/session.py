"""The broker's ZooKeeper session: a kazoo ``KazooClient`` running in its own threads,
with every result and watch callback bridged onto the broker's asyncio loop with
``loop.call_soon_threadsafe``.  Reads, conditional writes and multi-ops as coroutines;
data and children watches (kazoo's recipes, which re-arm themselves after a reconnect)
whose callbacks run on the loop; session state changes (LOST / SUSPENDED / CONNECTED)
reported to listeners on the loop.

Deviation from Kafka (documented here as the plan asks): Kafka's ZooKeeper-mode
controller tells brokers about partition states with LeaderAndIsr and UpdateMetadata
requests.  kio has no schemas for them (Kafka 4 removed ZooKeeper mode), so here every
broker learns partition states from ZooKeeper watches on the state znodes of the topics
(and on /brokers/ids, /brokers/topics, /controller for its metadata cache).  The content
is the same: the controller's writes of ``/brokers/topics/<t>/partitions/<p>/state``,
each fenced by a check of ``/controller_epoch``'s znode version in the same multi-op.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    OperationTimeoutError,
    RolledBackError,
    SessionExpiredError,
)
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from impl.zk import layout
from impl.zk.layout import LeaderAndIsr
from spec.state import TopicPartition

__all__ = ["ZkError", "ZkSession"]

_log = logging.getLogger(__name__)
T = TypeVar("T")

# Errors after which an idempotent operation is simply tried again (on a new connection).
_RETRYABLE = (ConnectionLoss, OperationTimeoutError)
RETRY_DEADLINE_S = 30.0
CLOSE_TIMEOUT_S = 5.0
"""How long a stopping broker waits for ZooKeeper at each shutdown step."""


class ZkError(RuntimeError):
    """ZooKeeper could not be reached or answered unexpectedly."""


DataCallback = Callable[[bytes | None, int | None], None]
ChildrenCallback = Callable[[list[str] | None], None]
StateListener = Callable[[str], None]


class ZkSession:
    """One ZooKeeper session of a broker process (zookeeper.connect, may end in a chroot)."""

    def __init__(
        self,
        connect: str,
        session_timeout_ms: int = 18000,
        connection_timeout_ms: int | None = None,
    ) -> None:
        self.connect = connect
        self.session_timeout_ms = session_timeout_ms
        self.connection_timeout_ms = (
            session_timeout_ms if connection_timeout_ms is None else connection_timeout_ms
        )
        self.client = KazooClient(hosts=connect, timeout=session_timeout_ms / 1000)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[StateListener] = []
        self._watches: list[Any] = []
        self.state = "LOST"

    # --- lifecycle ---------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise ZkError("the ZooKeeper session has not been started")
        return self._loop

    async def start(self) -> None:
        """Connect (within zookeeper.connection.timeout.ms) and start reporting state."""
        self._loop = asyncio.get_running_loop()
        self.client.add_listener(self._on_state)
        timeout = self.connection_timeout_ms / 1000
        try:
            await asyncio.to_thread(self.client.start, timeout)
        except Exception as e:
            raise ZkError(f"cannot connect to ZooKeeper at {self.connect}: {e}") from e
        self.state = "CONNECTED"

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """End the session (ephemeral znodes go at once) and stop kazoo's threads, waiting
        at most ``timeout_s``: with ZooKeeper unreachable the session cannot be ended, and
        a broker that was told to stop must still stop (the session then expires on its
        own).  Runs on a daemon thread, not the loop's executor, whose threads the end of
        ``asyncio.run`` would wait for."""
        self._listeners.clear()
        loop = self.loop
        closed: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not closed.done():
                closed.set_result(None)

        def run() -> None:
            try:
                self._close_blocking()
            finally:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(settle)

        threading.Thread(target=run, name="zookeeper-close", daemon=True).start()
        try:
            await asyncio.wait_for(closed, timeout_s)
        except TimeoutError:
            _log.warning(
                "ZooKeeper session not closed within %.0fs; leaving it to expire", timeout_s
            )

    def _close_blocking(self) -> None:
        try:
            self.client.stop()
        finally:
            self.client.close()

    @property
    def session_id(self) -> int | None:
        sid = self.client.client_id
        return None if sid is None else int(sid[0])

    def add_state_listener(self, listener: StateListener) -> None:
        """``listener("LOST" | "SUSPENDED" | "CONNECTED")`` on the loop at every change."""
        self._listeners.append(listener)

    def _on_state(self, state: str) -> None:  # kazoo's thread: hand over to the loop
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver_state, str(state))

    def _deliver_state(self, state: str) -> None:
        self.state = state
        _log.info("ZooKeeper session %s", state)
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:
                _log.exception("ZooKeeper state listener failed")

    # --- the bridge ----------------------------------------------------------------------

    def _bridge(self, async_result: Any) -> asyncio.Future[Any]:
        loop = self.loop
        future: asyncio.Future[Any] = loop.create_future()

        def settle(result: Any) -> None:
            if future.done():
                return
            try:
                value = result.get_nowait()
            except Exception as e:  # delivered to the awaiting coroutine
                future.set_exception(e)
            else:
                future.set_result(value)

        def done(result: Any) -> None:  # kazoo's callback thread
            if not loop.is_closed():
                loop.call_soon_threadsafe(settle, result)

        async_result.rawlink(done)
        return future

    async def _retry(self, start: Callable[[], Any]) -> Any:
        """Run an idempotent operation, again after connection loss, until the deadline."""
        deadline = time.monotonic() + RETRY_DEADLINE_S
        delay = 0.05
        while True:
            try:
                return await self._bridge(start())
            except _RETRYABLE:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(delay)  # backoff before retrying, not synchronisation
                delay = min(delay * 2, 1.0)

    # --- plain operations ------------------------------------------------------------------

    async def get(self, path: str) -> tuple[bytes, int] | None:
        """(data, znode version), or None if there is no such znode."""
        try:
            data, stat = await self._retry(lambda: self.client.get_async(path))
        except NoNodeError:
            return None
        return bytes(data or b""), int(stat.version)

    async def get_children(self, path: str) -> list[str] | None:
        try:
            children = await self._retry(lambda: self.client.get_children_async(path))
        except NoNodeError:
            return None
        return sorted(str(c) for c in children)

    async def exists(self, path: str) -> int | None:
        """The znode's version, or None if it does not exist."""
        stat = await self._retry(lambda: self.client.exists_async(path))
        return None if stat is None else int(stat.version)

    async def ephemeral_owner(self, path: str) -> int | None:
        """The session id owning the ephemeral znode (0 for a persistent one), or None."""
        stat = await self._retry(lambda: self.client.exists_async(path))
        return None if stat is None else int(stat.ephemeralOwner)

    async def creation_zxid(self, path: str) -> int | None:
        """The zxid that created the znode (Kafka's broker epoch for /brokers/ids/<id>)."""
        stat = await self._retry(lambda: self.client.exists_async(path))
        return None if stat is None else int(stat.czxid)

    async def create(
        self, path: str, data: bytes = b"", *, ephemeral: bool = False, makepath: bool = False
    ) -> bool:
        """Create a znode; False if it exists already."""
        try:
            await self._bridge(
                self.client.create_async(path, data, ephemeral=ephemeral, makepath=makepath)
            )
        except NodeExistsError:
            return False
        return True

    async def ensure_path(self, path: str) -> None:
        await self._retry(lambda: self.client.ensure_path_async(path))

    async def set(self, path: str, data: bytes, version: int = -1) -> int | None:
        """Set a znode's data if its version matches (-1: any); the new version or None."""
        try:
            stat = await self._bridge(self.client.set_async(path, data, version))
        except (BadVersionError, NoNodeError):
            return None
        return int(stat.version)

    async def delete(self, path: str, *, recursive: bool = False) -> bool:
        """Delete a znode (and its children if ``recursive``); False if it was not there."""
        if recursive:
            children = await self.get_children(path)
            if children is None:
                return False
            for child in children:
                await self.delete(f"{path}/{child}", recursive=True)
        try:
            await self._retry(lambda: self.client.delete_async(path))
        except NoNodeError:
            return False
        except NotEmptyError:  # a child appeared meanwhile
            return await self.delete(path, recursive=recursive)
        return True

    async def commit(self, build: Callable[[Any], None]) -> list[Any] | None:
        """Run a multi-op built by ``build(transaction)``; its results, or None if any
        check or write in it failed (nothing was applied then)."""
        transaction = self.client.transaction()
        build(transaction)
        results: list[Any] = await self._bridge(transaction.commit_async())
        if any(isinstance(r, Exception) for r in results):
            failed = [r for r in results if not isinstance(r, RolledBackError)]
            _log.debug("multi-op failed: %s", failed)
            return None
        return results

    # --- partition states --------------------------------------------------------------------

    async def read_leader_and_isr(self, tp: TopicPartition) -> LeaderAndIsr | None:
        found = await self.get(layout.state_path(tp.topic, tp.partition))
        if found is None:
            return None
        return layout.decode_leader_and_isr(found[0], found[1])

    async def update_leader_and_isr(
        self,
        tp: TopicPartition,
        new: LeaderAndIsr,
        expected_zk_version: int,
        controller_epoch_zk_version: int | None = None,
    ) -> int | None:
        """Write a partition state if the state znode is still at ``expected_zk_version``
        (and, for the controller, /controller_epoch still at ``controller_epoch_zk_version``:
        controller fencing, one multi-op).  The new znode version, or None when a version
        check failed.  After a connection loss the outcome is decided by reading back."""
        path = layout.state_path(tp.topic, tp.partition)
        data = layout.encode_leader_and_isr(new)
        try:
            if controller_epoch_zk_version is None:
                stat = await self._bridge(self.client.set_async(path, data, expected_zk_version))
                return int(stat.version)
            epoch_version = controller_epoch_zk_version

            def build(t: Any) -> None:
                t.check(layout.CONTROLLER_EPOCH, epoch_version)
                t.set_data(path, data, expected_zk_version)

            results = await self.commit(build)
            return None if results is None else int(results[1].version)
        except (BadVersionError, NoNodeError):
            return None
        except _RETRYABLE:
            current = await self.get(path)
            if current is not None and current == (data, expected_zk_version + 1):
                return current[1]
            return None

    async def create_leader_and_isr(
        self, tp: TopicPartition, state: LeaderAndIsr, controller_epoch_zk_version: int
    ) -> int | None:
        """Create a new partition's state znode, fenced like a controller's update; its
        version (0), or None if fenced or the znode exists."""
        await self.ensure_path(layout.partition_path(tp.topic, tp.partition))
        path = layout.state_path(tp.topic, tp.partition)
        data = layout.encode_leader_and_isr(state)

        def build(t: Any) -> None:
            t.check(layout.CONTROLLER_EPOCH, controller_epoch_zk_version)
            t.create(path, data)

        try:
            results = await self.commit(build)
        except _RETRYABLE:
            current = await self.get(path)
            return current[1] if current is not None and current[0] == data else None
        return None if results is None else 0

    # --- watches -------------------------------------------------------------------------------

    async def watch_data(self, path: str, callback: DataCallback) -> Callable[[], None]:
        """Call ``callback(data, version)`` on the loop now and at every change of the znode
        (None, None while it does not exist).  Returns a function that stops the watch."""
        loop = self.loop
        stopped = False

        def on_change(data: bytes | None, stat: Any, *_: Any) -> bool | None:
            if stopped:
                return False
            version = None if stat is None else int(stat.version)
            payload = None if data is None and stat is None else bytes(data or b"")
            if not loop.is_closed():
                loop.call_soon_threadsafe(callback, payload, version)
            return None

        def stop() -> None:
            nonlocal stopped
            stopped = True

        watch = await asyncio.to_thread(DataWatch, self.client, path, on_change)
        self._watches.append(watch)
        return stop

    async def watch_children(self, path: str, callback: ChildrenCallback) -> Callable[[], None]:
        """Call ``callback(children)`` on the loop now and at every change of the children
        of ``path`` (the znode is created if missing).  Returns a stop function."""
        loop = self.loop
        stopped = False

        def on_change(children: list[str]) -> bool | None:
            if stopped:
                return False
            if not loop.is_closed():
                loop.call_soon_threadsafe(callback, sorted(children))
            return None

        def stop() -> None:
            nonlocal stopped
            stopped = True

        await self.ensure_path(path)
        watch = await asyncio.to_thread(ChildrenWatch, self.client, path, on_change)
        self._watches.append(watch)
        return stop


def is_session_error(error: BaseException) -> bool:
    """True for errors that mean the session is gone or the connection is down."""
    return isinstance(error, (SessionExpiredError, *_RETRYABLE))


def state_name(state: Any) -> str:
    """kazoo's state as the string listeners get."""
    return str(state) if state in (KazooState.LOST, KazooState.SUSPENDED) else "CONNECTED"
