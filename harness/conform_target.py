"""A target's declaration: what it offers and what the harness may do to it.

A conformance run holds a target to the spec only where the target claims the feature.
The declaration says which optional features it offers (the idempotent producer,
consumer groups, explicit replica assignments in CreateTopics), what the harness may do to
it (kill, pause or restart brokers: only on a cluster the harness manages), the Kafka
settings it runs with where they differ from Kafka's defaults (``message.max.bytes``,
``min.insync.replicas``, ``num.partitions``, ``default.replication.factor``: the spec is
parameterised by them; ``log.retention.check.interval.ms``: how long the harness waits
for retention, which it checks only on a target that runs it at least every second;
``offsets.retention.check.interval.ms``: whether the offsets cleanup, which ends an Empty
group without offsets, may run during a run), and optionally API versions to pin.

A feature the target declares unsupported, or does not offer in ApiVersions, is reported
as such and its rules never run: it is not a failure.  A target without CreateTopics
(librdkafka's mock cluster) declares ``topics_out_of_band``: topics are created out of
band by the harness, through a hook only a target the harness starts has (``--mock``).
Declarations are JSON files (``kafkaref conform --target FILE.json``)::

    {"name": "my-kafka", "idempotence": true, "groups": false,
     "config": {"message.max.bytes": "1048588"}, "api_versions": {"Fetch": 11}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from harness.client import API_NAMES, CREATE_TOPICS, GROUP_APIS, INIT_PRODUCER_ID, KafkaClient
from harness.conform_group_ops import DESCRIBE_GROUPS
from harness.conform_retention import LOCAL_CHECK_INTERVAL_MS, MAX_CHECK_INTERVAL_MS, wait_ms
from spec.config import SpecConfig

SPEC_SETTINGS: Mapping[str, str] = {
    "message.max.bytes": "message_max_bytes",
    "min.insync.replicas": "min_insync_replicas",
    "num.partitions": "num_partitions",
    "default.replication.factor": "default_replication_factor",
}
"""Kafka settings the spec is parameterised by (property name -> SpecConfig field)."""

RETENTION_CHECK_INTERVAL = "log.retention.check.interval.ms"
OFFSETS_CLEANUP_INTERVAL = "offsets.retention.check.interval.ms"
HARNESS_SETTINGS: Mapping[str, str] = {
    RETENTION_CHECK_INTERVAL: "300000",
    OFFSETS_CLEANUP_INTERVAL: "600000",
}
"""Kafka settings that tell the harness how to drive the target (name -> Kafka's default)."""

FEATURES: Mapping[str, str] = {
    "create_topics": "CreateTopics and its checks (partition counts, existing and bad names)",
    "idempotence": "idempotent producer (InitProducerId, sequence numbers, duplicates)",
    "groups": "consumer groups (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, offsets)",
    "explicit_assignment": "CreateTopics with an explicit replica assignment",
    "may_kill_brokers": "broker crashes and restarts (a cluster the harness manages)",
    "may_pause_brokers": "broker pauses (SIGSTOP) and resumes",
    "retention": "retention.ms / retention.bytes: the log start offset moves, offsets never reused",
}
"""Optional features and what each covers, as the summary lists them."""

NOT_YET_CHECKED = frozenset({"may_pause_brokers"})
"""Features whose rules this version of the harness does not have yet."""


@attrs.frozen(slots=True)
class TargetDeclaration:
    """What a target offers and allows (see the module docstring)."""

    name: str = "target"
    idempotence: bool = True
    groups: bool = True
    explicit_assignment: bool = True
    may_kill_brokers: bool = False
    may_pause_brokers: bool = False
    retention: bool = True
    """Topics take retention.ms, retention.bytes and segment.bytes in CreateTopics and the
    broker's retention pass honours them (checked only with a short
    log.retention.check.interval.ms, see the module docstring)."""
    topics_out_of_band: bool = False
    """Topics are created out of band by the harness (the target has no CreateTopics): the
    rule ``create_topic`` goes through the harness's hook, ``create_refused_topic`` is off."""
    config: Mapping[str, str] = attrs.field(factory=dict)
    api_versions: Mapping[str, int] = attrs.field(factory=dict)

    def spec_config(self) -> SpecConfig:
        """The spec's configuration for this target: Kafka's defaults, overridden by the
        declared settings."""
        unknown = sorted(set(self.config) - set(SPEC_SETTINGS) - set(HARNESS_SETTINGS))
        if unknown:
            raise ValueError(
                f"settings the spec has no parameter for: {', '.join(unknown)} "
                f"(known: {', '.join([*SPEC_SETTINGS, *HARNESS_SETTINGS])})"
            )
        values: dict[str, Any] = {
            SPEC_SETTINGS[k]: int(v) for k, v in self.config.items() if k in SPEC_SETTINGS
        }
        for name in HARNESS_SETTINGS:
            int(self.setting(name))  # ValueError when it is not a number
        return attrs.evolve(SpecConfig(replica_lag_time_max_ms=-1), **values)

    def setting(self, name: str) -> str:
        """A harness setting (``HARNESS_SETTINGS``) as declared, else Kafka's default."""
        return self.config.get(name, HARNESS_SETTINGS[name])

    def pinned_versions(self) -> dict[int, int]:
        """{api key: version} from the declared ``api_versions`` (by Kafka's API names)."""
        keys = {name: key for key, name in API_NAMES.items()}
        out = {}
        for name, version in self.api_versions.items():
            if name not in keys:
                raise ValueError(f"unknown API {name!r} (known: {', '.join(sorted(keys))})")
            out[keys[name]] = int(version)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            **attrs.asdict(self, recurse=False),
            "config": dict(self.config),
            "api_versions": dict(self.api_versions),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TargetDeclaration:
        names = {f.name for f in attrs.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown declaration fields: {', '.join(unknown)}")
        values = dict(data)
        values["config"] = {str(k): str(v) for k, v in dict(data.get("config", {})).items()}
        values["api_versions"] = {
            str(k): int(v) for k, v in dict(data.get("api_versions", {})).items()
        }
        return cls(**values)

    @classmethod
    def load(cls, path: Path) -> TargetDeclaration:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")))


OFFSETS_CLEANUP_NEVER_MS = 86_400_000
"""A declared offsets.retention.check.interval.ms this long means the offsets cleanup never
runs during a conformance run (the target was started for it); any shorter one, Kafka's
10 minutes included, means it may run between any two steps: a target that has been up
for a while is anywhere in its period."""


def offsets_cleanup_may_run(declaration: TargetDeclaration) -> bool:
    """Whether the group oracle must allow the periodic offsets cleanup (an Empty group
    without offsets dies) between any two steps."""
    return int(declaration.setting(OFFSETS_CLEANUP_INTERVAL)) < OFFSETS_CLEANUP_NEVER_MS


LOCAL = TargetDeclaration(
    name="kafkaref (local)",
    may_kill_brokers=True,
    may_pause_brokers=True,
    config={
        RETENTION_CHECK_INTERVAL: str(LOCAL_CHECK_INTERVAL_MS),
        OFFSETS_CLEANUP_INTERVAL: str(OFFSETS_CLEANUP_NEVER_MS),
    },
)
"""The local reference broker ``--local`` starts: it offers every feature."""

LOCAL_BROKER_CONFIG: Mapping[str, str] = {
    "group.initial.rebalance.delay.ms": "0",
    RETENTION_CHECK_INTERVAL: str(LOCAL_CHECK_INTERVAL_MS),
    OFFSETS_CLEANUP_INTERVAL: str(OFFSETS_CLEANUP_NEVER_MS),
}
"""Settings of the broker ``--local`` starts: no initial rebalance delay, so a group's
first JoinGroup is answered at once (with Kafka's 3 s the harness waits for it: the same
answer, later; see docs/harness.md, "Consumer groups"); a retention pass every 100 ms
(Kafka's: every 5 minutes), so that the harness can check retention; no offsets cleanup
within a day (Kafka's: every 10 minutes), so that the group oracle need not allow one at
every step."""


GROUPS_MIN_MESSAGE_BYTES = 16_384
"""Below this ``message.max.bytes`` (which ``__consumer_offsets`` takes too, as in Kafka) an
offset commit or a group's metadata record may be refused as too large
(INVALID_COMMIT_OFFSET_SIZE), which the spec does not model: the group rules do not run."""


def groups_fit(declaration: TargetDeclaration) -> bool:
    """Whether the group rules can run against a target with this declaration's settings."""
    return declaration.spec_config().message_max_bytes >= GROUPS_MIN_MESSAGE_BYTES


def retention_wait_ms(declaration: TargetDeclaration) -> int | None:
    """How long after its last produce retention is done with a partition of this target
    (``harness.conform_retention``), or None when retention is not checked."""
    interval = int(declaration.setting(RETENTION_CHECK_INTERVAL))
    if not declaration.retention or declaration.topics_out_of_band:
        return None
    return wait_ms(interval) if 0 < interval <= MAX_CHECK_INTERVAL_MS else None


def feature_status(
    declaration: TargetDeclaration, client: KafkaClient, can_restart: bool = False
) -> dict[str, str]:
    """Per optional feature: ``checked``, ``declared unsupported``, ``not offered``
    (missing from the target's ApiVersions) or ``not yet checked`` (no rules yet).
    Broker restarts need the harness to hold the brokers' processes (``can_restart``)."""
    missing = {
        "create_topics": [] if client.offers(CREATE_TOPICS) else [API_NAMES[CREATE_TOPICS]],
        "idempotence": [] if client.offers(INIT_PRODUCER_ID) else [API_NAMES[INIT_PRODUCER_ID]],
        "groups": [API_NAMES[k] for k in GROUP_APIS if not client.offers(k)]
        + ([] if DESCRIBE_GROUPS in client.broker_versions else ["DescribeGroups"]),
    }
    out = {}
    for feature in FEATURES:
        if feature == "create_topics" and declaration.topics_out_of_band:
            out[feature] = "declared unsupported (topics are created out of band by the harness)"
        elif feature != "create_topics" and not getattr(declaration, feature):
            out[feature] = "declared unsupported"
        elif missing.get(feature):
            out[feature] = f"not offered (ApiVersions: no usable {', '.join(missing[feature])})"
        elif feature == "may_kill_brokers" and not can_restart:
            out[feature] = "not checked (the harness holds no broker process)"
        elif feature == "retention" and declaration.topics_out_of_band:
            out[feature] = "not checked (topics created out of band take no retention settings)"
        elif feature == "retention" and retention_wait_ms(declaration) is None:
            out[feature] = (
                f"not checked ({RETENTION_CHECK_INTERVAL} is "
                f"{declaration.setting(RETENTION_CHECK_INTERVAL)} ms: more than "
                f"{MAX_CHECK_INTERVAL_MS} ms, the waits would be too long)"
            )
        elif feature == "groups" and not groups_fit(declaration):
            out[feature] = (
                f"not checked (message.max.bytes below {GROUPS_MIN_MESSAGE_BYTES}: "
                "group records may not fit in __consumer_offsets)"
            )
        elif feature in NOT_YET_CHECKED:
            out[feature] = "not yet checked"
        else:
            out[feature] = "checked"
    return out
