"""``kafkaref conform --mock``: librdkafka's mock cluster as a second implementation.

The confluent-kafka wheel bundles librdkafka, whose mock cluster is a small Kafka broker
set inside the client library (``harness.mock_cluster`` starts one in this process, one
broker).  It is not Kafka and does not claim to be: it exists to test clients.  Checking it
shows what the harness finds in an implementation other than kafkaref's, and why.

What this target does differently from ``--bootstrap``, and nothing else:

- The mock has no CreateTopics (its topics are made through its C API,
  ``rd_kafka_mock_topic_create``).  Its declaration says ``topics_out_of_band``: topics are
  created out of band by the harness, through that call (the rule ``create_topic`` uses
  the hook; ``create_refused_topic``, which checks CreateTopics' validation, is off).
  Every other operation goes over the wire, as for any target.
- Before the search, the wire check (``harness.conform_mock_wire``) sends one request per
  API version the mock advertises and the harness speaks, and decodes each answer
  strictly.  Versions whose answers break the protocol are reported as protocol errors
  (they count against the target, exit status 1); each API is then pinned to its highest
  version that decoded, so that the semantic checks proceed where the mock is correct.
  An API with no such version is treated as not offered.
- The mock's ``group.initial.rebalance.delay.ms`` is set to 0, as ``--local`` sets the
  reference broker's (the same answers, sooner).

The declaration: idempotence and groups as the mock's ApiVersions allow (it has no
DescribeGroups, which the group rules need, so groups are reported not offered), no
explicit replica assignments (no CreateTopics at all), no broker kills (the mock cannot
crash and recover a broker's log), Kafka's default settings.  ``--target FILE.json``
overrides it; its ``api_versions`` override the wire check's pins.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import attrs

from harness.client import API_NAMES, Error, KafkaClient, error
from harness.conform_mock_wire import WireCheck, usable_versions, wire_check
from harness.conform_session import Session, TargetUnavailableError, open_session
from harness.conform_target import TargetDeclaration
from harness.mock_cluster import (
    LibrdkafkaUnavailableError,
    MockCluster,
    MockClusterError,
    librdkafka_version,
)
from spec.errors import ErrorCode

MOCK = TargetDeclaration(
    name="librdkafka mock cluster",
    explicit_assignment=False,
    may_kill_brokers=False,
    may_pause_brokers=False,
    topics_out_of_band=True,
)
"""The mock's declaration (its name gets librdkafka's version when it starts)."""

REPLICATION_FACTOR = 1
"""One broker: every topic the harness makes has replication factor 1."""


def mock_declaration() -> TargetDeclaration:
    """:data:`MOCK` named with the bundled librdkafka's version."""
    try:
        version = librdkafka_version()
    except (LibrdkafkaUnavailableError, OSError):
        return MOCK
    return attrs.evolve(MOCK, name=f"{MOCK.name} (librdkafka {version})")


class TopicMaker:
    """The harness's out-of-band CreateTopics: ``rd_kafka_mock_topic_create``.  The harness
    makes only valid topics itself; for a request Kafka would refuse before creating
    anything (no partitions) it answers as Kafka, without asking the mock, and -1 means
    ``num.partitions``, as in CreateTopics."""

    def __init__(self, cluster: MockCluster, num_partitions: int) -> None:
        self.cluster = cluster
        self.num_partitions = num_partitions

    def __call__(self, name: str, partitions: int) -> Error:
        if partitions == -1:
            partitions = self.num_partitions
        if partitions < 1:
            return ErrorCode.INVALID_PARTITIONS
        try:
            self.cluster.create_topic(name, partitions, REPLICATION_FACTOR)
        except MockClusterError as e:
            return error(e.code) if e.code > 0 else ErrorCode.UNKNOWN_SERVER_ERROR
        return ErrorCode.NONE


def _offered(host: str, port: int) -> dict[int, tuple[int, int]]:
    """The mock's ApiVersions (v0: the only version whose answer every target must get
    right; the wire check judges the others)."""
    with KafkaClient(host, port, client_id="kafkaref-conform") as client:
        client.connect()
        return client.negotiate(0)


def _pins(check: WireCheck) -> tuple[dict[str, int], list[str]]:
    """The versions to pin (by API name) and the APIs no version of which decoded."""
    pins: dict[str, int] = {}
    unusable: list[str] = []
    for key, version in sorted(usable_versions(check).items()):
        if version is None:
            unusable.append(API_NAMES[key])
        else:
            pins[API_NAMES[key]] = version
    return pins, unusable


@contextmanager
def mock_target(declaration: TargetDeclaration | None = None) -> Iterator[Session]:
    """A session on a fresh one-broker mock cluster, after the wire check; the cluster
    stops when the block ends.  TargetUnavailableError when librdkafka is missing."""
    # The mock has no CreateTopics whatever a declaration says: the harness makes topics.
    declared = attrs.evolve(declaration or mock_declaration(), topics_out_of_band=True)
    try:
        cluster = MockCluster(1)
    except (LibrdkafkaUnavailableError, MockClusterError, OSError) as e:
        raise TargetUnavailableError(f"cannot start librdkafka's mock cluster: {e}") from e
    with cluster:
        cluster.set_group_initial_rebalance_delay_ms(0)
        host, _, port_text = cluster.bootstrap.split(",")[0].rpartition(":")
        port = int(port_text)
        try:
            offered = _offered(host, port)
        except OSError as e:
            raise TargetUnavailableError(f"cannot talk to the mock cluster: {e}") from e
        maker = TopicMaker(cluster, declared.spec_config().num_partitions)
        probe_topic = f"kafkaref-wire-{uuid.uuid4().hex[:8]}"
        if maker(probe_topic, 1) != ErrorCode.NONE:
            raise TargetUnavailableError("the mock cluster did not create a topic")
        check = wire_check(host, port, offered, probe_topic)
        pins, unusable = _pins(check)
        pins.update(declared.api_versions)
        declared = attrs.evolve(declared, api_versions=pins)
        session = open_session(host, port, declared, create_topic=maker)
        try:
            for name in unusable:
                key = next(k for k, n in API_NAMES.items() if n == name)
                session.client.broker_versions.pop(key, None)
            session.protocol_errors += check.errors()
            session.notes += _notes(check, pins, unusable, session)
            yield session
        finally:
            session.close()


def _notes(
    check: WireCheck, pins: dict[str, int], unusable: list[str], session: Session
) -> list[str]:
    notes = [
        "topics are created out of band by the harness (rd_kafka_mock_topic_create): "
        "the mock has no CreateTopics",
        "wire check: "
        f"{sum(o.ok for o in check.outcomes)} of {len(check.outcomes)} API versions decoded; "
        "pinned " + ", ".join(f"{name} v{v}" for name, v in sorted(pins.items())),
    ]
    if unusable:
        notes.append(
            f"no version of {', '.join(unusable)} answers in its schema: treated as not offered"
        )
    if check.unanswered():
        notes.append(f"wire check: no answer in time from {', '.join(check.unanswered())}")
    if session.controller not in session.brokers:
        notes.append(
            f"Metadata names controller {session.controller}, which is none of the brokers "
            f"{list(session.brokers)} (not checked: the spec's Metadata answer has no controller)"
        )
    return notes
