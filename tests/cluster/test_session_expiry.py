"""ZooKeeper session expiry of real broker processes, forced by pausing one with SIGSTOP
until ZooKeeper has expired its session (its registration is gone), then SIGCONT:

- a paused partition leader is unregistered, loses leadership to the next ISR member
  (leader epoch + 1) and leaves every ISR; resumed, it registers again with a new
  session, follows, catches up and rejoins the ISRs;
- a paused controller loses the controller role to a broker with a higher controller
  epoch; resumed, it resigns and its stale epoch never reaches a partition state.

Throughout, every partition state ZooKeeper holds (as a watch of the test's own sees it)
keeps the leader in the ISR and never lowers the leader or controller epoch."""

from __future__ import annotations

import itertools
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.recipe.watchers import DataWatch

from harness.launcher import BrokerProcess
from impl.wire import records
from impl.zk import layout
from impl.zk.layout import NO_LEADER, LeaderAndIsr
from spec.errors import ErrorCode
from tests.cluster.conftest import SESSION_TIMEOUT_MS, BrokerFactory, wait_for, wait_value
from tests.cluster.test_controller import controller, registered, start_three
from tests.impl import kio_requests as kr
from tests.impl.wire_client import WireClient

pytestmark = pytest.mark.timeout(240)

PARTITIONS = 3
# Expiry takes one session timeout after the pause; the rest is slack for a loaded machine.
EXPIRY_DEADLINE_S = 2 * SESSION_TIMEOUT_MS / 1000 + 20
REJOIN_DEADLINE_S = 60.0


class StateHistory:
    """Every version of the topic's partition states the test's watches see."""

    def __init__(self, zk: KazooClient, topic: str, partitions: int) -> None:
        self._lock = threading.Lock()
        self.seen: dict[int, list[LeaderAndIsr]] = {p: [] for p in range(partitions)}
        for p in range(partitions):
            DataWatch(zk, layout.state_path(topic, p), self._recorder(p))

    def _recorder(self, partition: int) -> Any:
        def record(data: bytes | None, stat: Any, *_: Any) -> None:
            if data is not None and stat is not None:
                with self._lock:
                    self.seen[partition].append(layout.decode_leader_and_isr(data, stat.version))

        return record

    def check_consistent(self) -> None:
        """Leader in the ISR (or none), epochs and znode versions never going back."""
        with self._lock:
            history = {p: list(states) for p, states in self.seen.items()}
        for p, states in history.items():
            assert states, f"no state of partition {p} seen"
            for s in states:
                assert s.isr, f"partition {p}: empty ISR in {s}"
                assert s.leader == NO_LEADER or s.leader in s.isr, f"partition {p}: {s}"
            for before, after in itertools.pairwise(states):
                assert after.zk_version > before.zk_version, (p, before, after)
                assert after.leader_epoch >= before.leader_epoch, (p, before, after)
                assert after.controller_epoch >= before.controller_epoch, (p, before, after)


def state(zk: KazooClient, topic: str, partition: int) -> LeaderAndIsr | None:
    path = layout.state_path(topic, partition)
    if zk.exists(path) is None:
        return None
    data, stat = zk.get(path)
    return layout.decode_leader_and_isr(data, stat.version)


def assignment(zk: KazooClient, topic: str) -> dict[int, tuple[int, ...]]:
    return dict(layout.decode_topic(zk.get(layout.topic_path(topic))[0]).partitions)


def session_of(zk: KazooClient, broker_id: int) -> int | None:
    """The ZooKeeper session owning /brokers/ids/<id>, or None if it is not registered."""
    stat = zk.exists(layout.broker_path(broker_id))
    return None if stat is None else int(stat.ephemeralOwner)


def produce(broker: BrokerProcess, topic: str, partition: int, values: list[bytes]) -> ErrorCode:
    data = records.build_batch([(None, v) for v in values], timestamp=1000)
    with WireClient(broker.host, broker.port) as client:
        response = client.request(kr.produce(topic, partition, data, acks=-1))
    return ErrorCode(int(response.responses[0].partition_responses[0].error_code))


def accepted(broker: BrokerProcess, topic: str, partition: int, values: list[bytes]) -> bool:
    return produce(broker, topic, partition, values) == ErrorCode.NONE


def log_bytes(broker: BrokerProcess, topic: str, partition: int) -> bytes:
    path = Path(broker.data_dir) / f"{topic}-{partition}" / f"{0:020d}.log"
    return path.read_bytes() if path.exists() else b""


def same_log(one: BrokerProcess, other: BrokerProcess, topic: str, partition: int) -> bool:
    return log_bytes(one, topic, partition) == log_bytes(other, topic, partition)


