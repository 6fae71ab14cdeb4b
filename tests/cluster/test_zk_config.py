"""The cluster-mode properties under Kafka's names and defaults: zookeeper.connect,
zookeeper.session.timeout.ms (18000), zookeeper.connection.timeout.ms (null: the
session timeout), unclean.leader.election.enable and the replica.* settings, as
BrokerConfig reads them and DescribeConfigs reports them."""

from __future__ import annotations

import pytest

from impl.broker.config import BrokerConfig, ConfigError
from impl.broker.configs import DEFAULT_CONFIG, STATIC_BROKER_CONFIG, broker_entries
from impl.replication.config import DEFAULTS as REPLICATION_DEFAULTS
from impl.replication.config import ReplicationConfig


def config(**properties: str) -> BrokerConfig:
    return BrokerConfig.build(1, "127.0.0.1", 9092, "/tmp/unused", properties)


def test_defaults_are_kafkas() -> None:
    c = config()
    assert c.zookeeper_connect is None
    assert c.zookeeper_session_timeout_ms == 18000
    assert c.get("zookeeper.connection.timeout.ms") is None  # Kafka's null
    assert c.zookeeper_connection_timeout_ms == 18000
    assert c.unclean_leader_election_enable is False
    for name, value in REPLICATION_DEFAULTS.items():
        assert c.get(name) == str(value), name
    assert ReplicationConfig.from_broker(c) == ReplicationConfig()


def test_explicit_values_are_read() -> None:
    c = config(
        **{
            "zookeeper.connect": " zk1:2181,zk2:2181/kafka ",
            "zookeeper.session.timeout.ms": "6000",
            "unclean.leader.election.enable": "true",
            "replica.lag.time.max.ms": "3000",
        }
    )
    assert c.zookeeper_connect == "zk1:2181,zk2:2181/kafka"
    assert c.zookeeper_connection_timeout_ms == 6000  # follows the session timeout
    assert c.unclean_leader_election_enable is True
    assert ReplicationConfig.from_broker(c).replica_lag_time_max_ms == 3000
    c = config(**{"zookeeper.connection.timeout.ms": "1000"})
    assert c.zookeeper_connection_timeout_ms == 1000
    assert config(**{"zookeeper.connect": "  "}).zookeeper_connect is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("zookeeper.session.timeout.ms", "soon"),
        ("zookeeper.connection.timeout.ms", "0"),
        ("replica.fetch.wait.max.ms", "-1"),
        ("unclean.leader.election.enable", "yes"),
    ],
)
def test_bad_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError):
        config(**{name: value})


def test_describe_configs_reports_them() -> None:
    entries = {e.name: e for e in broker_entries(config(**{"zookeeper.connect": "zk:2181"}))}
    assert entries["zookeeper.connect"].value == "zk:2181"
    assert entries["zookeeper.connect"].source == STATIC_BROKER_CONFIG
    expected = {
        "zookeeper.session.timeout.ms": "18000",
        "zookeeper.connection.timeout.ms": None,
        "replica.lag.time.max.ms": "30000",
        "replica.fetch.wait.max.ms": "500",
        "replica.fetch.backoff.ms": "1000",
        "unclean.leader.election.enable": "false",
    }
    for name, value in expected.items():
        assert entries[name].value == value, name
        assert entries[name].source == DEFAULT_CONFIG, name
