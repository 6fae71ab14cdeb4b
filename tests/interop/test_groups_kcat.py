"""kcat in balanced consumer-group mode (``kcat -G``, librdkafka's subscribe) against a
single broker: it joins (the coordinator describes it as the group's one stable member
holding every partition), consumes, and commits what it consumed when it leaves; the
commits are what OffsetFetch returns, and the next member of the group - another kcat,
or a confluent-kafka consumer - resumes exactly there: nothing read twice, nothing
skipped."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from typing import IO

import confluent_kafka
import pytest

from harness.launcher import BrokerProcess, start_broker
from tests.interop.group_wire import (
    DEADLINE_S,
    SESSION_TIMEOUT_MS,
    coordinator_wire,
    described_assignments,
    stable_members,
    wait_for,
)
from tests.interop.support import (
    KCAT,
    create_topic,
    kcat,
    poll_confluent,
    produce_all,
    unique_topic,
)

GROUP_CONFIG = {
    "offsets.topic.num.partitions": 5,
    "group.initial.rebalance.delay.ms": 0,
}
PARTITIONS = 2
PER_PARTITION = 20


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """This module's broker: a small __consumer_offsets, no initial rebalance delay."""
    with start_broker(1, work_dir=tmp_path_factory.mktemp("broker"), config=GROUP_CONFIG) as b:
        yield b


def kcat_group_args(bootstrap: str, group: str, topic: str, *extra: str) -> list[str]:
    return [
        "-b",
        bootstrap,
        "-G",
        group,
        "-X",
        "auto.offset.reset=earliest",
        "-X",
        f"session.timeout.ms={SESSION_TIMEOUT_MS}",
        "-X",
        "heartbeat.interval.ms=500",
        "-f",
        "%p %o %s\n",
        "-q",
        "-u",  # unbuffered: each record as it comes (stdout is a pipe)
        *extra,
        topic,
    ]


def parse(out: bytes) -> list[tuple[int, int, str]]:
    """kcat's ``%p %o %s`` lines as (partition, offset, value)."""
    rows = []
    for line in out.decode().splitlines():
        p, o, v = line.split(" ", 2)
        rows.append((int(p), int(o), v))
    return rows


def fill(bootstrap: str, prefix: str) -> tuple[str, str]:
    """A topic of two partitions with ``p<partition>-<i>`` at offsets 0..19 of each."""
    topic = create_topic(bootstrap, unique_topic(prefix), PARTITIONS)
    for p in range(PARTITIONS):
        values = [(None, f"p{p}-{i}".encode()) for i in range(PER_PARTITION)]
        produce_all(bootstrap, topic, values, partition=p)
    return topic, unique_topic(f"{prefix}-group")


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    with coordinator_wire(bootstrap, group) as wire:
        return wire.committed(group, topic, list(range(PARTITIONS)))


def test_kcat_joins_consumes_and_commits_on_leaving(bootstrap: str) -> None:
    topic, group = fill(bootstrap, "kcat-g")
    proc = subprocess.Popen(
        [KCAT, *kcat_group_args(bootstrap, group, topic)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines: list[bytes] = []

    def read(stream: IO[bytes]) -> None:
        lines.extend(stream)

    assert proc.stdout is not None
    reader = threading.Thread(target=read, args=(proc.stdout,), daemon=True)
    reader.start()
    try:
        total = PARTITIONS * PER_PARTITION
        wait_for(lambda: len(lines) >= total, lambda: f"kcat's records ({len(lines)})", DEADLINE_S)
        members = wait_for(
            lambda: stable_members(bootstrap, group, topic), f"group {group} Stable", DEADLINE_S
        )
        assert list(members.values()) == [frozenset(range(PARTITIONS))], members
        proc.send_signal(signal.SIGTERM)  # kcat stops, closes its consumer: commit, leave
        _, err = proc.communicate(timeout=DEADLINE_S)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    got = parse(b"".join(lines))
    expected = [(p, i, f"p{p}-{i}") for p in range(PARTITIONS) for i in range(PER_PARTITION)]
    assert sorted(got) == expected
    assert committed(bootstrap, group, topic) == dict.fromkeys(range(PARTITIONS), PER_PARTITION)
    state, members = described_assignments(bootstrap, group, topic)
    assert (state, members) == ("Empty", {})

    # Another member of the group starts where kcat's commits say.
    produce_all(bootstrap, topic, [(None, b"later")], partition=1)
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": SESSION_TIMEOUT_MS,
        }
    )
    try:
        consumer.subscribe([topic])
        later = poll_confluent(consumer, 1, DEADLINE_S)
        assert [(r.partition, r.offset, r.value) for r in later] == [(1, PER_PARTITION, b"later")]
        assert consumer.poll(1.0) is None  # nothing older comes after it
    finally:
        consumer.close()


def test_consecutive_kcat_members_split_the_records_without_overlap(bootstrap: str) -> None:
    """kcat -c N leaves the group after N records, committing them; the next kcat of the
    group reads the rest."""
    topic, group = fill(bootstrap, "kcat-split")
    total = PARTITIONS * PER_PARTITION
    first = parse(kcat(*kcat_group_args(bootstrap, group, topic, "-c", "15")))
    assert len(first) == 15
    ends = {p: max(o for q, o, _ in first if q == p) + 1 for p in {q for q, _, _ in first}}
    seen = committed(bootstrap, group, topic)
    assert seen == {p: ends.get(p, -1) for p in range(PARTITIONS)}, (seen, ends)

    second = parse(kcat(*kcat_group_args(bootstrap, group, topic, "-c", str(total - 15))))
    assert len(second) == total - 15
    both = first + second
    expected = [(p, i, f"p{p}-{i}") for p in range(PARTITIONS) for i in range(PER_PARTITION)]
    assert sorted(both) == expected  # every record once: none skipped, none twice
    assert committed(bootstrap, group, topic) == dict.fromkeys(range(PARTITIONS), PER_PARTITION)
