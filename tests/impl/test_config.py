"""Broker configuration without a broker: Java properties parsing, Kafka's defaults and
precedence rules, validation, and the LogConfig a topic's overrides give."""

from __future__ import annotations

import pytest

from impl.broker.config import (
    BrokerConfig,
    ConfigError,
    parse_listener,
    parse_properties,
    validate_topic_configs,
)


def test_parse_properties() -> None:
    text = (
        "# a comment\n"
        "! another\n"
        "log.segment.bytes=1024\n"
        "  num.partitions : 3\n"
        "log.dirs /data/a\n"
        "long.value = one,\\\n"
        "    two\n"
        "escaped\\=key=x\\ty\n"
        "empty=\n"
    )
    assert parse_properties(text) == {
        "log.segment.bytes": "1024",
        "num.partitions": "3",
        "log.dirs": "/data/a",
        "long.value": "one,two",
        "escaped=key": "x\ty",
        "empty": "",
    }


def test_defaults_are_kafkas() -> None:
    config = BrokerConfig.build(1, "127.0.0.1", 9092, "/tmp/d")
    assert config.num_partitions == 1
    assert config.default_replication_factor == 1
    assert config.auto_create_topics_enable
    assert config.message_max_bytes == 1048588
    assert config.min_insync_replicas == 1
    assert config.retention_check_interval_ms == 300_000
    log = config.log_config()
    assert (log.segment_bytes, log.retention_ms, log.retention_bytes) == (1073741824, 604800000, -1)
    assert (log.segment_ms, log.index_interval_bytes) == (604800000, 4096)
    assert not log.flush_every_append


def test_retention_precedence_and_overrides() -> None:
    config = BrokerConfig.build(
        1, "h", 1, "/d", {"log.retention.hours": "1", "log.retention.minutes": "5"}
    )
    assert config.log_retention_ms == 300_000
    config = BrokerConfig.build(
        1, "h", 1, "/d", {"log.retention.ms": "7", "log.retention.minutes": "5"}
    )
    assert config.log_retention_ms == 7
    log = config.log_config({"retention.ms": "99", "flush.messages": "1", "segment.ms": "10"})
    assert (log.retention_ms, log.flush_every_append, log.segment_ms) == (99, True, 10)


def test_command_line_wins_and_unknown_keys_are_kept() -> None:
    config = BrokerConfig.build(
        2, "h", 5, "/d", {"broker.id": "9", "log.dirs": "/other", "my.key": "v"}
    )
    assert (config.get("broker.id"), config.get("log.dirs"), config.get("my.key")) == (
        "2",
        "/d",
        "v",
    )


@pytest.mark.parametrize(
    "properties",
    [{"num.partitions": "zero"}, {"num.partitions": "0"}, {"auto.create.topics.enable": "yes"}],
)
def test_invalid_properties(properties: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        BrokerConfig.build(1, "h", 1, "/d", properties)


def test_topic_config_validation() -> None:
    validate_topic_configs({"retention.ms": "-1", "cleanup.policy": "delete"})
    for bad in ({"retention.ms": "x"}, {"nope": "1"}, {"compression.type": "brotli"}):
        with pytest.raises(ConfigError):
            validate_topic_configs(bad)


def test_parse_listener() -> None:
    assert parse_listener("PLAINTEXT://localhost:9092") == ("localhost", 9092)
    assert parse_listener("[::1]:9") == ("::1", 9)
    assert parse_listener("nope") is None
