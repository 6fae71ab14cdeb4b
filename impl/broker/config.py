"""Broker configuration under Kafka's own property names and defaults: parsing a Java
``.properties`` file, the typed values the broker reads, the topic-level configs with
their broker-level synonyms, and the ``LogConfig`` a partition log is opened with."""

from __future__ import annotations

import socket
from collections.abc import Mapping

import attrs

from impl.storage.config import LogConfig

LONG_MAX = 9223372036854775807
_HOUR_MS = 3_600_000


class ConfigError(ValueError):
    """A property whose value does not parse or is out of range (Kafka: INVALID_CONFIG)."""


@attrs.frozen(slots=True)
class PropertyDef:
    """One property: its type (Kafka's ConfigDef type names) and default (None = null)."""

    name: str
    kind: str  # "int", "long", "boolean", "string", "list", "password"
    default: str | None
    minimum: int | None = None


def _p(name: str, kind: str, default: str | None, minimum: int | None = None) -> PropertyDef:
    return PropertyDef(name, kind, default, minimum)


# The broker properties this broker knows, with Kafka's defaults.  Ones it does not act on
# (threads, socket buffers) are listed so DescribeConfigs reports them as Kafka would.
BROKER_PROPERTIES: Mapping[str, PropertyDef] = {
    d.name: d
    for d in (
        _p("broker.id", "int", "-1"),
        _p("listeners", "list", "PLAINTEXT://:9092"),
        _p("advertised.listeners", "list", None),
        _p("log.dirs", "list", None),
        _p("log.dir", "list", "/tmp/kafka-logs"),
        _p("num.partitions", "int", "1", 1),
        _p("default.replication.factor", "int", "1", 1),
        _p("auto.create.topics.enable", "boolean", "true"),
        _p("delete.topic.enable", "boolean", "true"),
        _p("message.max.bytes", "int", "1048588", 0),
        _p("min.insync.replicas", "int", "1", 1),
        _p("unclean.leader.election.enable", "boolean", "false"),
        _p("compression.type", "string", "producer"),
        _p("log.cleanup.policy", "list", "delete"),
        _p("log.segment.bytes", "int", "1073741824", 14),
        _p("log.roll.ms", "long", None, 1),
        _p("log.roll.hours", "int", "168", 1),
        _p("log.retention.ms", "long", None),
        _p("log.retention.minutes", "int", None),
        _p("log.retention.hours", "int", "168"),
        _p("log.retention.bytes", "long", "-1"),
        _p("log.retention.check.interval.ms", "long", "300000", 1),
        _p("log.index.interval.bytes", "int", "4096", 0),
        _p("log.index.size.max.bytes", "int", "10485760", 4),
        _p("log.flush.interval.messages", "long", str(LONG_MAX), 1),
        _p("log.flush.interval.ms", "long", None),
        _p("log.segment.delete.delay.ms", "long", "60000", 0),
        _p("log.message.timestamp.type", "string", "CreateTime"),
        _p("log.cleaner.delete.retention.ms", "long", "86400000", 0),
        _p("offsets.topic.replication.factor", "int", "3", 1),
        _p("offsets.topic.num.partitions", "int", "50", 1),
        _p("offsets.topic.segment.bytes", "int", "104857600", 1),
        _p("offsets.commit.required.acks", "int", "-1", -1),
        _p("offsets.commit.timeout.ms", "int", "5000", 1),
        _p("offsets.retention.minutes", "int", "10080", 1),
        _p("offsets.retention.check.interval.ms", "long", "600000", 1),
        _p("offsets.load.buffer.size", "int", "5242880", 1),
        _p("offset.metadata.max.bytes", "int", "4096", 0),
        _p("group.initial.rebalance.delay.ms", "int", "3000", 0),
        _p("group.min.session.timeout.ms", "int", "6000", 0),
        _p("group.max.session.timeout.ms", "int", "1800000", 0),
        _p("group.max.size", "int", "2147483647", 1),
        _p("socket.request.max.bytes", "int", "104857600", 1),
        _p("num.network.threads", "int", "3", 1),
        _p("num.io.threads", "int", "8", 1),
        _p("zookeeper.connect", "string", None),
        _p("zookeeper.session.timeout.ms", "int", "18000", 1),
        # Kafka's default is null, meaning "the session timeout"
        # (BrokerConfig.zookeeper_connection_timeout_ms resolves it).
        _p("zookeeper.connection.timeout.ms", "int", None, 1),
        _p("replica.lag.time.max.ms", "long", "30000", 0),
        _p("replica.fetch.wait.max.ms", "int", "500", 0),
        _p("replica.fetch.min.bytes", "int", "1", 0),
        _p("replica.fetch.max.bytes", "int", "1048576", 0),
        _p("replica.fetch.response.max.bytes", "int", "10485760", 0),
        _p("replica.fetch.backoff.ms", "int", "1000", 0),
        _p("replica.socket.timeout.ms", "int", "30000"),
        _p("replica.high.watermark.checkpoint.interval.ms", "long", "5000", 1),
    )
}


