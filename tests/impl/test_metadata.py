"""Metadata against a running broker: all topics versus none by version, auto-creation
(on, off, refused by the request), invalid names, topic ids, and what each partition
reports (leader, epoch, replicas, ISR), the brokers, controller and a cluster id that
survives a restart."""

from __future__ import annotations

import uuid

import pytest

from spec.errors import ErrorCode
from tests.impl import kio_requests as k
from tests.impl.conftest import BrokerProcess, StartBroker


def create(broker: BrokerProcess, name: str, partitions: int) -> None:
    with broker.client() as client:
        response = client.request(k.create_topics([(name, partitions, 1)]))
    assert response.topics[0].error_code == 0


def test_reports_brokers_controller_and_partitions(broker: BrokerProcess) -> None:
    create(broker, "orders", 3)
    with broker.client() as client:
        response = client.request(k.metadata(["orders"]))
    assert [(b.node_id, b.host, b.port) for b in response.brokers] == [
        (1, broker.host, broker.port)
    ]
    assert response.controller_id == 1
    assert response.cluster_id
    (topic,) = response.topics
    assert (topic.error_code, topic.name, topic.is_internal) == (0, "orders", False)
    assert topic.topic_id is not None and topic.topic_id != uuid.UUID(int=0)
    assert [p.partition_index for p in topic.partitions] == [0, 1, 2]
    for p in topic.partitions:
        assert (p.error_code, p.leader_id, p.leader_epoch) == (0, 1, 0)
        assert (tuple(p.replica_nodes), tuple(p.isr_nodes), tuple(p.offline_replicas)) == (
            (1,),
            (1,),
            (),
        )


@pytest.mark.parametrize("version", [1, 4, 9, 12])
def test_null_is_all_topics_and_empty_is_none(broker: BrokerProcess, version: int) -> None:
    create(broker, "a", 1)
    create(broker, "b", 2)
    with broker.client() as client:
        everything = client.request(k.metadata(None, version))
        nothing = client.request(k.metadata([], version))
    assert sorted(t.name for t in everything.topics) == ["a", "b"]
    assert nothing.topics == ()


def test_v0_empty_list_is_all_topics(broker: BrokerProcess) -> None:
    create(broker, "a", 1)
    with broker.client() as client:
        response = client.request(k.metadata([], 0))
    assert [t.name for t in response.topics] == ["a"]


def test_auto_creation_with_broker_defaults(start_broker: StartBroker) -> None:
    broker = start_broker({"num.partitions": "4"})
    with broker.client() as client:
        first = client.request(k.metadata(["fresh"]))
        assert first.topics[0].error_code == ErrorCode.LEADER_NOT_AVAILABLE
        second = client.request(k.metadata(["fresh"]))
    (topic,) = second.topics
    assert topic.error_code == 0
    assert len(topic.partitions) == 4
    assert (broker.data_dir / "fresh-3").is_dir()


def test_auto_creation_refused_by_request(broker: BrokerProcess) -> None:
    with broker.client() as client:
        response = client.request(k.metadata(["nope"], allow_auto=False))
        again = client.request(k.metadata(None))
    assert response.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert again.topics == ()


def test_auto_creation_disabled_by_config(start_broker: StartBroker) -> None:
    broker = start_broker({"auto.create.topics.enable": "false"})
    with broker.client() as client:
        response = client.request(k.metadata(["nope"]))
    assert response.topics[0].error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_invalid_name_is_not_created(broker: BrokerProcess) -> None:
    with broker.client() as client:
        response = client.request(k.metadata(["bad/name", ".."]))
    assert [t.error_code for t in response.topics] == [ErrorCode.INVALID_TOPIC_EXCEPTION] * 2


def test_topic_by_id(broker: BrokerProcess) -> None:
    create(broker, "by-id", 1)
    with broker.client() as client:
        topic_id = client.request(k.metadata(["by-id"])).topics[0].topic_id
        request = k.request(
            k.METADATA,
            12,
            topics=(
                k.nested(k.METADATA, 12, "MetadataRequestTopic", name=None, topic_id=topic_id),
                k.nested(k.METADATA, 12, "MetadataRequestTopic", name=None, topic_id=uuid.uuid4()),
            ),
            allow_auto_topic_creation=True,
            include_topic_authorized_operations=False,
        )
        response = client.request(request)
    found, unknown = response.topics
    assert (found.error_code, found.name, found.topic_id) == (0, "by-id", topic_id)
    assert unknown.error_code == ErrorCode.UNKNOWN_TOPIC_ID


def test_cluster_id_and_topics_survive_restart(start_broker: StartBroker) -> None:
    broker = start_broker()
    create(broker, "kept", 2)
    with broker.client() as client:
        before = client.request(k.metadata(["kept"]))
    assert broker.stop() == 0
    again = start_broker()
    with again.client() as client:
        after = client.request(k.metadata(["kept"]))
    assert after.cluster_id == before.cluster_id
    assert after.topics[0].topic_id == before.topics[0].topic_id
    assert len(after.topics[0].partitions) == 2
