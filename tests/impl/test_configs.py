"""DescribeConfigs against a running broker: topic configs (overrides versus broker
defaults, with sources and synonyms), broker configs (explicit, default, unknown keys),
key filters and the errors for unknown topics, other brokers and other resource types."""

from __future__ import annotations

import pytest

from spec.errors import ErrorCode
from tests.impl import kio_requests as k
from tests.impl.conftest import BrokerProcess, StartBroker

TOPIC, BROKER, BROKER_LOGGER = 2, 4, 8
TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG = 1, 4, 5


@pytest.mark.parametrize("version", [1, 3, 4])
def test_topic_configs(start_broker: StartBroker, version: int) -> None:
    broker = start_broker({"log.retention.hours": "24"})
    with broker.client() as client:
        client.request(k.create_topics([("t", 1, 1)], {"segment.bytes": "1048576"}))
        response = client.request(
            k.describe_configs([(TOPIC, "t", None)], version, include_synonyms=True)
        )
    (result,) = response.results
    assert (result.error_code, result.resource_type, result.resource_name) == (0, TOPIC, "t")
    configs = {c.name: c for c in result.configs}
    segment = configs["segment.bytes"]
    assert (segment.value, segment.config_source, segment.read_only) == (
        "1048576",
        TOPIC_CONFIG,
        False,
    )
    assert [(s.name, s.source) for s in segment.synonyms] == [
        ("segment.bytes", TOPIC_CONFIG),
        ("log.segment.bytes", DEFAULT_CONFIG),
    ]
    retention = configs["retention.ms"]
    assert (retention.value, retention.config_source) == (
        str(24 * 3600 * 1000),
        STATIC_BROKER_CONFIG,
    )
    assert ("log.retention.hours", "24", STATIC_BROKER_CONFIG) in [
        (s.name, s.value, s.source) for s in retention.synonyms
    ]
    assert (configs["max.message.bytes"].value, configs["max.message.bytes"].config_source) == (
        "1048588",
        DEFAULT_CONFIG,
    )
    if version >= 3:
        assert configs["segment.bytes"].config_type == 3  # INT
        assert configs["retention.ms"].config_type == 5  # LONG


def test_key_filter_and_no_synonyms(broker: BrokerProcess) -> None:
    with broker.client() as client:
        client.request(k.create_topics([("t", 1, 1)]))
        response = client.request(k.describe_configs([(TOPIC, "t", ["retention.bytes", "x"])]))
    (entry,) = response.results[0].configs
    assert (entry.name, entry.value, entry.synonyms) == ("retention.bytes", "-1", ())


def test_broker_configs(start_broker: StartBroker) -> None:
    broker = start_broker({"num.partitions": "3", "custom.key": "kept"})
    with broker.client() as client:
        response = client.request(k.describe_configs([(BROKER, "1", None)]))
    (result,) = response.results
    assert result.error_code == 0
    configs = {c.name: c for c in result.configs}
    assert (configs["num.partitions"].value, configs["num.partitions"].config_source) == (
        "3",
        STATIC_BROKER_CONFIG,
    )
    assert (configs["message.max.bytes"].value, configs["message.max.bytes"].config_source) == (
        "1048588",
        DEFAULT_CONFIG,
    )
    assert configs["custom.key"].value == "kept"
    assert configs["broker.id"].value == "1"
    assert configs["log.retention.ms"].value is None  # null by default, as in Kafka
    assert configs["log.retention.hours"].value == "168"


def test_errors(broker: BrokerProcess) -> None:
    with broker.client() as client:
        response = client.request(
            k.describe_configs(
                [
                    (TOPIC, "missing", None),
                    (TOPIC, "bad name", None),
                    (BROKER, "7", None),
                    (BROKER_LOGGER, "1", None),
                    (BROKER, "", None),
                ]
            )
        )
    codes = [r.error_code for r in response.results]
    assert codes == [
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.INVALID_TOPIC_EXCEPTION,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.INVALID_REQUEST,
        0,
    ]
    assert response.results[4].configs == ()
