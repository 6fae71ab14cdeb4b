"""Losing a group's coordinator on a three-broker cluster (issue 5, item d).

A confluent-kafka consumer (its own process) consumes a three-partition topic in a
group, committing after processing (at-least-once).  Its coordinator - the leader of the
group's ``__consumer_offsets`` partition (replication factor 3) - is killed with
SIGKILL.  FindCoordinator then names another broker, which serves the offsets committed
before the kill (nothing committed is lost: they were replicated); the consumer finds it
by itself, goes on consuming and committing there, and the coordinator describes the
group as Stable with it.  The consumer is then killed too; a new member of the group
starts exactly at the last committed offsets (nothing below them read again, nothing
skipped), and every record produced was consumed at least once overall.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.cluster.conftest import BrokerFactory
from tests.cluster.group_cluster import bootstrap_of, create_group_topic, start_group_cluster
from tests.interop.group_support import Member, ValuesProducer, members_cleanup
from tests.interop.group_wire import (
    DEADLINE_S,
    GroupWire,
    find_coordinator,
    stable_members,
    wait_for,
)

pytestmark = pytest.mark.timeout(420)

PARTITIONS = 3
PHASES = (40, 40, 20)
"""Records per partition produced before the kill, after it, and for the new member."""


def values(phase: int, count: int) -> dict[int, list[bytes]]:
    return {p: [f"{phase}-{p}-{i}".encode() for i in range(count)] for p in range(PARTITIONS)}


def committed_at(address: str, group: str, topic: str) -> dict[int, int] | None:
    """The offsets ``address`` serves as the group's coordinator; None while it cannot
    (not the coordinator, loading, or unreachable)."""
    try:
        with GroupWire.to(address, 10.0) as wire:
            answer = wire.fetch_offsets(group, topic, list(range(PARTITIONS)))
    except OSError:
        return None
    if getattr(answer, "error_code", 0) != 0:
        return None
    (t,) = answer.topics
    if any(p.error_code != 0 for p in t.partitions):
        return None
    return {p.partition_index: p.committed_offset for p in t.partitions}


def new_coordinator(
    bootstrap: str, group: str, topic: str, old: int
) -> tuple[int, str, dict[int, int]] | None:
    """(id, address, committed offsets) of the group's coordinator once FindCoordinator
    names a broker other than ``old`` and that broker serves the offsets."""
    node, address = find_coordinator(bootstrap, group, DEADLINE_S)
    if node == old:
        return None
    offsets = committed_at(address, group, topic)
    return None if offsets is None else (node, address, offsets)


def offsets_by_partition(records: list[tuple[int, int, str]]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {p: [] for p in range(PARTITIONS)}
    for p, o, _ in records:
        out[p].append(o)
    return out


def test_the_group_survives_its_coordinator(
    brokers: BrokerFactory,
    zk: KazooClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster = start_group_cluster(brokers, zk)
    bootstrap = bootstrap_of(cluster)
    topic, group = "payments", "billing"
    create_group_topic(cluster, topic, PARTITIONS)
    old, old_address = find_coordinator(bootstrap, group, DEADLINE_S)
    first_end = PHASES[0]
    second_end = first_end + PHASES[1]
    last_end = second_end + PHASES[2]
    producer = ValuesProducer(bootstrap)
    producer.send(topic, values(1, PHASES[0]))

    with members_cleanup() as started:
        a = Member.start(
            tmp_path,
            "a",
            client="confluent",
            bootstrap=bootstrap,
            group=group,
            topic=topic,
            batch=10,
        )
        started.append(a)
        a.wait(
            lambda m: m.committed() == dict.fromkeys(range(PARTITIONS), first_end),
            "member a committing everything produced before the kill",
        )
        assert committed_at(old_address, group, topic) == dict.fromkeys(
            range(PARTITIONS), first_end
        )
        read_before_kill = len(a.records())

        cluster[old].kill()
        killed_at = time.monotonic()
        live = bootstrap_of(cluster, skip=old)
        new, new_address, served = wait_for(
            lambda: new_coordinator(live, group, topic, old),
            f"another broker than {old} serving the group's committed offsets",
            DEADLINE_S * 2,
        )
        coordinator_moved = time.monotonic() - killed_at
        # Nothing committed is lost: the new coordinator has every commit acknowledged.
        assert served == dict.fromkeys(range(PARTITIONS), first_end), served

        producer.send(topic, values(2, PHASES[1]))
        a.wait(
            lambda m: m.committed() == dict.fromkeys(range(PARTITIONS), second_end),
            f"member a committing everything produced after the kill, to broker {new}",
            DEADLINE_S * 2,
        )
        assert wait_for(
            lambda: stable_members(live, group, topic) == {"a": frozenset(range(PARTITIONS))},
            f"broker {new} describing the group Stable with member a",
            DEADLINE_S,
        )
        assert committed_at(new_address, group, topic) == dict.fromkeys(
            range(PARTITIONS), second_end
        )
        a.kill()

        producer.send(topic, values(3, PHASES[2]))
        b = Member.start(
            tmp_path, "b", client="confluent", bootstrap=live, group=group, topic=topic, batch=10
        )
        started.append(b)
        b.wait(
            lambda m: all(
                last_end - 1 in offsets for offsets in offsets_by_partition(m.records()).values()
            ),
            "member b reading to the end of every partition",
            DEADLINE_S * 2,
        )
        b.stop()

    # Member a, through the failover: every offset once at least, and after the kill
    # nothing below what it had committed before it.
    a_offsets = offsets_by_partition(a.records())
    for p, offsets in a_offsets.items():
        assert set(offsets) == set(range(second_end)), (p, sorted(set(offsets)))
    after_kill = offsets_by_partition(a.records()[read_before_kill:])
    assert all(o >= first_end for offsets in after_kill.values() for o in offsets), after_kill

    # Member b starts exactly at the committed offsets and reads each record once.
    for p, offsets in offsets_by_partition(b.records()).items():
        assert offsets == list(range(second_end, last_end)), (p, offsets)
    expected_b = {(p, f"3-{p}-{i}") for p in range(PARTITIONS) for i in range(PHASES[2])}
    assert {(p, v) for p, _, v in b.records()} == expected_b

    with capsys.disabled():
        print(
            f"\ncoordinator {old} SIGKILLed; broker {new} served the group's offsets "
            f"{coordinator_moved:.1f} s later"
        )
