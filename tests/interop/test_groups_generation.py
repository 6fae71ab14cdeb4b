"""Generation fencing of offset commits, seen on the raw wire (a real client would hide
these answers or retry them): a member of generation 1 may still commit while the group
prepares a rebalance (what a consumer does from onPartitionsRevoked), gets
REBALANCE_IN_PROGRESS once the new generation's join is done but its assignment not yet
handed out, and ILLEGAL_GENERATION for a commit from the old generation once the group
is stable again; a member id the group does not know gets UNKNOWN_MEMBER_ID.  Only the
commit of the current generation is stored."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.launcher import BrokerProcess, start_broker
from spec.errors import ErrorCode
from tests.interop.group_wire import (
    GroupWire,
    decode_assignment,
    encode_assignment,
    find_coordinator,
    wait_for,
)
from tests.interop.support import create_topic, unique_topic

GROUP_CONFIG = {
    "offsets.topic.num.partitions": 5,
    "group.initial.rebalance.delay.ms": 0,
}
JOIN_GROUP = 11
DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """This module's broker: a small __consumer_offsets, no initial rebalance delay."""
    with start_broker(1, work_dir=tmp_path_factory.mktemp("broker"), config=GROUP_CONFIG) as b:
        yield b


def join_second(wire: GroupWire, group: str, topic: str) -> None:
    """Send the second member's JoinGroup; from v4 on the broker first hands out a member
    id (MEMBER_ID_REQUIRED) at once, and the join is sent again with it."""
    wire.send_join(group, "", [topic])
    if wire.versions[JOIN_GROUP] >= 4:
        first = wire.receive_join()
        assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED, first
        wire.send_join(group, first.member_id, [topic])


def test_a_commit_from_a_stale_generation_is_rejected(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique_topic("gen"), 2)
    group = unique_topic("gen-group")
    _, address = find_coordinator(bootstrap, group, DEADLINE_S)
    with GroupWire.to(address) as one, GroupWire.to(address) as two:
        joined = one.join(group, "", [topic])
        assert joined.error_code == ErrorCode.NONE, joined
        m1, g1 = joined.member_id, joined.generation_id
        assert joined.leader == m1
        synced = one.sync(group, g1, m1, {m1: encode_assignment({topic: [0, 1]})})
        assert synced.error_code == ErrorCode.NONE, synced
        assert decode_assignment(synced.assignment) == {topic: {0, 1}}
        assert one.commit(group, g1, m1, topic, {0: 5}) == {0: ErrorCode.NONE}

        # A second member: the group prepares a rebalance; member 1 hears of it from its
        # heartbeat and may still commit with generation 1 meanwhile.
        join_second(two, group, topic)
        wait_for(
            lambda: one.heartbeat(group, g1, m1) == ErrorCode.REBALANCE_IN_PROGRESS,
            "member 1's heartbeat answered REBALANCE_IN_PROGRESS",
            DEADLINE_S,
        )
        assert one.commit(group, g1, m1, topic, {0: 6}) == {0: ErrorCode.NONE}

        rejoined = one.join(group, m1, [topic])
        second = two.receive_join()
        assert rejoined.error_code == second.error_code == ErrorCode.NONE, (rejoined, second)
        g2, m2 = rejoined.generation_id, second.member_id
        assert g2 > g1 and second.generation_id == g2
        assert rejoined.leader == m1 and {m.member_id for m in rejoined.members} == {m1, m2}

        # Joined, not yet synced (CompletingRebalance): the new generation may not
        # commit yet, the old one not at all.
        assert one.commit(group, g2, m1, topic, {0: 7}) == {0: ErrorCode.REBALANCE_IN_PROGRESS}
        assert one.commit(group, g1, m1, topic, {0: 7}) == {0: ErrorCode.ILLEGAL_GENERATION}

        plan = {m1: encode_assignment({topic: [0]}), m2: encode_assignment({topic: [1]})}
        assert one.sync(group, g2, m1, plan).error_code == ErrorCode.NONE
        follower = two.sync(group, g2, m2)
        assert follower.error_code == ErrorCode.NONE, follower
        assert decode_assignment(follower.assignment) == {topic: {1}}

        # Stable in generation 2: generation 1 is fenced, for either member.
        assert one.commit(group, g1, m1, topic, {0: 8}) == {0: ErrorCode.ILLEGAL_GENERATION}
        assert two.commit(group, g1, m2, topic, {1: 8}) == {1: ErrorCode.ILLEGAL_GENERATION}
        assert one.heartbeat(group, g1, m1) == ErrorCode.ILLEGAL_GENERATION
        assert one.commit(group, g2, "no-such-member", topic, {0: 8}) == {
            0: ErrorCode.UNKNOWN_MEMBER_ID
        }
        assert one.committed(group, topic, [0, 1]) == {0: 6, 1: -1}

        assert one.commit(group, g2, m1, topic, {0: 9}) == {0: ErrorCode.NONE}
        assert two.commit(group, g2, m2, topic, {1: 3}) == {1: ErrorCode.NONE}
        assert one.committed(group, topic, [0, 1]) == {0: 9, 1: 3}
        assert one.heartbeat(group, g2, m1) == ErrorCode.NONE
        assert one.leave(group, m1) == ErrorCode.NONE
        assert two.leave(group, m2) == ErrorCode.NONE


def test_a_commit_without_a_generation_is_taken_only_while_the_group_is_empty(
    bootstrap: str,
) -> None:
    """A consumer that assign()s its partitions commits with generation -1 and no member
    id: allowed for a group with no members, refused (UNKNOWN_MEMBER_ID) while the group
    has members."""
    topic = create_topic(bootstrap, unique_topic("simple"), 1)
    group = unique_topic("simple-group")
    _, address = find_coordinator(bootstrap, group, DEADLINE_S)
    with GroupWire.to(address) as wire:
        assert wire.commit(group, -1, "", topic, {0: 4}) == {0: ErrorCode.NONE}
        assert wire.committed(group, topic, [0]) == {0: 4}
        joined = wire.join(group, "", [topic])
        assert joined.error_code == ErrorCode.NONE, joined
        assert wire.commit(group, -1, "", topic, {0: 5}) == {0: ErrorCode.UNKNOWN_MEMBER_ID}
        assert wire.committed(group, topic, [0]) == {0: 4}
        assert wire.leave(group, joined.member_id) == ErrorCode.NONE
        assert wire.commit(group, -1, "", topic, {0: 6}) == {0: ErrorCode.NONE}
        assert wire.committed(group, topic, [0]) == {0: 6}
