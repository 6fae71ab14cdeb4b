"""Group membership through the wire against one broker process: KIP-394, two members
joining and the leader's assignment relayed, heartbeats signalling a rebalance, a silent
member's session expiring, static membership, LeaveGroup, ListGroups and DescribeGroups,
Kafka's error codes, every version of each API, and the group surviving a restart (its
record read back from ``__consumer_offsets``)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from impl.group.coordinator import GroupLogView
from impl.group.offsets_log import GroupLog
from spec.errors import ErrorCode
from tests.group import membership_wire as mw
from tests.group import offsets_wire as ow
from tests.group.brokers import Start, broker_starter
from tests.group.membership_wire import Member
from tests.impl import kio_requests as kr
from tests.impl.conftest import BrokerProcess

UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    with broker_starter(tmp_path, mw.PROPERTIES) as run:
        yield run


@pytest.fixture
def broker(start: Start) -> BrokerProcess:
    """A broker that coordinates every group (one offsets partition, loaded)."""
    b = start()
    mw.ready(b, "any")
    return b


def first_generation(broker: BrokerProcess, group: str) -> tuple[Member, Member]:
    """A joins alone (generation 1, its own leader), then B joins: A learns of the
    rebalance from its heartbeat and rejoins; generation 2 has both, A leading."""
    a, b = Member(broker, group), Member(broker, group)
    assert a.join().error_code == ErrorCode.MEMBER_ID_REQUIRED
    joined = a.join()
    assert (joined.error_code, joined.generation_id, joined.leader) == (0, 1, a.member_id)
    assert a.sync({a.member_id: b"all"}).assignment == b"all"
    assert b.join().error_code == ErrorCode.MEMBER_ID_REQUIRED
    b.send_join()  # parks until A rejoins
    a.heartbeat_until(ErrorCode.REBALANCE_IN_PROGRESS)
    lead = a.join()
    follow = b.receive_join()
    assert (lead.error_code, follow.error_code) == (0, 0)
    assert lead.generation_id == follow.generation_id == 2
    assert lead.leader == follow.leader == a.member_id
    assert sorted(m.member_id for m in lead.members) == sorted([a.member_id, b.member_id])
    assert follow.members == ()
    return a, b


def test_kip394_member_id(broker: BrokerProcess) -> None:
    a = Member(broker, "g394")
    answer = a.join()
    assert answer.error_code == ErrorCode.MEMBER_ID_REQUIRED
    assert re.fullmatch(f"{mw.CLIENT_ID}-{UUID}", answer.member_id)
    assert answer.generation_id == -1 and answer.leader == ""
    # a rejoin with another, made-up id is refused
    other = Member(broker, "g394")
    other.member_id = f"{mw.CLIENT_ID}-made-up"
    assert other.join().error_code == ErrorCode.UNKNOWN_MEMBER_ID
    assert a.join().error_code == 0


def test_two_members_assignment_describe_and_list(broker: BrokerProcess) -> None:
    a, b = first_generation(broker, "g2")
    b.send_sync()  # the follower waits for the leader's assignment
    assert a.sync({a.member_id: b"A", b.member_id: b"B"}).assignment == b"A"
    synced = b.receive_sync()
    assert (synced.error_code, synced.assignment) == (0, b"B")
    assert (synced.protocol_type, synced.protocol_name) == ("consumer", "range")
    assert a.heartbeat() is ErrorCode.NONE
    with broker.client() as client:
        described = mw.describe(client, "g2")
        assert (described.error_code, described.group_state) == (0, "Stable")
        assert (described.protocol_type, described.protocol_data) == ("consumer", "range")
        members = {m.member_id: m for m in described.members}
        assert members[b.member_id].member_assignment == b"B"
        assert members[a.member_id].member_metadata == b"meta"
        assert members[a.member_id].client_id == mw.CLIENT_ID
        assert members[a.member_id].client_host == "/127.0.0.1"  # as Kafka prints it
        assert described.authorized_operations == group_operations()
        assert mw.describe(client, "no-such-group").group_state == "Dead"
        assert mw.list_groups(client)["g2"] == ("consumer", "Stable")
        assert "g2" in mw.list_groups(client, states=("stable",))
        assert "g2" not in mw.list_groups(client, states=("Empty",))
        assert "g2" not in mw.list_groups(client, types=("consumer",))
        assert "g2" in mw.list_groups(client, types=("classic",))


def group_operations() -> int:
    read, delete, describe = 3, 6, 8  # AclOperation codes
    return (1 << read) | (1 << delete) | (1 << describe)


def test_a_silent_member_is_removed_after_its_session_timeout(broker: BrokerProcess) -> None:
    a, b = Member(broker, "gs"), Member(broker, "gs")
    a.join(session_ms=6000)
    a.join(session_ms=6000)
    a.sync()
    b.join(session_ms=1000)
    b.send_join(session_ms=1000)
    a.heartbeat_until(ErrorCode.REBALANCE_IN_PROGRESS)
    assert a.join(session_ms=6000).generation_id == 2
    assert b.receive_join().generation_id == 2
    b.send_sync()
    a.sync({a.member_id: b"A", b.member_id: b"B"})
    assert b.receive_sync().assignment == b"B"
    # b falls silent: after its 1 s session a's heartbeat is told to rejoin
    a.heartbeat_until(ErrorCode.REBALANCE_IN_PROGRESS)
    rejoined = a.join(session_ms=6000)
    assert (rejoined.generation_id, [m.member_id for m in rejoined.members]) == (3, [a.member_id])
    assert b.heartbeat() is ErrorCode.UNKNOWN_MEMBER_ID


def test_static_membership(broker: BrokerProcess) -> None:
    a = Member(broker, "gst", version=5)
    a.instance = "instance-1"
    joined = a.join()  # a static member is named at once
    assert joined.error_code == 0 and re.fullmatch(f"instance-1-{UUID}", joined.member_id)
    a.sync({a.member_id: b"A"})
    old_id = a.member_id
    # the instance restarts and joins with no member id: a new id, same generation, and
    # (v5) the old leader id so that it does not run the assignor again
    restarted = Member(broker, "gst", version=5)
    restarted.instance = "instance-1"
    again = restarted.join()
    assert again.error_code == 0 and again.member_id != old_id
    assert (again.generation_id, again.leader, again.members) == (1, old_id, ())
    assert restarted.sync().assignment == b"A"
    assert a.heartbeat() is ErrorCode.FENCED_INSTANCE_ID
    assert restarted.heartbeat() is ErrorCode.NONE
    # v9: the rejoining leader is told it leads but must skip the assignment
    third = Member(broker, "gst", version=9)
    third.instance = "instance-1"
    skip = third.join()
    assert (skip.error_code, skip.leader, skip.skip_assignment) == (0, skip.member_id, True)
    assert restarted.heartbeat() is ErrorCode.FENCED_INSTANCE_ID
    with broker.client() as client:
        (member,) = mw.describe(client, "gst").members
        assert (member.member_id, member.group_instance_id) == (skip.member_id, "instance-1")
        # an admin removes it by its instance id alone
        left = client.request(mw.leave_request("gst", ("", "instance-1")))
        assert [(m.group_instance_id, m.error_code) for m in left.members] == [("instance-1", 0)]
        assert mw.describe(client, "gst").group_state == "Empty"


def test_leave_group(broker: BrokerProcess) -> None:
    a, b = first_generation(broker, "gl")
    with broker.client() as client:
        left = client.request(
            mw.leave_request("gl", (b.member_id, None), ("nobody", None), version=3)
        )
        assert left.error_code == 0
        assert [(m.member_id, m.error_code) for m in left.members] == [
            (b.member_id, 0),
            ("nobody", ErrorCode.UNKNOWN_MEMBER_ID),
        ]
        assert a.heartbeat() is ErrorCode.REBALANCE_IN_PROGRESS
        assert a.join().generation_id == 3
        assert (
            client.request(mw.leave_request("gl", (a.member_id, None), version=0)).error_code == 0
        )
        described = mw.describe(client, "gl")
        assert (described.group_state, described.members) == ("Empty", ())
        assert mw.list_groups(client, states=("Empty",))["gl"] == ("consumer", "Empty")
        old = client.request(mw.leave_request("gl", ("nobody", None), version=1))
        assert old.error_code == ErrorCode.UNKNOWN_MEMBER_ID


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"session_ms": 100}, ErrorCode.INVALID_SESSION_TIMEOUT),
        ({"session_ms": 1_800_001}, ErrorCode.INVALID_SESSION_TIMEOUT),
        ({"protocols": ()}, ErrorCode.INCONSISTENT_GROUP_PROTOCOL),
        ({"protocol_type": ""}, ErrorCode.INCONSISTENT_GROUP_PROTOCOL),
    ],
)
def test_join_errors(broker: BrokerProcess, kw: dict[str, object], error: ErrorCode) -> None:
    with broker.client() as client:
        answer = client.request(mw.join_request("gerr", **kw))  # type: ignore[arg-type]
        assert answer.error_code == error


def test_group_errors(broker: BrokerProcess) -> None:
    a = Member(broker, "gx")
    a.join()
    a.join()
    with broker.client() as client:
        other = client.request(mw.join_request("gx", protocols=(("sticky", b""),), version=3))
        assert other.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        assert client.request(mw.join_request("", version=3)).error_code == (
            ErrorCode.INVALID_GROUP_ID
        )
        stale = client.request(mw.heartbeat_request("gx", 0, a.member_id))
        assert stale.error_code == ErrorCode.ILLEGAL_GENERATION
        assert client.request(mw.sync_request("gx", 0, a.member_id)).error_code == (
            ErrorCode.ILLEGAL_GENERATION
        )
        missing = client.request(mw.sync_request("gx", 1, a.member_id, protocol_name=None))
        assert missing.error_code == ErrorCode.INCONSISTENT_GROUP_PROTOCOL  # v5 needs both
        unknown = client.request(mw.heartbeat_request("nowhere", 1, "x"))
        assert unknown.error_code == ErrorCode.UNKNOWN_MEMBER_ID
        no_id = client.request(mw.leave_request("", (a.member_id, None), version=3))
        assert (no_id.error_code, no_id.members) == (ErrorCode.INVALID_GROUP_ID, ())


def test_group_max_size(broker: BrokerProcess) -> None:
    members = [Member(broker, "gmax", version=3) for _ in range(3)]
    members[0].join()
    members[0].sync()
    for m in members[1:]:
        m.send_join()
    members[0].heartbeat_until(ErrorCode.REBALANCE_IN_PROGRESS)
    members[0].join()
    for m in members[1:]:
        assert m.receive_join().generation_id == 2
    with broker.client() as client:
        fourth = client.request(mw.join_request("gmax", version=3))
        assert (fourth.error_code, fourth.member_id) == (ErrorCode.GROUP_MAX_SIZE_REACHED, "")


def test_not_coordinator_before_the_offsets_topic_exists(start: Start) -> None:
    fresh = start()
    with fresh.client() as client:
        assert client.request(mw.join_request("g", version=3)).error_code == (
            ErrorCode.NOT_COORDINATOR
        )
        assert client.request(mw.heartbeat_request("g", 1, "m")).error_code == (
            ErrorCode.NOT_COORDINATOR
        )
        assert mw.describe(client, "g").error_code == ErrorCode.NOT_COORDINATOR
        # a refused LeaveGroup (v3+) names no member, as Kafka answers it
        for version in (3, 5):
            left = client.request(mw.leave_request("g", ("m", None), version=version))
            assert (left.error_code, left.members) == (ErrorCode.NOT_COORDINATOR, ())


@pytest.mark.parametrize("version", range(10))
def test_every_join_group_version(broker: BrokerProcess, version: int) -> None:
    group = f"gv{version}"
    a = Member(broker, group, version=version)
    first = a.join()
    if version >= 4:
        assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED
        first = a.join()
    assert (first.error_code, first.generation_id, first.leader) == (0, 1, a.member_id)
    assert first.protocol_name == "range"
    if version >= 7:
        assert first.protocol_type == "consumer"
    sync_version = min(version, 5)
    assert a.sync({a.member_id: b"x"}, version=sync_version).assignment == b"x"
    with broker.client() as client:
        hb = client.request(mw.heartbeat_request(group, 1, a.member_id, version=min(version, 4)))
        assert hb.error_code == 0
        for v in range(6):
            described = mw.describe(client, group, version=v)
            assert (described.group_state, len(described.members)) == ("Stable", 1)
            listed = mw.list_groups(client, version=v)
            assert listed[group][0] == "consumer"
        leave_version = min(version, 5)
        left = client.request(mw.leave_request(group, (a.member_id, None), version=leave_version))
        assert left.error_code == 0


def test_the_group_survives_a_restart(start: Start) -> None:
    broker = start()
    mw.ready(broker, "gr")
    a, b = first_generation(broker, "gr")
    b.send_sync()
    a.sync({a.member_id: b"A", b.member_id: b"B"})
    assert b.receive_sync().assignment == b"B"
    a.close()
    b.close()
    assert broker.stop() == 0
    broker = start()
    mw.ready(broker, "gr")
    with broker.client() as client:
        described = mw.describe(client, "gr")
        assert described.group_state == "Stable"
        assert {m.member_id: m.member_assignment for m in described.members} == {
            a.member_id: b"A",
            b.member_id: b"B",
        }
        hb = client.request(mw.heartbeat_request("gr", 2, b.member_id))
        assert hb.error_code == 0
        stale = client.request(mw.heartbeat_request("gr", 1, b.member_id))
        assert stale.error_code == ErrorCode.ILLEGAL_GENERATION


def test_a_group_that_only_commits_offsets(start: Start) -> None:
    broker = start()
    mw.ready(broker, "simple")
    with broker.client() as client:
        (created,) = client.request(kr.create_topics([("t", 1, 1)])).topics
        assert created.error_code == 0
        # a consumer outside group management (assign()) commits: generation -1, no member
        assert ow.commit(client, "simple", {("t", 0): (5, None)}) == {("t", 0): ErrorCode.NONE}
        described = mw.describe(client, "simple")
        assert (described.group_state, described.protocol_type, described.members) == (
            "Empty",
            "",
            (),
        )
        assert mw.list_groups(client)["simple"] == ("", "Empty")
        # a member of a generation the group never had is refused
        stale = ow.commit(client, "nogroup", {("t", 0): (1, None)}, generation=3, member_id="m")
        assert stale == {("t", 0): ErrorCode.ILLEGAL_GENERATION}
    assert broker.stop() == 0
    broker = start()
    mw.ready(broker, "simple")
    with broker.client() as client:
        assert mw.describe(client, "simple").group_state == "Empty"  # from its offsets


def test_an_empty_group_without_offsets_dies_at_the_offsets_cleanup(start: Start) -> None:
    """Kafka's offsets cleanup (every offsets.retention.check.interval.ms) looks at every
    group: one Empty with no committed offsets dies (Dead, gone from ListGroups), not
    only one whose last offsets have just expired."""
    broker = start({**mw.PROPERTIES, "offsets.retention.check.interval.ms": "100"})
    mw.ready(broker, "gone")
    a = Member(broker, "gone", version=3)
    assert a.join().generation_id == 1
    with broker.client() as client:
        left = client.request(mw.leave_request("gone", (a.member_id, None), version=3))
        assert [m.error_code for m in left.members] == [0]
        deadline = time.monotonic() + mw.DEADLINE_S
        while (state := mw.describe(client, "gone").group_state) != "Dead":
            assert state == "Empty" and time.monotonic() < deadline, state
            time.sleep(0.05)  # polling a periodic task's effect, with a deadline
        assert "gone" not in mw.list_groups(client)


def test_initial_rebalance_delay(start: Start) -> None:
    """A new group waits group.initial.rebalance.delay.ms for more members, and again
    as long as new ones arrived meanwhile (KIP-134): two members sent together end up in
    one first generation, answered after two delays."""
    broker = start({**mw.PROPERTIES, "group.initial.rebalance.delay.ms": "1000"})
    mw.ready(broker, "gd")
    a, b = Member(broker, "gd", version=3), Member(broker, "gd", version=3)
    sent = time.monotonic()
    a.send_join()
    b.send_join()
    first, second = a.receive_join(), b.receive_join()
    assert time.monotonic() - sent >= 2.0
    assert first.generation_id == second.generation_id == 1
    assert len(first.members) + len(second.members) == 2


def test_the_offsets_log_is_what_the_coordinator_needs() -> None:
    """mypy checks this: GroupLog provides the coordinator's GroupLogView."""

    def view(log: GroupLog) -> GroupLogView:
        return log

    assert callable(view)
