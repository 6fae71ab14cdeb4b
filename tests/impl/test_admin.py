"""CreateTopics and DeleteTopics against a running broker: creation with defaults and
configs, Kafka's error codes for each invalid request, validate_only, deletion removing
the partition directories, by name and by id."""

from __future__ import annotations

import pytest

from impl.wire.records import build_batch
from spec.errors import ErrorCode
from tests.impl import kio_requests as k
from tests.impl.conftest import BrokerProcess, StartBroker


def topic_names(broker: BrokerProcess) -> list[str]:
    with broker.client() as client:
        return sorted(t.name for t in client.request(k.metadata(None)).topics)


@pytest.mark.parametrize("version", [2, 4, 5, 7])
def test_create_topics(broker: BrokerProcess, version: int) -> None:
    with broker.client() as client:
        response = client.request(
            k.create_topics([("t1", 3, 1)], {"retention.ms": "1000"}, version=version)
        )
    (result,) = response.topics
    assert (result.name, result.error_code) == ("t1", 0)
    if version >= 5:
        assert (result.num_partitions, result.replication_factor) == (3, 1)
        configs = {c.name: (c.value, c.config_source) for c in result.configs}
        assert configs["retention.ms"] == ("1000", 1)  # TOPIC_CONFIG
        assert configs["segment.bytes"] == ("1073741824", 5)  # DEFAULT_CONFIG
    if version >= 7:
        assert result.topic_id is not None
    assert sorted(p.name for p in broker.data_dir.iterdir() if p.is_dir()) == [
        "t1-0",
        "t1-1",
        "t1-2",
    ]


def test_minus_one_takes_broker_defaults(start_broker: StartBroker) -> None:
    broker = start_broker({"num.partitions": "2", "default.replication.factor": "1"})
    with broker.client() as client:
        (result,) = client.request(k.create_topics([("d", -1, -1)])).topics
    assert (result.error_code, result.num_partitions, result.replication_factor) == (0, 2, 1)


@pytest.mark.parametrize(
    ("topic", "configs", "code"),
    [
        (("bad name", 1, 1), {}, ErrorCode.INVALID_TOPIC_EXCEPTION),
        (("x" * 250, 1, 1), {}, ErrorCode.INVALID_TOPIC_EXCEPTION),
        (("p0", 0, 1), {}, ErrorCode.INVALID_PARTITIONS),
        (("p-5", -5, 1), {}, ErrorCode.INVALID_PARTITIONS),
        (("rf0", 1, 0), {}, ErrorCode.INVALID_REPLICATION_FACTOR),
        (("rf3", 1, 3), {}, ErrorCode.INVALID_REPLICATION_FACTOR),
        (("cfg", 1, 1), {"retention.ms": "soon"}, ErrorCode.INVALID_CONFIG),
        (("cfg2", 1, 1), {"no.such.config": "1"}, ErrorCode.INVALID_CONFIG),
        (("cfg3", 1, 1), {"segment.bytes": "1"}, ErrorCode.INVALID_CONFIG),
        (("cfg4", 1, 1), {"cleanup.policy": "shred"}, ErrorCode.INVALID_CONFIG),
    ],
)
def test_invalid_topics_are_refused(
    broker: BrokerProcess, topic: tuple[str, int, int], configs: dict[str, str], code: ErrorCode
) -> None:
    with broker.client() as client:
        (result,) = client.request(k.create_topics([topic], configs)).topics
    assert result.error_code == code
    assert result.error_message
    assert topic_names(broker) == []
    assert not [p for p in broker.data_dir.iterdir() if p.is_dir()]


def test_existing_topic_and_duplicates_in_one_request(broker: BrokerProcess) -> None:
    with broker.client() as client:
        client.request(k.create_topics([("once", 1, 1)]))
        again = client.request(k.create_topics([("once", 2, 1)]))
        twice = client.request(k.create_topics([("dup", 1, 1), ("dup", 1, 1)]))
        collide = client.request(k.create_topics([("a.b", 1, 1), ("a_b", 1, 1)]))
    assert again.topics[0].error_code == ErrorCode.TOPIC_ALREADY_EXISTS
    assert [t.error_code for t in twice.topics] == [ErrorCode.INVALID_REQUEST] * 2
    assert [t.error_code for t in collide.topics] == [0, ErrorCode.INVALID_TOPIC_EXCEPTION]
    assert topic_names(broker) == ["a.b", "once"]


def test_validate_only_creates_nothing(broker: BrokerProcess) -> None:
    with broker.client() as client:
        ok = client.request(k.create_topics([("v", 2, 1)], validate_only=True))
        bad = client.request(k.create_topics([("v", 2, 5)], validate_only=True))
    assert ok.topics[0].error_code == 0
    assert bad.topics[0].error_code == ErrorCode.INVALID_REPLICATION_FACTOR
    assert topic_names(broker) == []


@pytest.mark.parametrize("version", [1, 5, 6])
def test_delete_topics(broker: BrokerProcess, version: int) -> None:
    with broker.client() as client:
        client.request(k.create_topics([("gone", 2, 1), ("stays", 1, 1)]))
        response = client.request(k.delete_topics(["gone", "never"], version))
    codes = {r.name: r.error_code for r in response.responses}
    assert codes == {"gone": 0, "never": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    assert topic_names(broker) == ["stays"]
    assert sorted(p.name for p in broker.data_dir.iterdir() if p.is_dir()) == ["stays-0"]


def test_delete_by_topic_id(broker: BrokerProcess) -> None:
    with broker.client() as client:
        created = client.request(k.create_topics([("byid", 1, 1)]))
        topic_id = created.topics[0].topic_id
        state = k.nested(k.DELETE_TOPICS, 6, "DeleteTopicState", name=None, topic_id=topic_id)
        response = client.request(
            k.request(k.DELETE_TOPICS, 6, topics=(state,), timeout=k.ms(1000))
        )
    (result,) = response.responses
    assert (result.error_code, result.name, result.topic_id) == (0, "byid", topic_id)
    assert topic_names(broker) == []


def test_deletion_disabled(start_broker: StartBroker) -> None:
    broker = start_broker({"delete.topic.enable": "false"})
    with broker.client() as client:
        client.request(k.create_topics([("kept", 1, 1)]))
        response = client.request(k.delete_topics(["kept"]))
    assert response.responses[0].error_code == ErrorCode.TOPIC_DELETION_DISABLED
    assert topic_names(broker) == ["kept"]


def test_recreate_after_delete_starts_empty(broker: BrokerProcess) -> None:
    with broker.client() as client:
        client.request(k.create_topics([("again", 1, 1)]))
        produced = client.request(k.produce("again", 0, build_batch([(None, b"v")])))
        assert produced.responses[0].partition_responses[0].error_code == 0
        client.request(k.delete_topics(["again"]))
        client.request(k.create_topics([("again", 1, 1)]))
        fetched = client.request(k.fetch("again", 0, 0))
    part = fetched.responses[0].partitions[0]
    assert (part.error_code, part.high_watermark) == (0, 0)
    assert not part.records