@attrs.frozen(slots=True)
class TopicConfigDef:
    """A topic-level config and the broker property that gives its default."""

    name: str
    synonym: str
    kind: str
    minimum: int | None = None


TOPIC_CONFIGS: Mapping[str, TopicConfigDef] = {
    d.name: d
    for d in (
        TopicConfigDef("cleanup.policy", "log.cleanup.policy", "list"),
        TopicConfigDef("compression.type", "compression.type", "string"),
        TopicConfigDef("delete.retention.ms", "log.cleaner.delete.retention.ms", "long", 0),
        TopicConfigDef("file.delete.delay.ms", "log.segment.delete.delay.ms", "long", 0),
        TopicConfigDef("flush.messages", "log.flush.interval.messages", "long", 1),
        TopicConfigDef("flush.ms", "log.flush.interval.ms", "long", 0),
        TopicConfigDef("index.interval.bytes", "log.index.interval.bytes", "int", 0),
        TopicConfigDef("max.message.bytes", "message.max.bytes", "int", 0),
        TopicConfigDef("message.timestamp.type", "log.message.timestamp.type", "string"),
        TopicConfigDef("min.insync.replicas", "min.insync.replicas", "int", 1),
        TopicConfigDef("retention.bytes", "log.retention.bytes", "long"),
        TopicConfigDef("retention.ms", "log.retention.ms", "long", -1),
        TopicConfigDef("segment.bytes", "log.segment.bytes", "int", 14),
        TopicConfigDef("segment.index.bytes", "log.index.size.max.bytes", "int", 4),
        TopicConfigDef("segment.ms", "log.roll.ms", "long", 1),
        TopicConfigDef(
            "unclean.leader.election.enable", "unclean.leader.election.enable", "boolean"
        ),
    )
}

_STRING_CHOICES: Mapping[str, frozenset[str]] = {
    "compression.type": frozenset({"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"}),
    "message.timestamp.type": frozenset({"CreateTime", "LogAppendTime"}),
    "log.message.timestamp.type": frozenset({"CreateTime", "LogAppendTime"}),
}


def check_value(name: str, kind: str, value: str, minimum: int | None) -> None:
    """Raise ConfigError unless ``value`` parses as ``kind`` (and is >= ``minimum``)."""
    if kind in ("int", "long"):
        try:
            number = int(value.strip())
        except ValueError:
            raise ConfigError(f"Invalid value {value} for configuration {name}") from None
        limit = 2**31 if kind == "int" else 2**63
        if not -limit <= number < limit:
            raise ConfigError(f"Invalid value {value} for configuration {name}: out of range")
        if minimum is not None and number < minimum:
            raise ConfigError(f"Invalid value {value} for configuration {name}: below {minimum}")
    elif kind == "boolean":
        if value.strip().lower() not in ("true", "false"):
            raise ConfigError(f"Invalid value {value} for configuration {name}")
    elif name in _STRING_CHOICES and value.strip() not in _STRING_CHOICES[name]:
        raise ConfigError(f"Invalid value {value} for configuration {name}")
    elif name in ("cleanup.policy", "log.cleanup.policy"):
        policies = {p.strip() for p in value.split(",")}
        if not policies <= {"delete", "compact"}:
            raise ConfigError(f"Invalid value {value} for configuration {name}")


