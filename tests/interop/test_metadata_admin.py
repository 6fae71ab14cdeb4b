"""Metadata, CreateTopics, DeleteTopics, DescribeConfigs and DescribeCluster, as real
clients' admin APIs use them: confluent-kafka's AdminClient, kafka-python's
KafkaAdminClient, aiokafka's metadata and kcat -L."""

from __future__ import annotations

import asyncio

import aiokafka
import kafka
import kafka.admin
import kafka.errors
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin._config import ConfigResource
from confluent_kafka.cimpl import NewTopic

from harness.launcher import BrokerProcess
from tests.interop.support import (
    CLIENT_TIMEOUT_S,
    admin,
    create_topic,
    kcat_metadata,
    topic_partitions,
    unique_topic,
    wait_until,
)


def test_confluent_metadata_lists_this_broker(broker: BrokerProcess, bootstrap: str) -> None:
    md = admin(bootstrap).list_topics(timeout=CLIENT_TIMEOUT_S)
    assert set(md.brokers) == {broker.broker_id}
    node = md.brokers[broker.broker_id]
    assert str(node.host) == broker.host
    assert node.port == broker.port
    assert md.controller_id == broker.broker_id


def test_confluent_create_and_delete_topics(broker: BrokerProcess, bootstrap: str) -> None:
    client = admin(bootstrap)
    name = unique_topic("admin-c")
    futures = client.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    futures[name].result(timeout=CLIENT_TIMEOUT_S)
    md = client.list_topics(topic=name, timeout=CLIENT_TIMEOUT_S).topics[name]
    assert md.error is None
    assert sorted(md.partitions) == [0, 1, 2]
    for p in md.partitions.values():
        assert p.leader == broker.broker_id
        assert p.replicas == [broker.broker_id]
        assert p.isrs == [broker.broker_id]

    again = client.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    with pytest.raises(KafkaException) as exists:
        again[name].result(timeout=CLIENT_TIMEOUT_S)
    assert exists.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    client.delete_topics([name], operation_timeout=CLIENT_TIMEOUT_S)[name].result(
        timeout=CLIENT_TIMEOUT_S
    )
    wait_until(lambda: topic_partitions(bootstrap, name) is None, f"{name} gone from metadata")


def test_confluent_create_rejects_bad_topics(bootstrap: str) -> None:
    client = admin(bootstrap)
    bad_name = NewTopic("bad/name", num_partitions=1, replication_factor=1)
    bad_rf = NewTopic(unique_topic("rf"), num_partitions=1, replication_factor=3)
    futures = client.create_topics([bad_name, bad_rf])
    with pytest.raises(KafkaException) as invalid:
        futures["bad/name"].result(timeout=CLIENT_TIMEOUT_S)
    assert invalid.value.args[0].code() == KafkaError.TOPIC_EXCEPTION  # INVALID_TOPIC_EXCEPTION
    with pytest.raises(KafkaException) as too_many:
        futures[bad_rf.topic].result(timeout=CLIENT_TIMEOUT_S)
    assert too_many.value.args[0].code() == KafkaError.INVALID_REPLICATION_FACTOR


def test_confluent_delete_unknown_topic(bootstrap: str) -> None:
    name = unique_topic("never")
    client = admin(bootstrap)  # kept: a destroyed client fails its futures
    future = client.delete_topics([name])[name]
    with pytest.raises(KafkaException) as unknown:
        future.result(timeout=CLIENT_TIMEOUT_S)
    assert unknown.value.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def test_confluent_describe_configs_and_cluster(broker: BrokerProcess, bootstrap: str) -> None:
    client = admin(bootstrap)
    name = create_topic(bootstrap, unique_topic("cfg"), config={"retention.ms": "3600000"})
    topic_res = ConfigResource(ConfigResource.Type.TOPIC, name)
    broker_res = ConfigResource(ConfigResource.Type.BROKER, str(broker.broker_id))
    futures = client.describe_configs([topic_res, broker_res])
    topic_cfg = futures[topic_res].result(timeout=CLIENT_TIMEOUT_S)
    assert topic_cfg["retention.ms"].value == "3600000"
    assert topic_cfg["segment.bytes"].value == "1073741824"
    broker_cfg = futures[broker_res].result(timeout=CLIENT_TIMEOUT_S)
    assert broker_cfg["log.retention.ms"].value in ("604800000", None)
    assert broker_cfg["num.partitions"].value == "1"

    cluster = client.describe_cluster(request_timeout=CLIENT_TIMEOUT_S).result(
        timeout=CLIENT_TIMEOUT_S
    )
    assert [n.id for n in cluster.nodes] == [broker.broker_id]
    assert cluster.controller is not None
    assert cluster.controller.id == broker.broker_id


def test_kafka_python_admin_create_describe_delete(broker: BrokerProcess, bootstrap: str) -> None:
    client = kafka.admin.KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20000)
    try:
        name = unique_topic("admin-kp")
        client.create_topics([kafka.admin.NewTopic(name, num_partitions=2, replication_factor=1)])
        assert name in client.list_topics()
        [described] = client.describe_topics([name])
        assert described["error_code"] == 0
        assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1]
        assert {p["leader_id"] for p in described["partitions"]} == {broker.broker_id}

        with pytest.raises(kafka.errors.TopicAlreadyExistsError):
            client.create_topics([kafka.admin.NewTopic(name, 1, 1)])

        client.delete_topics([name])
        wait_until(lambda: name not in client.list_topics(), f"{name} deleted")
    finally:
        client.close()


def test_kafka_python_sees_topic_partitions(bootstrap: str) -> None:
    name = create_topic(bootstrap, unique_topic("kp-md"), partitions=4)
    consumer = kafka.KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        assert consumer.partitions_for_topic(name) == {0, 1, 2, 3}
        assert name in consumer.topics()
    finally:
        consumer.close()


def test_aiokafka_sees_topic_partitions(bootstrap: str) -> None:
    name = create_topic(bootstrap, unique_topic("aio-md"), partitions=3)

    async def partitions() -> set[int]:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            return set(await producer.partitions_for(name))
        finally:
            await producer.stop()

    assert asyncio.run(asyncio.wait_for(partitions(), CLIENT_TIMEOUT_S)) == {0, 1, 2}


def test_kcat_metadata(broker: BrokerProcess, bootstrap: str) -> None:
    name = create_topic(bootstrap, unique_topic("kcat-md"), partitions=2)
    md = kcat_metadata(bootstrap)
    brokers = md["brokers"]
    assert isinstance(brokers, list)
    assert [b["id"] for b in brokers] == [broker.broker_id]
    assert brokers[0]["name"] == broker.bootstrap
    topics = md["topics"]
    assert isinstance(topics, list)
    [topic] = [t for t in topics if t["topic"] == name]
    assert sorted(p["partition"] for p in topic["partitions"]) == [0, 1]
    assert {p["leader"] for p in topic["partitions"]} == {broker.broker_id}
