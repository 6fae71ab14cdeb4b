"""A target's declaration: what it offers and what the harness may do to it.

A conformance run holds a target to the spec only where the target claims the feature.
The declaration says which optional features it offers (the idempotent producer,
consumer groups, explicit replica assignments in CreateTopics), what the harness may do to
it (kill, pause or restart brokers: only on a cluster the harness manages), the Kafka
settings it runs with where they differ from Kafka's defaults (``message.max.bytes``,
``min.insync.replicas``, ``num.partitions``, ``default.replication.factor``: the spec is
parameterised by them), and optionally API versions to pin.

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
from spec.config import SpecConfig

SPEC_SETTINGS: Mapping[str, str] = {
    "message.max.bytes": "message_max_bytes",
    "min.insync.replicas": "min_insync_replicas",
    "num.partitions": "num_partitions",
    "default.replication.factor": "default_replication_factor",
}
"""Kafka settings the spec is parameterised by (property name -> SpecConfig field)."""

FEATURES: Mapping[str, str] = {
    "create_topics": "CreateTopics and its checks (partition counts, existing and bad names)",
    "idempotence": "idempotent producer (InitProducerId, sequence numbers, duplicates)",
    "groups": "consumer groups (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, offsets)",
    "explicit_assignment": "CreateTopics with an explicit replica assignment",
    "may_kill_brokers": "broker crashes and restarts (a cluster the harness manages)",
    "may_pause_brokers": "broker pauses (SIGSTOP) and resumes",
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
    topics_out_of_band: bool = False
    """Topics are created out of band by the harness (the target has no CreateTopics): the
    rule ``create_topic`` goes through the harness's hook, ``create_refused_topic`` is off."""
    config: Mapping[str, str] = attrs.field(factory=dict)
    api_versions: Mapping[str, int] = attrs.field(factory=dict)

    def spec_config(self) -> SpecConfig:
        """The spec's configuration for this target: Kafka's defaults, overridden by the
        declared settings."""
        unknown = sorted(set(self.config) - set(SPEC_SETTINGS))
        if unknown:
            raise ValueError(
                f"settings the spec has no parameter for: {', '.join(unknown)} "
                f"(known: {', '.join(SPEC_SETTINGS)})"
            )
        values: dict[str, Any] = {SPEC_SETTINGS[k]: int(v) for k, v in self.config.items()}
        return attrs.evolve(SpecConfig(replica_lag_time_max_ms=-1), **values)

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


LOCAL = TargetDeclaration(name="kafkaref (local)", may_kill_brokers=True, may_pause_brokers=True)
"""The local reference broker ``--local`` starts: it offers every feature."""

LOCAL_BROKER_CONFIG: Mapping[str, str] = {"group.initial.rebalance.delay.ms": "0"}
"""Settings of the broker ``--local`` starts: no initial rebalance delay, so a group's
first JoinGroup is answered at once (with Kafka's 3 s the harness waits for it: the same
answer, later; see docs/harness.md, "Consumer groups")."""


GROUPS_MIN_MESSAGE_BYTES = 16_384
"""Below this ``message.max.bytes`` (which ``__consumer_offsets`` takes too, as in Kafka) an
offset commit or a group's metadata record may be refused as too large
(INVALID_COMMIT_OFFSET_SIZE), which the spec does not model: the group rules do not run."""


def groups_fit(declaration: TargetDeclaration) -> bool:
    """Whether the group rules can run against a target with this declaration's settings."""
    return declaration.spec_config().message_max_bytes >= GROUPS_MIN_MESSAGE_BYTES


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
