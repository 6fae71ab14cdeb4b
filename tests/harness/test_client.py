"""The harness's own Kafka client against a real kafkaref broker: versions negotiated or
pinned, every error code returned as such, acks=0 without an answer (and the closed
connection that reports its failure), data round trips, and the group APIs."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from harness import client_admin as admin
from harness import client_groups as groups
from harness.client import (
    FETCH,
    FIND_COORDINATOR,
    PRODUCE,
    BrokerClosedError,
    KafkaClient,
    UnsupportedApiError,
)
from harness.client_admin import NewTopic
from harness.launcher import BrokerProcess, start_broker
from impl.wire import records
from spec.errors import ErrorCode
from spec.state import TopicPartition

pytestmark = pytest.mark.timeout(120)
DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def broker() -> Iterator[BrokerProcess]:
    with start_broker() as b:
        yield b


@pytest.fixture
def client(broker: BrokerProcess) -> Iterator[KafkaClient]:
    with KafkaClient(broker.host, broker.port, timeout_s=15.0) as c:
        c.connect()
        c.negotiate()
        yield c


def _batch(*values: bytes, **kwargs: int) -> bytes:
    return records.build_batch([(None, v) for v in values], timestamp=1_700_000_000_000, **kwargs)


def test_versions_are_the_highest_both_sides_have_unless_pinned(client: KafkaClient) -> None:
    high = client.broker_versions[FETCH][1]
    assert client.version(FETCH) == min(high, 12)
    client.pinned[PRODUCE] = 5
    assert client.version(PRODUCE) == 5
    client.broker_versions.pop(FETCH)
    with pytest.raises(UnsupportedApiError):
        client.version(FETCH)
    assert not client.offers(FETCH)


def test_create_topics_and_metadata_report_every_error(client: KafkaClient) -> None:
    created = admin.create_topics(
        client, [NewTopic("c-two", 2, 1), NewTopic("c-assigned", assignment=((0,), (0,), (0,)))]
    )
    assert created == {"c-two": (ErrorCode.NONE, None), "c-assigned": (ErrorCode.NONE, None)}
    again = admin.create_topics(client, [NewTopic("c-two", 2, 1), NewTopic("bad/name", 1, 1)])
    assert again["c-two"][0] == ErrorCode.TOPIC_ALREADY_EXISTS
    assert again["bad/name"][0] == ErrorCode.INVALID_TOPIC_EXCEPTION
    meta = admin.metadata(client, ["c-two", "c-assigned", "c-none"])
    assert sorted(meta.topics["c-two"].partitions) == [0, 1]
    assert sorted(meta.topics["c-assigned"].partitions) == [0, 1, 2]
    p0 = meta.topics["c-two"].partitions[0]
    assert (p0.error, p0.leader, p0.replicas, p0.isr) == (ErrorCode.NONE, 0, (0,), (0,))
    assert meta.topics["c-none"].error == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert admin.delete_topics(client, ["c-assigned"]) == {"c-assigned": ErrorCode.NONE}


def test_produce_fetch_and_list_offsets_round_trip(client: KafkaClient) -> None:
    admin.create_topics(client, [NewTopic("rt", 1, 1)])
    tp = TopicPartition("rt", 0)
    first = client.produce({tp: _batch(b"a", b"b")}, acks=1)
    assert first is not None
    assert (first[tp].error, first[tp].base_offset, first[tp].log_start_offset) == (0, 0, 0)
    second = client.produce({tp: _batch(b"c")}, acks=-1)
    assert second is not None and second[tp].base_offset == 2
    fetched = client.fetch({tp: 1, TopicPartition("rt", 7): 0})
    got = fetched.partitions[tp]
    assert (got.error, got.high_watermark, got.log_start_offset) == (0, 3, 0)
    values = [
        r.value
        for pos, h in records.iter_batches(got.records)
        for r in records.decode_records(got.records[pos : pos + h.size])
    ]
    assert values == [b"a", b"b", b"c"]  # whole batches: the consumer skips offset 0 itself
    assert fetched.partitions[TopicPartition("rt", 7)].error == (
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    )
    assert client.fetch({tp: 4}).partitions[tp].error == ErrorCode.OFFSET_OUT_OF_RANGE
    offsets = client.list_offsets({tp: -2})[tp], client.list_offsets({tp: -1})[tp]
    assert [(o.error, o.offset) for o in offsets] == [(0, 0), (0, 3)]


def test_acks_0_gets_no_answer_and_a_failure_closes_the_connection(client: KafkaClient) -> None:
    admin.create_topics(client, [NewTopic("quiet", 1, 1)])
    assert client.produce({TopicPartition("quiet", 0): _batch(b"x")}, acks=0) is None
    assert (
        client.list_offsets({TopicPartition("quiet", 0): -1})[TopicPartition("quiet", 0)].offset
        == 1
    )
    assert client.produce({TopicPartition("quiet", 5): _batch(b"y")}, acks=0) is None
    with pytest.raises(BrokerClosedError):
        admin.metadata(client, [])
    assert not client.connected


def test_idempotent_producer_duplicates_and_gaps(client: KafkaClient) -> None:
    admin.create_topics(client, [NewTopic("idem", 1, 1)])
    tp = TopicPartition("idem", 0)
    pid = client.init_producer_id()
    assert pid.error == ErrorCode.NONE and pid.producer_id >= 0 and pid.producer_epoch == 0
    batch = _batch(b"1", b"2", producer_id=pid.producer_id, producer_epoch=0, base_sequence=0)
    first = client.produce({tp: batch}, acks=-1)
    retry = client.produce({tp: batch}, acks=-1)
    assert first is not None and retry is not None
    assert first[tp].base_offset == retry[tp].base_offset == 0
    gap = _batch(b"3", producer_id=pid.producer_id, producer_epoch=0, base_sequence=5)
    answer = client.produce({tp: gap}, acks=-1)
    assert answer is not None and answer[tp].error == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_group_apis(client: KafkaClient) -> None:
    if not client.offers(FIND_COORDINATOR):
        pytest.skip("the broker does not offer the group APIs yet")
    admin.create_topics(client, [NewTopic("grouped", 1, 1)])
    deadline = time.monotonic() + DEADLINE_S
    found = groups.find_coordinator(client, "g1")
    while found.error in (
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ):
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
        found = groups.find_coordinator(client, "g1")
    assert (found.error, found.node_id) == (ErrorCode.NONE, 0)
    join = groups.join_group(client, "g1", "", [("range", b"")])
    assert join.error == ErrorCode.MEMBER_ID_REQUIRED and join.member_id
    join = groups.join_group(client, "g1", join.member_id, [("range", b"")])
    assert (join.error, join.generation_id, join.leader) == (ErrorCode.NONE, 1, join.member_id)
    sync = groups.sync_group(
        client, "g1", 1, join.member_id, {join.member_id: b"plan"}, protocol_name="range"
    )
    assert (sync.error, sync.assignment) == (ErrorCode.NONE, b"plan")
    assert groups.heartbeat(client, "g1", 1, join.member_id) == ErrorCode.NONE
    assert groups.heartbeat(client, "g1", 7, join.member_id) == ErrorCode.ILLEGAL_GENERATION
    tp = TopicPartition("grouped", 0)
    committed = groups.offset_commit(
        client, "g1", {tp: (3, "meta")}, generation_id=1, member_id=join.member_id
    )
    assert committed == {tp: ErrorCode.NONE}
    code, offsets = groups.offset_fetch(client, "g1", [tp])
    assert (code, offsets[tp].offset, offsets[tp].metadata) == (ErrorCode.NONE, 3, "meta")
    left, members = groups.leave_group(client, "g1", join.member_id)
    assert left == ErrorCode.NONE and all(m == ErrorCode.NONE for m in members)
