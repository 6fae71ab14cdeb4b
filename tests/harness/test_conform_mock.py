"""``kafkaref conform --mock``: librdkafka's mock cluster, checked, and what it is found to do.

The wire check's protocol errors (for the librdkafka these findings were made with, 2.16;
another version is checked for the mechanism only), each semantic divergence reproduced
by its minimal list of operations, a trace the mock gets right, the out-of-band topic
maker, and the command itself: exit status 1 with the protocol errors and divergences in
its report, and a replay file that diverges again.  docs/harness.md, "A second
implementation: librdkafka's mock cluster", says why each is a divergence.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.conform_faults import RestartBroker
from harness.conform_mock import TopicMaker, mock_target
from harness.conform_mock_search import Kind, kind, search_distinct
from harness.conform_ops import (
    Batch,
    Closed,
    CreateTopic,
    Failed,
    Fetch,
    FetchAnswer,
    InitProducerId,
    ListOffsets,
    Metadata,
    Operation,
    PartitionAnswer,
    Produce,
    ProduceAnswer,
)
from harness.conform_session import Session, replay
from harness.conform_target import feature_status
from harness.mock_cluster import MockCluster, librdkafka_version
from spec.errors import ErrorCode
from spec.state import TopicPartition
from tests.harness.test_cli_explore import kafkaref

pytest.importorskip("confluent_kafka")
pytestmark = pytest.mark.timeout(120)

FINDINGS_VERSION = "2.16."
"""The librdkafka whose wire-level findings docs/harness.md records."""

TP = TopicPartition("t0", 0)
CREATE = CreateTopic("t0", 1)
ONE = ((None, b""),)


@pytest.fixture(scope="module")
def mock() -> Iterator[Session]:
    with mock_target() as session:
        yield session


def test_wire_check_reports_the_protocol_errors_and_pins_what_decodes(mock: Session) -> None:
    for e in mock.protocol_errors:
        assert e.api and e.versions and e.problem
    if not librdkafka_version().startswith(FINDINGS_VERSION):
        pytest.skip(f"the findings are recorded for librdkafka {FINDINGS_VERSION}x")
    found = {(e.api, e.versions): e.problem for e in mock.protocol_errors}
    assert found[("Metadata", (9, 10, 11, 12))].startswith("1 byte after the body (00)")
    assert "a field it has is missing" in found[("Produce", (5,))]
    assert "a field it has is missing" in found[("LeaveGroup", (3, 4))]
    assert "not make nullable" in found[("SyncGroup", (0, 1, 2, 3))]
    for api, version in (("JoinGroup", 6), ("SyncGroup", 4)):
        assert "closed the connection" in found[(api, (version,))]
    assert "KIP-511" in found[("ApiVersions", (3,))]
    assert len(found) == 7
    pinned = mock.declaration.api_versions
    assert (pinned["Metadata"], pinned["Produce"], pinned["JoinGroup"]) == (8, 9, 5)
    assert "SyncGroup" not in pinned and not mock.client.offers(14)


def test_the_declaration_and_feature_status(mock: Session) -> None:
    assert mock.declaration.topics_out_of_band and not mock.declaration.explicit_assignment
    status = feature_status(mock.declaration, mock.client)
    assert status["create_topics"].startswith("declared unsupported (topics are created out")
    assert status["idempotence"] == "checked"
    assert status["groups"].startswith("not offered") and "DescribeGroups" in status["groups"]
    assert status["may_kill_brokers"] == "declared unsupported"


def test_a_trace_the_mock_gets_right(mock: Session) -> None:
    ops: list[Operation] = [
        CreateTopic("t0", 2),
        Produce((Batch(TP, ((b"k", b"v"), (None, b"w"))),), acks=1),
        Produce((Batch(TopicPartition("t0", 2), ONE),), acks=-1),  # no such partition
        Fetch(TP, 0),
        Fetch(TP, 3),  # past the log end: OFFSET_OUT_OF_RANGE
        ListOffsets(TP, -1),
        ListOffsets(TP, -2),
        Metadata(("t0", "t99")),
    ]
    steps, divergence = replay(mock, ops)
    assert divergence is None, divergence and divergence.steps[-1]
    assert steps[2].observed == ProduceAnswer(
        (PartitionAnswer(TopicPartition("t0", 2), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),)
    )
    assert steps[4].observed == FetchAnswer(ErrorCode.OFFSET_OUT_OF_RANGE)


def _idempotent(sequence: int, epoch: int = 0, value: bytes = b"") -> Batch:
    return Batch(TP, ((None, value),), producer=0, producer_epoch=epoch, base_sequence=sequence)


# Each finding's minimal reproduction, as the shrinker leaves it, and the answers: what
# the mock gives (observed) and what Kafka's rules (the spec) allow.
FINDINGS: dict[str, tuple[list[Operation], str, str]] = {
    "acks=0 is answered (the produce failed)": (
        [Produce((Batch(TP, ONE),), acks=0)],
        "an answer to the acks=0 Produce (Kafka sends none)",
        "connection closed by the broker",
    ),
    "acks=0 is answered (the produce succeeded)": (
        [CREATE, Produce((Batch(TP, ONE),), acks=0)],
        "an answer to the acks=0 Produce (Kafka sends none)",
        "no answer (acks=0), connection open",
    ),
    "acks=2 is accepted": (
        [CREATE, Produce((Batch(TP, ONE),), acks=2)],
        "t0-0 base offset 0 (log start 0)",
        "t0-0 INVALID_REQUIRED_ACKS",
    ),
    "the CRC is not checked": (
        [CREATE, Produce((Batch(TP, ONE, corrupt=True),), acks=1)],
        "t0-0 base offset 0 (log start 0)",
        "t0-0 CORRUPT_MESSAGE",
    ),
    "message.max.bytes is not enforced": (
        [CREATE, Produce((Batch(TP, ((None, bytes(1_048_588)),)),), acks=-1)],
        "t0-0 base offset 0 (log start 0)",
        "t0-0 MESSAGE_TOO_LARGE",
    ),
    "a fetch returns one batch": (
        [CREATE, *[Produce((Batch(TP, ONE),), acks=1)] * 2, Fetch(TP, 0)],
        "high watermark 2, log start 0, records [0:'']",
        "high watermark 2, log start 0, records [0:'', 1:'']",
    ),
    "a retried idempotent batch is appended again": (
        [InitProducerId(0), CREATE, *[Produce((_idempotent(0),), acks=-1)] * 2],
        "t0-0 base offset 1 (log start 0)",
        "t0-0 base offset 0 (log start 0)",
    ),
    "a sequence gap is accepted": (
        [InitProducerId(0), CREATE, *(Produce((_idempotent(s),), acks=-1) for s in (0, 2))],
        "t0-0 base offset 1 (log start 0)",
        "t0-0 OUT_OF_ORDER_SEQUENCE_NUMBER",
    ),
    "a fenced epoch is accepted": (
        [
            InitProducerId(0),
            CREATE,
            *(Produce((_idempotent(s, e),), acks=-1) for s, e in ((0, 1), (1, 0))),
        ],
        "t0-0 base offset 1 (log start 0)",
        "t0-0 INVALID_PRODUCER_EPOCH",
    ),
}


@pytest.mark.parametrize("finding", list(FINDINGS))
def test_each_finding_diverges_as_documented(mock: Session, finding: str) -> None:
    ops, observed, allowed = FINDINGS[finding]
    steps, divergence = replay(mock, ops)
    assert divergence is not None, [s.observed.describe() for s in steps]
    assert len(divergence.steps) == len(ops)  # at the last operation, not before
    assert divergence.steps[-1].observed.describe() == observed
    assert [a.describe() for a in divergence.allowed] == [allowed]


def test_the_acks_0_finding_is_the_answer_not_a_decoding_failure(mock: Session) -> None:
    _, divergence = replay(mock, FINDINGS["acks=0 is answered (the produce failed)"][0])
    assert divergence is not None
    assert isinstance(divergence.steps[-1].observed, Failed)
    assert divergence.allowed == (Closed(),)
    assert kind(divergence) == ("Produce", "Failed", ("Closed",))


def test_topics_are_made_out_of_band_as_createtopics_would_answer() -> None:
    with MockCluster(1) as cluster:
        make = TopicMaker(cluster, num_partitions=3)
        assert make("a", 2) == ErrorCode.NONE
        assert make("a", 2) == ErrorCode.TOPIC_ALREADY_EXISTS  # the mock's own answer
        assert make("b", 0) == ErrorCode.INVALID_PARTITIONS  # the harness's: Kafka's rule
        assert make("c", -1) == ErrorCode.NONE  # num.partitions


def test_no_restarts_without_a_process(mock: Session) -> None:
    assert not mock.can_restart
    steps, divergence = replay(mock, [RestartBroker(0)])
    assert divergence is not None  # the harness cannot restart the mock: not a pass
    assert steps[-1].observed == Failed("the harness cannot restart this target's brokers")


REUSED_PRODUCER_ID: Kind = ("InitProducerId", "NONE", ("NONE",))
"""The mock draws producer ids at random (not reproducible by replay: see the docs)."""


def test_the_search_goes_on_and_meets_only_the_known_kinds(mock: Session) -> None:
    known: set[Kind] = {REUSED_PRODUCER_ID}
    for ops, _, _ in FINDINGS.values():
        _, divergence = replay(mock, ops)
        assert divergence is not None
        known.add(kind(divergence))
    result = search_distinct(mock, examples=40, seed=3, shrink_budget_s=5)
    assert result.tally.examples >= 40 - 5  # went on after the first divergence
    kinds = [kind(d) for d in result.divergences]
    assert len(kinds) >= 3 and len(set(kinds)) == len(kinds)
    assert set(kinds) <= known, set(kinds) - known
    assert any(n.startswith("divergences of each kind met") for n in result.notes)


def test_the_command_exits_1_with_its_findings_and_replays(tmp_path: Path) -> None:
    report, replay_file = tmp_path / "report.json", tmp_path / "replay.json"
    out = kafkaref(
        "conform", "--mock", "--examples", "10", "--seed", "3",
        "--report", str(report), "--replay-file", str(replay_file),
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    assert "PROTOCOL ERRORS" in out.stdout and "--mock --replay" in out.stdout
    data = json.loads(report.read_text())
    assert data["conformant"] is False and data["divergences"]
    assert {e["api"] for e in data["protocol_errors"]} >= {"Metadata"}
    assert data["features"]["create_topics"].startswith("declared unsupported")
    again = kafkaref("conform", "--mock", "--replay", str(replay_file))
    assert again.returncode == 1, again.stdout + again.stderr