def validate_topic_configs(configs: Mapping[str, str | None]) -> None:
    """Raise ConfigError for an unknown topic config or a value that does not parse."""
    for name, value in configs.items():
        topic_def = TOPIC_CONFIGS.get(name)
        if topic_def is None:
            raise ConfigError(f"Unknown topic config name: {name}")
        if value is None:
            raise ConfigError(f"Null value not supported for topic config {name}")
        check_value(name, topic_def.kind, value, topic_def.minimum)


@attrs.frozen(slots=True)
class BrokerConfig:
    """The broker's configuration: properties set explicitly (file or command line) over
    Kafka's defaults.  Unknown keys are kept (and reported by DescribeConfigs)."""

    broker_id: int
    host: str
    port: int
    data_dir: str
    explicit: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def build(
        cls,
        broker_id: int,
        host: str,
        port: int,
        data_dir: str,
        properties: Mapping[str, str] | None = None,
    ) -> BrokerConfig:
        """A configuration from command-line identity plus file properties (the command
        line wins for broker.id, listeners and log.dirs).  Raises ConfigError."""
        explicit = dict(properties or {})
        explicit["broker.id"] = str(broker_id)
        explicit["listeners"] = f"PLAINTEXT://{host}:{port}"
        explicit["log.dirs"] = data_dir
        for name, value in explicit.items():
            prop = BROKER_PROPERTIES.get(name)
            if prop is not None:
                check_value(name, prop.kind, value, prop.minimum)
        return cls(broker_id, host, port, data_dir, explicit)

    def get(self, name: str) -> str | None:
        """The value of a property: explicit, else Kafka's default (None = null)."""
        if name in self.explicit:
            return self.explicit[name]
        prop = BROKER_PROPERTIES.get(name)
        return None if prop is None else prop.default

    def get_int(self, name: str) -> int:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return int(value.strip())

    def get_bool(self, name: str) -> bool:
        return (self.get(name) or "false").strip().lower() == "true"

    @property
    def advertised_endpoint(self) -> tuple[str, int]:
        """(host, port) clients are told to connect to: the first advertised.listeners
        entry, else the listener; an unspecified host (0.0.0.0, ::, empty) is replaced by
        this machine's name, as Kafka does."""
        host, port = self.host, self.port
        advertised = self.get("advertised.listeners")
        if advertised:
            parsed = parse_listener(advertised.split(",")[0])
            if parsed is not None:
                host, port = parsed
        if host in ("", "0.0.0.0", "::"):
            host = socket.getfqdn()
        return host, port

    @property
    def num_partitions(self) -> int:
        return self.get_int("num.partitions")

    @property
    def default_replication_factor(self) -> int:
        return self.get_int("default.replication.factor")

    @property
    def auto_create_topics_enable(self) -> bool:
        return self.get_bool("auto.create.topics.enable")

    @property
    def delete_topic_enable(self) -> bool:
        return self.get_bool("delete.topic.enable")

    @property
    def message_max_bytes(self) -> int:
        return self.get_int("message.max.bytes")

    @property
    def min_insync_replicas(self) -> int:
        return self.get_int("min.insync.replicas")

    @property
    def retention_check_interval_ms(self) -> int:
        return self.get_int("log.retention.check.interval.ms")

    @property
    def zookeeper_connect(self) -> str | None:
        """zookeeper.connect, or None when unset or blank (single-broker mode)."""
        value = self.get("zookeeper.connect")
        return value.strip() if value and value.strip() else None

    @property
    def zookeeper_session_timeout_ms(self) -> int:
        return self.get_int("zookeeper.session.timeout.ms")

    @property
    def zookeeper_connection_timeout_ms(self) -> int:
        """zookeeper.connection.timeout.ms; unset (Kafka's null) means the session timeout."""
        if self.get("zookeeper.connection.timeout.ms") is None:
            return self.zookeeper_session_timeout_ms
        return self.get_int("zookeeper.connection.timeout.ms")

    @property
    def unclean_leader_election_enable(self) -> bool:
        return self.get_bool("unclean.leader.election.enable")

    @property
    def socket_request_max_bytes(self) -> int:
        return self.get_int("socket.request.max.bytes")

    @property
    def log_retention_ms(self) -> int:
        """log.retention.ms, else minutes, else hours (Kafka's precedence)."""
        if self.get("log.retention.ms") is not None:
            return self.get_int("log.retention.ms")
        if self.get("log.retention.minutes") is not None:
            return self.get_int("log.retention.minutes") * 60_000
        return self.get_int("log.retention.hours") * _HOUR_MS

    @property
    def log_roll_ms(self) -> int:
        """log.roll.ms, else log.roll.hours."""
        if self.get("log.roll.ms") is not None:
            return self.get_int("log.roll.ms")
        return self.get_int("log.roll.hours") * _HOUR_MS

    def topic_default(self, name: str) -> str:
        """The broker-level default of topic config ``name`` as Kafka reports it."""
        if name == "retention.ms":
            return str(self.log_retention_ms)
        if name == "segment.ms":
            return str(self.log_roll_ms)
        if name == "flush.ms":
            value = self.get("log.flush.interval.ms")
            return str(LONG_MAX) if value is None else value
        value = self.get(TOPIC_CONFIGS[name].synonym)
        return "" if value is None else value

    def topic_synonyms(self, name: str) -> tuple[str, ...]:
        """The broker properties that give topic config ``name`` its default, first
        the one that wins."""
        if name == "retention.ms":
            return ("log.retention.ms", "log.retention.minutes", "log.retention.hours")
        if name == "segment.ms":
            return ("log.roll.ms", "log.roll.hours")
        return (TOPIC_CONFIGS[name].synonym,)

    def topic_config(self, overrides: Mapping[str, str]) -> dict[str, str]:
        """Every topic config's effective value for a topic with these overrides."""
        return {name: overrides.get(name, self.topic_default(name)) for name in TOPIC_CONFIGS}

    def log_config(self, overrides: Mapping[str, str] | None = None) -> LogConfig:
        """The LogConfig of a partition of a topic with these topic-level overrides."""
        values = self.topic_config(overrides or {})
        return LogConfig(
            segment_bytes=int(values["segment.bytes"]),
            segment_ms=int(values["segment.ms"]),
            retention_ms=int(values["retention.ms"]),
            retention_bytes=int(values["retention.bytes"]),
            index_interval_bytes=int(values["index.interval.bytes"]),
            # Kafka's flush.messages=1 is "fsync after every append"; anything else leaves
            # flushing to the operating system (Kafka's default).
            flush_every_append=int(values["flush.messages"]) == 1,
            message_max_bytes=int(values["max.message.bytes"]),
        )


