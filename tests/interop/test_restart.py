"""A broker killed with SIGKILL (no clean shutdown, nothing flushed by it) and restarted on
the same data directory serves every record it acknowledged with acks=all, at the same
offsets, keeps its topics, and goes on appending after them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest

from harness.launcher import BrokerProcess, start_broker
from tests.interop.support import (
    CLIENT_TIMEOUT_S,
    Record,
    admin,
    consume_confluent,
    create_topic,
    kcat,
    produce_all,
    topic_partitions,
    unique_topic,
)

PARTITIONS = 3


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    with start_broker(1, work_dir=tmp_path) as b:
        yield b


def read_everything(bootstrap: str, topic: str, count: int) -> dict[tuple[int, int], object]:
    starts = dict.fromkeys(range(PARTITIONS), confluent_kafka.OFFSET_BEGINNING)
    seen = consume_confluent(bootstrap, topic, starts, count)
    return {(r.partition, r.offset): (r.key, r.value) for r in seen}


def as_map(records: list[Record]) -> dict[tuple[int, int], object]:
    return {(r.partition, r.offset): (r.key, r.value) for r in records}


def test_kill_9_and_restart_serves_everything_acknowledged(own_broker: BrokerProcess) -> None:
    bootstrap = own_broker.bootstrap
    topic = create_topic(bootstrap, unique_topic("restart"), PARTITIONS)
    acked = produce_all(bootstrap, topic, [(f"k{i % 23}".encode(), b"v%d" % i) for i in range(200)])
    acked += produce_all(
        bootstrap,
        topic,
        [(f"z{i % 7}".encode(), b"compressed %d " % i * 10) for i in range(100)],
        config={"compression.type": "gzip", "enable.idempotence": True},
    )
    old_pid = own_broker.pid

    own_broker.kill()
    assert not own_broker.alive()
    own_broker.restart()
    assert own_broker.pid != old_pid
    assert own_broker.bootstrap == bootstrap

    assert topic_partitions(bootstrap, topic) == PARTITIONS
    assert read_everything(bootstrap, topic, len(acked)) == as_map(acked)

    more = produce_all(
        bootstrap,
        topic,
        [(f"k{i % 23}".encode(), b"after %d" % i) for i in range(60)],
        config={"enable.idempotence": True},
    )
    for p in range(PARTITIONS):
        before = [r.offset for r in acked if r.partition == p]
        after = sorted(r.offset for r in more if r.partition == p)
        assert after == list(range(len(before), len(before) + len(after))), p
    assert read_everything(bootstrap, topic, len(acked) + len(more)) == as_map(acked + more)

    out = kcat("-b", bootstrap, "-t", topic, "-C", "-o", "beginning", "-e", "-f", "%p %o\n")
    assert sorted(tuple(map(int, line.split())) for line in out.splitlines()) == sorted(
        as_map(acked + more)
    )


def test_restart_twice_with_a_topic_deleted_in_between(own_broker: BrokerProcess) -> None:
    bootstrap = own_broker.bootstrap
    kept = create_topic(bootstrap, unique_topic("kept"), PARTITIONS)
    gone = create_topic(bootstrap, unique_topic("gone"), 1)
    acked = produce_all(bootstrap, kept, [(b"key-%d" % i, b"value") for i in range(50)])
    produce_all(bootstrap, gone, [(None, b"x")] * 5)
    own_broker.kill()
    own_broker.restart()

    client = admin(bootstrap)  # kept: a destroyed client fails its futures
    client.delete_topics([gone])[gone].result(timeout=CLIENT_TIMEOUT_S)
    own_broker.kill()
    own_broker.restart()
    assert topic_partitions(bootstrap, gone) is None
    assert read_everything(bootstrap, kept, len(acked)) == as_map(acked)