@contextmanager
def paused(broker: BrokerProcess) -> Iterator[None]:
    """SIGSTOP the broker for the block; SIGCONT after it, whatever happens."""
    os.kill(broker.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(broker.pid, signal.SIGCONT)


def create_full_topic(b: dict[int, BrokerProcess], zk: KazooClient, topic: str) -> None:
    """RF3 topic, min.insync.replicas 2, every partition's ISR full, a batch in each."""
    with WireClient(b[1].host, b[1].port) as client:
        created = client.request(
            kr.create_topics([(topic, PARTITIONS, 3)], configs={"min.insync.replicas": "2"})
        )
    assert [int(t.error_code) for t in created.topics] == [0]
    for p in range(PARTITIONS):
        s = wait_for(partial(state, zk, topic, p), what=f"state of partition {p}")
        assert set(s.isr) == {1, 2, 3}
        batch = [b"before-%d" % p]
        wait_for(
            partial(accepted, b[s.leader], topic, p, batch),
            what=f"partition {p} taking acks=all writes",
        )


def wait_rejoined(
    b: dict[int, BrokerProcess], zk: KazooClient, topic: str, broker_id: int, old_session: int
) -> None:
    """The broker registered with a new session, back in every ISR, its logs equal to
    the leaders'."""
    new_session = wait_value(
        lambda: session_of(zk, broker_id),
        lambda s: s is not None and s != old_session,
        REJOIN_DEADLINE_S,
        f"broker {broker_id} registered with a new session",
    )
    assert new_session is not None
    for p in range(PARTITIONS):
        back = wait_value(
            partial(state, zk, topic, p),
            lambda s: s is not None and broker_id in s.isr and s.leader != NO_LEADER,
            REJOIN_DEADLINE_S,
            f"broker {broker_id} back in the ISR of partition {p}",
        )
        assert back is not None
        wait_for(
            partial(same_log, b[broker_id], b[back.leader], topic, p),
            REJOIN_DEADLINE_S,
            f"broker {broker_id}'s log of partition {p} equal to the leader's",
        )


def test_expired_leader_loses_leadership_and_rejoins_with_a_new_session(
    brokers: BrokerFactory, zk: KazooClient
) -> None:
    topic = "expiry"
    b = start_three(brokers, zk)
    history = StateHistory(zk, topic, PARTITIONS)
    create_full_topic(b, zk, topic)
    ctl = controller(zk)
    assert ctl is not None
    replicas = assignment(zk, topic)
    before = {p: state(zk, topic, p) for p in range(PARTITIONS)}
    p, led = next((p, s) for p, s in before.items() if s is not None and s.leader != ctl[0])
    victim = led.leader
    old_session = session_of(zk, victim)
    assert old_session is not None

    with paused(b[victim]):
        wait_for(
            lambda: victim not in registered(zk),
            EXPIRY_DEADLINE_S,
            f"broker {victim}'s registration expired",
        )
        moved = wait_value(
            lambda: state(zk, topic, p),
            lambda s: s is not None and s.leader != victim,
            EXPIRY_DEADLINE_S,
            "a new leader",
        )
        assert moved is not None
        assert moved.leader == next(r for r in replicas[p] if r != victim and r in led.isr)
        assert moved.leader_epoch == led.leader_epoch + 1
        assert victim not in moved.isr
        assert moved.controller_epoch == ctl[1]
        # The partitions it followed lose it from their ISR; their leaders stay.
        for q in range(PARTITIONS):
            if q == p:
                continue
            shrunk = wait_value(
                partial(state, zk, topic, q),
                lambda s: s is not None and victim not in s.isr,
                EXPIRY_DEADLINE_S,
                f"broker {victim} out of partition {q}'s ISR",
            )
            old = before[q]
            assert shrunk is not None and old is not None
            assert shrunk.leader == old.leader
        # Writes go on at the new leader with the two replicas left.
        wait_for(
            lambda: produce(b[moved.leader], topic, p, [b"while-paused"]) == ErrorCode.NONE,
            what="acks=all at the new leader",
        )

    wait_rejoined(b, zk, topic, victim, old_session)
    after = state(zk, topic, p)
    assert after is not None and after.leader == moved.leader
    assert after.leader_epoch == moved.leader_epoch
    assert produce(b[victim], topic, p, [b"stale"]) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert b"while-paused" in log_bytes(b[victim], topic, p)
    history.check_consistent()


def test_expired_controller_is_replaced_and_cannot_write_with_its_stale_epoch(
    brokers: BrokerFactory, zk: KazooClient
) -> None:
    topic = "fenced"
    b = start_three(brokers, zk)
    history = StateHistory(zk, topic, PARTITIONS)
    create_full_topic(b, zk, topic)
    first = controller(zk)
    assert first is not None
    old_id, old_epoch = first
    before = {p: state(zk, topic, p) for p in range(PARTITIONS)}
    p, led = next((p, s) for p, s in before.items() if s is not None and s.leader == old_id)
    old_session = session_of(zk, old_id)
    assert old_session is not None

    with paused(b[old_id]):
        new = wait_value(
            lambda: controller(zk),
            lambda c: c is not None and c[0] != old_id,
            EXPIRY_DEADLINE_S,
            "a new controller",
        )
        assert new is not None
        new_id, new_epoch = new
        assert new_epoch > old_epoch
        moved = wait_value(
            lambda: state(zk, topic, p),
            lambda s: s is not None and s.leader != old_id and old_id not in s.isr,
            EXPIRY_DEADLINE_S,
            "the old controller's partition led elsewhere",
        )
        assert moved is not None
        assert moved.leader_epoch == led.leader_epoch + 1
        assert moved.controller_epoch == new_epoch

    # Resumed, the old controller finds its session expired and resigns; the new one stays.
    wait_for(
        lambda: (
            f"controller (epoch {old_epoch}) resigns"
            in b[old_id].stderr_path.read_text(errors="replace")
        ),
        REJOIN_DEADLINE_S,
        "the old controller resigning",
    )
    wait_rejoined(b, zk, topic, old_id, old_session)
    assert controller(zk) == (new_id, new_epoch)
    for q in range(PARTITIONS):
        s = state(zk, topic, q)
        assert s is not None and s.controller_epoch in (old_epoch, new_epoch)
        if q == p:
            assert s.controller_epoch == new_epoch
    history.check_consistent()
