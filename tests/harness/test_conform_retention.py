"""Retention in the single-broker conformance check (``harness.conform_retention``): the
oracle allows every log start offset the spec's retention may have reached by the time an
answer arrived, "not yet" included, and never a log that starts again at offset 0; the
declaration decides whether retention is checked; against real brokers the wait sees the
correct broker's retention move the log start offset, and the seeded defect
reuse-offsets-after-retention diverge, and a conform run exercises the retention rules."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest

from harness.conform_ops import (
    Batch,
    CreateTopic,
    ErrorAnswer,
    Fetch,
    FetchAnswer,
    ListOffsets,
    Observation,
    OffsetAnswer,
    Operation,
    PartitionAnswer,
    Produce,
    ProduceAnswer,
    op_from_json,
    op_to_json,
)
from harness.conform_oracle import Oracle
from harness.conform_retention import (
    RETAINED_VALUE_BYTES,
    RETENTION_MS,
    AwaitRetention,
    Timing,
    retention_configs,
    wait_ms,
)
from harness.conform_run import run_conformance
from harness.conform_session import open_session, replay
from harness.conform_shrink import canonical
from harness.conform_target import (
    LOCAL,
    LOCAL_BROKER_CONFIG,
    TargetDeclaration,
    retention_wait_ms,
)
from harness.launcher import BrokerProcess, start_broker
from impl import mutants
from spec.config import DAY_MS, SpecConfig
from spec.errors import ErrorCode
from spec.state import TopicPartition

pytestmark = pytest.mark.timeout(180)

T0 = TopicPartition("t0", 0)
START = 1_000_000
"""The harness's clock (ms) when the example's first batch is stamped."""


def oracle() -> Oracle:
    return Oracle(SpecConfig(), brokers=[3], controller=3, contact=3)


def check(o: Oracle, op: Operation, observed: Observation, batch: int | None, at: int) -> bool:
    o.timing = Timing(batch, at)
    return o.check(op, observed, {}).ok


def produced(o: Oracle, values: list[bytes], at: int, log_start: int = 0) -> None:
    """One batch per value, each acknowledged at the next offset."""
    for v in values:
        base = o.log_end_offset(T0)
        answer = ProduceAnswer((PartitionAnswer(T0, ErrorCode.NONE, base, log_start),))
        assert check(o, Produce((Batch(T0, ((None, v),)),)), answer, at, at)


def at_end(end: int, log_start: int) -> FetchAnswer:
    return FetchAnswer(ErrorCode.NONE, end, log_start)


def retained_topic(by_size: bool = False) -> Oracle:
    o = oracle()
    create = CreateTopic("t0", 1, configs=retention_configs(by_size))
    assert check(o, create, ErrorAnswer(ErrorCode.NONE), None, START)
    return o


# --- the oracle ---------------------------------------------------------------------------


def test_before_retention_ms_nothing_may_be_deleted() -> None:
    o = retained_topic()
    produced(o, [b"a", b"b", b"c"], START)
    soon = START + RETENTION_MS  # not more than retention.ms later: not expired
    assert not check(o, Fetch(T0, 3), at_end(3, 1), None, soon)
    assert not check(o, ListOffsets(T0, -2), OffsetAnswer(ErrorCode.NONE, 1), None, soon)
    assert check(o, ListOffsets(T0, -2), OffsetAnswer(ErrorCode.NONE, 0), None, soon)


def test_after_retention_ms_the_log_start_offset_may_move_or_not_yet() -> None:
    o = retained_topic()
    produced(o, [b"a", b"b", b"c"], START)
    later = START + RETENTION_MS + 1
    wait = AwaitRetention(T0, 3, 2, wait_ms(100))
    verdict = o.check(wait, at_end(3, 2), {})  # the timing is still the last produce's
    assert not verdict.ok and verdict.allowed == (at_end(3, 0),)
    for start in (0, 1, 2, 3):  # not yet, a segment boundary, the active segment, rolled
        probe = retained_topic()
        produced(probe, [b"a", b"b", b"c"], START)
        assert check(probe, wait, at_end(3, start), None, later)
    # The seeded defect: the log starts again at 0, so the log end offset 3 is out of range.
    assert not check(o, wait, FetchAnswer(ErrorCode.OFFSET_OUT_OF_RANGE), None, later)
    assert check(o, wait, at_end(3, 2), None, later)
    # Offsets continue from the log end offset; below the log start offset is out of range.
    reused = ProduceAnswer((PartitionAnswer(T0, ErrorCode.NONE, 0, 0),))
    produce = Produce((Batch(T0, ((None, b"d"),)),))
    assert not check(o, produce, reused, later, later)
    assert check(
        o, produce, ProduceAnswer((PartitionAnswer(T0, ErrorCode.NONE, 3, 2),)), later, later
    )
    assert check(o, Fetch(T0, 1), FetchAnswer(ErrorCode.OFFSET_OUT_OF_RANGE), None, later)
    assert check(o, ListOffsets(T0, -2), OffsetAnswer(ErrorCode.NONE, 2), None, later)
    assert not check(o, ListOffsets(T0, -2), OffsetAnswer(ErrorCode.NONE, 1), None, later)


def test_retention_bytes_zero_needs_no_time_and_spares_topics_without_settings() -> None:
    o = retained_topic(by_size=True)
    produced(o, [b"a", b"b"], START)
    assert check(o, ListOffsets(T0, -2), OffsetAnswer(ErrorCode.NONE, 1), None, START)
    plain = oracle()
    assert check(plain, CreateTopic("t0", 1), ErrorAnswer(ErrorCode.NONE), None, START)
    produced(plain, [b"a", b"b"], START)
    six_days = START + 6 * DAY_MS  # Kafka's default retention.ms is 7 days
    assert not check(plain, ListOffsets(T0, -2), OffsetAnswer(ErrorCode.NONE, 1), None, six_days)


def test_operations_with_retention_round_trip_and_rename() -> None:
    ops: list[Operation] = [
        CreateTopic("t4", 1, configs=retention_configs(True)),
        AwaitRetention(TopicPartition("t4", 0), 7, 5, 300),
    ]
    assert [op_from_json(op_to_json(op)) for op in ops] == ops
    assert canonical(ops) == [
        CreateTopic("t0", 1, configs=retention_configs(True)),
        AwaitRetention(T0, 7, 5, 300),
    ]


def test_the_declaration_decides_whether_retention_is_checked() -> None:
    assert retention_wait_ms(LOCAL) == wait_ms(100)
    assert retention_wait_ms(TargetDeclaration()) is None  # Kafka's 5 minutes: too long
    assert retention_wait_ms(attrs.evolve(LOCAL, retention=False)) is None
    assert retention_wait_ms(attrs.evolve(LOCAL, topics_out_of_band=True)) is None
    LOCAL.spec_config()  # a harness setting, not the spec's
    with pytest.raises(ValueError):
        TargetDeclaration(config={"log.retention.check.interval.ms": "soon"}).spec_config()


# --- against kafkaref brokers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> Iterator[BrokerProcess]:
    with start_broker(config=dict(LOCAL_BROKER_CONFIG)) as b:
        yield b


RETAINED: list[Operation] = [
    CreateTopic("t0", 1, configs=retention_configs(False)),
    *(Produce((Batch(T0, ((None, v * RETAINED_VALUE_BYTES),)),)) for v in (b"a", b"b", b"c")),
    AwaitRetention(T0, 3, 2, wait_ms(100)),
    Produce((Batch(T0, ((None, b"d" * RETAINED_VALUE_BYTES),)),)),
]


def test_the_wait_sees_retention_move_the_log_start_offset(reference: BrokerProcess) -> None:
    s = open_session(reference.host, reference.port, LOCAL)
    try:
        steps, divergence = replay(s, RETAINED)
    finally:
        s.close()
    assert divergence is None, divergence
    assert steps[4].observed == at_end(3, 2)  # the active segment stays
    assert steps[5].observed == ProduceAnswer((PartitionAnswer(T0, ErrorCode.NONE, 3, 2),))


def test_the_wait_catches_offsets_reused_after_retention() -> None:
    config = {**LOCAL_BROKER_CONFIG, mutants.PROPERTY: mutants.REUSE_OFFSETS_AFTER_RETENTION}
    with start_broker(config=config) as broker:
        s = open_session(broker.host, broker.port, LOCAL)
        try:
            _, divergence = replay(s, RETAINED)
        finally:
            s.close()
    assert divergence is not None
    assert isinstance(divergence.steps[-1].op, AwaitRetention)
    assert divergence.steps[-1].observed == FetchAnswer(ErrorCode.OFFSET_OUT_OF_RANGE)


def test_a_conform_run_exercises_the_retention_rules(reference: BrokerProcess) -> None:
    s = open_session(reference.host, reference.port, attrs.evolve(LOCAL, groups=False))
    try:
        result = run_conformance(s, examples=6, seed=4)
    finally:
        s.close()
    assert result.conformant, result.divergences
    assert result.features["retention"] == "checked"
    assert result.tally.rules["create_topic_with_retention"] >= 1
    assert result.tally.answers[("await_retention", "NONE")] >= 1
