"""Consumer groups on a three-broker cluster with real clients, each consumer a process
of its own: three members of one group share a six-partition topic (replication
factor 3) so that every partition is assigned to exactly one member - as the members
report it from their rebalance callbacks, and as the coordinator describes the group
(DescribeGroups).  One member is then killed with SIGKILL: it sends no LeaveGroup, so
only its session timeout tells the coordinator it is gone; its partitions move to the
two others, which consume records produced to them afterwards.

Run once with confluent-kafka (librdkafka) consumers and once with kafka-python's.
The time from the kill to the new assignment is printed (session.timeout.ms is 6 s).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from tests.cluster.conftest import BrokerFactory
from tests.cluster.group_cluster import bootstrap_of, create_group_topic, start_group_cluster
from tests.interop.group_support import Member, ValuesProducer, members_cleanup
from tests.interop.group_wire import DEADLINE_S, SESSION_TIMEOUT_MS, stable_members, wait_for

pytestmark = pytest.mark.timeout(360)

PARTITIONS = 6
MOVE_DEADLINE_S = SESSION_TIMEOUT_MS / 1000 + 45
"""The killed member's partitions must have moved by then: its session timeout, and a
margin for the survivors to rejoin on a shared, slow machine."""


def exclusive_cover(members: list[Member]) -> dict[str, frozenset[int]] | None:
    """The members' latest assignments, once each holds some partitions and together
    they hold every partition exactly once; else None."""
    got = {m.name: m.assignment() for m in members}
    held = [a for a in got.values() if a]
    if len(held) != len(members):
        return None
    if sum(len(a) for a in held) != PARTITIONS or frozenset().union(*held) != set(
        range(PARTITIONS)
    ):
        return None
    return {name: a for name, a in got.items() if a is not None}


def consumed_values(members: list[Member]) -> dict[str, set[str]]:
    return {m.name: {v for _, _, v in m.records()} for m in members}


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_a_killed_members_partitions_move_to_the_others(
    client: str,
    brokers: BrokerFactory,
    zk: KazooClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cluster = start_group_cluster(brokers, zk)
    bootstrap = bootstrap_of(cluster)
    topic, group = f"orders-{client}", f"shipping-{client}"
    create_group_topic(cluster, topic, PARTITIONS)
    before = {p: [f"before-{p}-{i}".encode() for i in range(5)] for p in range(PARTITIONS)}
    producer = ValuesProducer(bootstrap)
    producer.send(topic, before)

    with members_cleanup() as started:
        for name in ("a", "b", "c"):
            started.append(
                Member.start(
                    tmp_path, name, client=client, bootstrap=bootstrap, group=group, topic=topic
                )
            )
        members = list(started)
        three = wait_for(
            lambda: exclusive_cover(members),
            lambda: (
                f"3 members sharing {PARTITIONS} partitions: "
                f"{ {m.name: m.assignment() for m in members} }"
            ),
            DEADLINE_S * 2,
        )
        described = wait_for(
            lambda: stable_members(bootstrap, group, topic) == three,
            f"the coordinator describing the group Stable with {three}",
            DEADLINE_S,
        )
        assert described
        every_before = {v.decode() for vs in before.values() for v in vs}
        wait_for(
            lambda: set().union(*consumed_values(members).values()) >= every_before,
            "every record produced before the kill consumed",
            DEADLINE_S,
        )

        victim, survivors = members[0], members[1:]
        lost = three[victim.name]
        victim.kill()
        killed_at = time.monotonic()
        two = wait_for(
            lambda: exclusive_cover(survivors),
            lambda: (
                f"the 2 survivors sharing {PARTITIONS} partitions: "
                f"{ {m.name: m.assignment() for m in survivors} }"
            ),
            MOVE_DEADLINE_S,
        )
        moved_after = time.monotonic() - killed_at
        # Not before the session timeout ends (less the heartbeat interval): a crashed
        # member is not taken out of the group when its connection closes.
        assert moved_after > SESSION_TIMEOUT_MS / 1000 - 1.5, moved_after
        wait_for(
            lambda: stable_members(bootstrap, group, topic) == two,
            f"the coordinator describing the group Stable with {two}",
            DEADLINE_S,
        )

        after = {p: [f"after-{p}".encode()] for p in range(PARTITIONS)}
        producer.send(topic, after)
        owner = {p: name for name, parts in two.items() for p in parts}

        def all_consumed_by_owner() -> bool:
            seen = consumed_values(survivors)
            return all(f"after-{p}" in seen[owner[p]] for p in range(PARTITIONS))

        wait_for(
            all_consumed_by_owner,
            lambda: (
                f"each record produced after the kill consumed by its partition's new "
                f"owner {owner}: {consumed_values(survivors)}"
            ),
            DEADLINE_S,
        )

    with capsys.disabled():
        print(
            f"\n{client}: member {victim.name} (partitions {sorted(lost)}) SIGKILLed; "
            f"survivors' assignment {{{', '.join(f'{n}: {sorted(a)}' for n, a in two.items())}}} "
            f"after {moved_after:.1f} s (session.timeout.ms={SESSION_TIMEOUT_MS})"
        )
