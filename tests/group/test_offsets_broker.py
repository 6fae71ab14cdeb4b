"""Committed offsets through the wire against one broker process: FindCoordinator
creating ``__consumer_offsets``, OffsetCommit and OffsetFetch at several versions, the
per-partition errors, a commit surviving kill -9, and the offsets of a deleted topic
disappearing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from impl.group.partitioner import GROUP_METADATA_TOPIC_NAME, partition_for
from impl.wire.records import build_batch
from spec.errors import ErrorCode
from tests.group import membership_wire as mw
from tests.group import offsets_wire as ow
from tests.group.brokers import Start, broker_starter
from tests.impl import kio_requests as kr
from tests.impl.conftest import BrokerProcess

SMALL = {"offsets.topic.num.partitions": "3"}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    with broker_starter(tmp_path, SMALL) as run:
        yield run


def create_topic(broker: BrokerProcess, name: str, partitions: int) -> None:
    with broker.client() as client:
        created = client.request(kr.create_topics([(name, partitions, 1)]))
    assert ErrorCode(created.topics[0].error_code) is ErrorCode.NONE


def test_find_coordinator_creates_the_offsets_topic(start: Start) -> None:
    broker = start({})  # Kafka's defaults: 50 partitions
    with broker.client() as client:
        first = ow.find_coordinator(client, "g", version=0)
        assert ErrorCode(first.error_code) is ErrorCode.COORDINATOR_NOT_AVAILABLE
        found = ow.wait_coordinator(client, "g")
        assert (found.node_id, found.host, found.port) == (1, broker.host, broker.port)
        batched = ow.find_coordinator(client, "other-group", version=4)
        assert (batched.key, batched.node_id, batched.port) == ("other-group", 1, broker.port)
        meta = client.request(kr.metadata([GROUP_METADATA_TOPIC_NAME]))
        (topic,) = meta.topics
        assert topic.is_internal and len(topic.partitions) == 50
        assert {len(p.replica_nodes) for p in topic.partitions} == {1}
        configs = client.request(kr.describe_configs([(2, GROUP_METADATA_TOPIC_NAME, None)]))
        values = {e.name: e.value for e in configs.results[0].configs}
        assert values["cleanup.policy"] == "compact"
        assert values["segment.bytes"] == "104857600"
        # transactions have no coordinator here: an error no client retries
        txn = ow.find_coordinator(client, "txn-id", version=3, key_type=1)
        assert ErrorCode(txn.error_code) is ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        assert txn.node_id == -1


def test_clients_cannot_append_to_the_offsets_topic(start: Start) -> None:
    broker = start()
    with broker.client() as client:
        ow.wait_coordinator(client, "g")
        batch = build_batch([(b"k", b"forged offset")], timestamp=1000)
        answer = client.request(kr.produce(GROUP_METADATA_TOPIC_NAME, 0, batch, acks=1))
        (part,) = answer.responses[0].partition_responses
        assert ErrorCode(part.error_code) is ErrorCode.INVALID_TOPIC_EXCEPTION
        fetched = client.request(kr.fetch(GROUP_METADATA_TOPIC_NAME, 0, 0))
        assert fetched.responses[0].partitions[0].high_watermark == 0  # nothing appended


def test_commit_and_fetch_round_trip(start: Start) -> None:
    broker = start()
    create_topic(broker, "t", 3)
    with broker.client() as client:
        ow.wait_coordinator(client, "g")
        got = ow.commit(client, "g", {("t", 0): (5, "m"), ("t", 1): (7, None)}, leader_epoch=3)
        assert set(got.values()) == {ErrorCode.NONE}
        code, fetched = ow.fetch(client, "g", [("t", 0), ("t", 1), ("t", 2)])
        assert code is ErrorCode.NONE
        assert fetched == {
            ("t", 0): (5, 3, "m", ErrorCode.NONE),
            ("t", 1): (7, 3, "", ErrorCode.NONE),
            ("t", 2): (-1, -1, "", ErrorCode.NONE),  # nothing committed
        }
        # a later commit replaces the offset; topics null fetches every committed one
        assert ow.commit(client, "g", {("t", 0): (9, "n")}, version=2) == {("t", 0): ErrorCode.NONE}
        _, everything = ow.fetch(client, "g", None, version=2)
        assert everything == {("t", 0): (9, -1, "n", ErrorCode.NONE), ("t", 1): (7, -1, "", 0)}
        # v1 (no leader epoch, no top-level error) and v8 (batched groups)
        _, old = ow.fetch(client, "g", [("t", 0)], version=1)
        assert old == {("t", 0): (9, -1, "n", ErrorCode.NONE)}
        batched = ow.fetch_groups(client, {"g": None, "nobody": [("t", 1)]})
        # v2 commits carry no leader epoch: -1; the v8 one kept its epoch 3
        assert batched["g"] == (ErrorCode.NONE, everything | {("t", 1): (7, 3, "", 0)})
        assert batched["nobody"] == (ErrorCode.NONE, {("t", 1): (-1, -1, "", ErrorCode.NONE)})


def test_commit_errors_per_partition(start: Start) -> None:
    broker = start(SMALL | {"offset.metadata.max.bytes": "10"})
    create_topic(broker, "t", 1)
    with broker.client() as client:
        ow.wait_coordinator(client, "g")
        got = ow.commit(
            client,
            "g",
            {("t", 0): (1, "x" * 11), ("t", 9): (1, ""), ("missing", 0): (1, "")},
        )
        assert got == {
            ("t", 0): ErrorCode.OFFSET_METADATA_TOO_LARGE,
            ("t", 9): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            ("missing", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        }
        assert ow.commit(client, "g", {("t", 0): (1, "x" * 10)}) == {("t", 0): ErrorCode.NONE}
        # a generation to a group nobody joined: ILLEGAL_GENERATION for every partition
        got = ow.commit(client, "fresh", {("t", 0): (1, "")}, generation=3, member_id="m")
        assert got == {("t", 0): ErrorCode.ILLEGAL_GENERATION}
        _, fetched = ow.fetch(client, "g", None)
        assert fetched == {("t", 0): (1, -1, "x" * 10, ErrorCode.NONE)}


def test_before_the_offsets_topic_exists_no_broker_coordinates(start: Start) -> None:
    broker = start()
    with broker.client() as client:
        code, _ = ow.fetch(client, "g", [("t", 0)], version=3)
        assert code is ErrorCode.NOT_COORDINATOR
        _, per_partition = ow.fetch(client, "g", [("t", 0)], version=1)
        assert per_partition == {("t", 0): (-1, -1, "", ErrorCode.NOT_COORDINATOR)}
        assert ow.fetch_groups(client, {"g": None})["g"] == (ErrorCode.NOT_COORDINATOR, {})


def test_commit_survives_kill_9(start: Start) -> None:
    broker = start()
    create_topic(broker, "t", 2)
    groups = [f"group-{i}" for i in range(6)]  # spread over the partitions
    assert len({partition_for(g, 3) for g in groups}) == 3
    with broker.client() as client:
        for i, g in enumerate(groups):
            ow.wait_coordinator(client, g)
            offsets = {("t", 0): (100 + i, f"meta-{i}"), ("t", 1): (200 + i, None)}
            # group-0 commits with v2 and a retention time: OffsetCommitValue v1 records
            version, retention = (2, 3_600_000) if i == 0 else (8, -1)
            got = ow.commit(client, g, offsets, version=version, retention_ms=retention)
            assert set(got.values()) == {ErrorCode.NONE}
    broker.kill()
    broker = start()
    with broker.client() as client:
        for i, g in enumerate(groups):
            ow.wait_coordinator(client, g)
            _, fetched = ow.fetch(client, g, None)
            assert fetched == {
                ("t", 0): (100 + i, -1, f"meta-{i}", ErrorCode.NONE),
                ("t", 1): (200 + i, -1, "", ErrorCode.NONE),
            }


def test_a_simple_consumers_group_is_held_after_a_restart(start: Start) -> None:
    """Found by the conformance harness: after loading, a group that only committed
    offsets exists (Empty), as Kafka's loader makes it, so a commit naming a generation
    gets UNKNOWN_MEMBER_ID (the member is unknown), not ILLEGAL_GENERATION (which Kafka
    answers only for a group it does not hold at all)."""
    broker = start()
    create_topic(broker, "t", 1)
    with broker.client() as client:
        ow.wait_coordinator(client, "simple")
        assert ow.commit(client, "simple", {("t", 0): (5, None)}) == {("t", 0): ErrorCode.NONE}
        never = ow.commit(client, "never-held", {("t", 0): (5, None)}, generation=1)
        assert never == {("t", 0): ErrorCode.ILLEGAL_GENERATION}
    broker.kill()
    broker = start()
    with broker.client() as client:
        ow.wait_coordinator(client, "simple")
        assert mw.list_groups(client)["simple"] == ("", "Empty")
        got = ow.commit(client, "simple", {("t", 0): (6, None)}, generation=1)
        assert got == {("t", 0): ErrorCode.UNKNOWN_MEMBER_ID}


def test_offsets_of_a_deleted_topic_disappear(start: Start) -> None:
    broker = start()
    create_topic(broker, "gone", 1)
    create_topic(broker, "kept", 1)
    with broker.client() as client:
        ow.wait_coordinator(client, "g")
        both = {("gone", 0): (3, ""), ("kept", 0): (4, "")}
        assert set(ow.commit(client, "g", both).values()) == {ErrorCode.NONE}
        deleted = client.request(kr.delete_topics(["gone"]))
        assert ErrorCode(deleted.responses[0].error_code) is ErrorCode.NONE
        _, fetched = ow.fetch(client, "g", None)
        assert fetched == {("kept", 0): (4, -1, "", ErrorCode.NONE)}
    broker.kill()
    broker = start()
    with broker.client() as client:
        ow.wait_coordinator(client, "g")
        _, fetched = ow.fetch(client, "g", None)
        assert fetched == {("kept", 0): (4, -1, "", ErrorCode.NONE)}


def test_metadata_auto_creation_makes_the_offsets_topic_as_find_coordinator(
    start: Start,
) -> None:
    broker = start()
    with broker.client() as client:
        first = client.request(kr.metadata([GROUP_METADATA_TOPIC_NAME]))
        assert ErrorCode(first.topics[0].error_code) is ErrorCode.LEADER_NOT_AVAILABLE
        (topic,) = client.request(kr.metadata([GROUP_METADATA_TOPIC_NAME])).topics
        assert ErrorCode(topic.error_code) is ErrorCode.NONE
        assert topic.is_internal and len(topic.partitions) == 3  # offsets.topic.num.partitions
        # listed among all topics, marked internal; an ordinary topic is not
        create_topic(broker, "plain", 1)
        listed = {t.name: t.is_internal for t in client.request(kr.metadata(None)).topics}
        assert listed == {GROUP_METADATA_TOPIC_NAME: True, "plain": False}