def parse_listener(listener: str) -> tuple[str, int] | None:
    """(host, port) of ``PLAINTEXT://host:port`` or ``host:port`` (IPv6 in brackets)."""
    _, sep, rest = listener.strip().rpartition("://")
    address = rest if sep else listener.strip()
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


def _unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "u" and i + 6 <= len(text):
                try:
                    out.append(chr(int(text[i + 2 : i + 6], 16)))
                    i += 6
                    continue
                except ValueError:
                    pass
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _split_key(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\":
            i += 2
            continue
        if char in "=: \t\f":
            break
        i += 1
    key = line[:i]
    rest = line[i:].lstrip(" \t\f")
    if rest[:1] in ("=", ":") and (i == len(line) or line[i] in " \t\f=:"):
        rest = rest[1:].lstrip(" \t\f")
    return _unescape(key), _unescape(rest)


def parse_properties(text: str) -> dict[str, str]:
    """Parse a Java ``.properties`` file: ``#``/``!`` comments, ``key=value``,
    ``key: value`` or ``key value``, backslash line continuation and escapes."""
    result: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].lstrip(" \t\f")
        i += 1
        if not line or line[0] in "#!":
            continue
        while _continues(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip(" \t\f")
            i += 1
        if _continues(line):
            line = line[:-1]
        key, value = _split_key(line)
        result[key] = value
    return result


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1
