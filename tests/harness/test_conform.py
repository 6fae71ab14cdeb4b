"""The conformance harness: the oracle's verdicts (no broker), operations through JSON,
fetched batches decoded as a consumer does; then end to end against real kafkaref
brokers: the reference broker conforms (and a seed reproduces a run exactly), and a broker
whose behaviour differs from its declaration is caught, shrunk to its minimal trace, and
replayed."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.conform_exec import decode_fetched
from harness.conform_ops import (
    Batch,
    Closed,
    CreateTopic,
    ErrorAnswer,
    Fetch,
    FetchAnswer,
    FetchedRecord,
    InitProducerId,
    ListOffsets,
    Metadata,
    NoAnswer,
    OffsetAnswer,
    Operation,
    PartitionAnswer,
    Produce,
    ProduceAnswer,
    op_from_json,
    op_to_json,
)
from harness.conform_oracle import Oracle
from harness.conform_run import run_conformance
from harness.conform_session import Session, open_session, replay
from harness.conform_shrink import canonical, simplifications
from harness.conform_target import LOCAL, TargetDeclaration
from harness.launcher import BrokerProcess, start_broker
from impl.wire import records
from spec.config import SpecConfig
from spec.errors import ErrorCode
from spec.state import TopicPartition

pytestmark = pytest.mark.timeout(180)

T0 = TopicPartition("t0", 0)
SMALL_MESSAGE_MAX_BYTES = 150


def oracle(config: SpecConfig | None = None) -> Oracle:
    return Oracle(config or SpecConfig(), brokers=[7], controller=7, contact=7)


def check(o: Oracle, op: Operation, observed: object, pids: dict[int, int] | None = None) -> bool:
    return o.check(op, observed, pids or {}).ok  # type: ignore[arg-type]


# --- the oracle -------------------------------------------------------------------------


def test_oracle_allows_exactly_what_the_spec_answers() -> None:
    o = oracle()
    assert check(o, CreateTopic("t0", 1), ErrorAnswer(ErrorCode.NONE))
    produce = Produce((Batch(T0, ((None, b"a"), (b"k", b"b"))),), acks=-1)
    verdict = o.check(produce, ProduceAnswer((PartitionAnswer(T0, ErrorCode.NONE, 5, 0),)), {})
    assert not verdict.ok  # the batch gets offset 0, not 5
    assert verdict.allowed == (ProduceAnswer((PartitionAnswer(T0, ErrorCode.NONE, 0, 0),)),)
    assert check(o, produce, verdict.allowed[0])
    fetched = FetchAnswer(ErrorCode.NONE, 2, 0, (FetchedRecord(1, b"k", b"b", -1, -1, -1, 0),))
    assert check(o, Fetch(T0, 1), fetched)
    assert check(o, Fetch(T0, 3), FetchAnswer(ErrorCode.OFFSET_OUT_OF_RANGE))
    assert not check(o, Fetch(T0, 2), FetchAnswer(ErrorCode.OFFSET_OUT_OF_RANGE))
    assert check(o, ListOffsets(T0, -1), OffsetAnswer(ErrorCode.NONE, 2))
    unknown = TopicPartition("t0", 1)
    assert check(o, Produce((Batch(unknown, ((None, b"x"),)),), 0), Closed())
    assert check(o, Produce((Batch(T0, ((None, b"x"),)),), 0), NoAnswer())
    assert check(o, ListOffsets(T0, -1), OffsetAnswer(ErrorCode.NONE, 3))


def test_oracle_follows_idempotent_producers_with_the_targets_ids() -> None:
    o = oracle()
    pids = {0: 4242}
    assert check(o, CreateTopic("t0", 2, explicit=True), ErrorAnswer(ErrorCode.NONE))
    assert o.explicit_assignment(CreateTopic("t0", 2, explicit=True)) == ((7,), (7,))
    batch = Batch(T0, ((None, b"a"),), producer=0, producer_epoch=0, base_sequence=0)
    ok = ProduceAnswer((PartitionAnswer(T0, ErrorCode.NONE, 0, 0),))
    assert check(o, Produce((batch,), -1), ok, pids)
    assert check(o, Produce((batch,), -1), ok, pids)  # a duplicate: the first offsets
    gap = Batch(T0, ((None, b"b"),), producer=0, producer_epoch=0, base_sequence=3)
    refused = ProduceAnswer((PartitionAnswer(T0, ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER),))
    assert check(o, Produce((gap,), -1), refused, pids)
    record = FetchedRecord(0, None, b"a", 4242, 0, 0, 0)
    assert check(o, Fetch(T0, 0), FetchAnswer(ErrorCode.NONE, 1, 0, (record,)))
    assert check(o, InitProducerId(1), o.check(InitProducerId(1), Closed(), {}).allowed[0])


def test_declared_settings_parameterise_the_spec() -> None:
    declared = TargetDeclaration(config={"message.max.bytes": "100"})
    o = oracle(declared.spec_config())
    assert check(o, CreateTopic("t0", 1), ErrorAnswer(ErrorCode.NONE))
    big = Produce((Batch(T0, ((None, b"v" * 100),)),), 1)
    assert check(o, big, ProduceAnswer((PartitionAnswer(T0, ErrorCode.MESSAGE_TOO_LARGE),)))
    with pytest.raises(ValueError, match="no parameter"):
        TargetDeclaration(config={"log.segment.bytes": "1"}).spec_config()
    assert TargetDeclaration.from_json(declared.to_json()) == declared


# --- operations, batches, shrinking steps ----------------------------------------------

TPS = st.builds(TopicPartition, st.sampled_from(["t0", "t1", "x" * 250]), st.integers(0, 4))
BATCHES = st.builds(
    Batch,
    TPS,
    st.lists(st.tuples(st.none() | st.binary(max_size=4), st.binary(max_size=4)), max_size=3).map(
        tuple
    ),
    st.integers(-1, 2),
    st.integers(-1, 3),
    st.integers(-1, 9),
    st.booleans(),
)
OPERATIONS: st.SearchStrategy[Operation] = st.one_of(
    st.builds(CreateTopic, st.sampled_from(["t0", ".."]), st.integers(-1, 4), st.booleans()),
    st.builds(Produce, st.lists(BATCHES, max_size=3).map(tuple), st.sampled_from([-1, 0, 1, 2])),
    st.builds(Fetch, TPS, st.integers(-1, 10)),
    st.builds(ListOffsets, TPS, st.sampled_from([-2, -1])),
    st.builds(InitProducerId, st.integers(0, 2)),
    st.builds(Metadata, st.lists(st.sampled_from(["t0", "t99"]), max_size=2).map(tuple)),
)


@given(OPERATIONS)
def test_operations_round_trip_through_json(op: Operation) -> None:
    assert op_from_json(op_to_json(op)) == op


@given(OPERATIONS)
def test_simplifications_change_an_operation_but_keep_its_kind(op: Operation) -> None:
    for simpler in simplifications(op):
        assert type(simpler) is type(op) and simpler != op


def test_canonical_names_topics_in_order_of_appearance() -> None:
    ops: list[Operation] = [
        Fetch(TopicPartition("t2", 0), 0),
        CreateTopic("t0", 1),
        Metadata(("t2", "t99", "..")),
    ]
    assert canonical(ops) == [
        Fetch(TopicPartition("t0", 0), 0),
        CreateTopic("t1", 1),
        Metadata(("t0", "t2", "..")),
    ]


def test_fetched_batches_decode_as_a_consumer_reads_them() -> None:
    first = records.build_batch([(None, b"a"), (b"k", b"b")], base_offset=10)
    second = records.build_batch(
        [(None, b"c")], base_offset=12, producer_id=9, producer_epoch=1, base_sequence=4
    )
    assert decode_fetched(first + second[:-3], 11) == (FetchedRecord(11, b"k", b"b"),)
    assert decode_fetched(first + second, 12) == (FetchedRecord(12, None, b"c", 9, 1, 4, -1),)
    corrupt = bytearray(first)
    corrupt[-1] ^= 0xFF
    assert decode_fetched(bytes(corrupt), 10) == "record batch at offset 10 fails its CRC"


# --- against real brokers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> Iterator[BrokerProcess]:
    with start_broker() as b:
        yield b


@pytest.fixture(scope="module")
def small_messages() -> Iterator[BrokerProcess]:
    """A broker whose message.max.bytes is not Kafka's default, as its declaration says."""
    with start_broker(config={"message.max.bytes": SMALL_MESSAGE_MAX_BYTES}) as b:
        yield b


def session(broker: BrokerProcess, declaration: TargetDeclaration = LOCAL) -> Session:
    return open_session(broker.host, broker.port, declaration)


def test_the_reference_broker_conforms_and_a_seed_reproduces_the_run(
    reference: BrokerProcess,
) -> None:
    runs = []
    # Without the group rules (tests/harness/test_conform_groups.py): the broker chooses a
    # group's new leader, so a run with groups is the same only if it chooses alike.  Nor
    # retention (tests/harness/test_conform_retention.py): when the broker's retention pass
    # runs is its own clock's business, and this broker runs it every 5 minutes.
    without_groups = attrs.evolve(LOCAL, groups=False, retention=False)
    for _ in range(2):
        s = session(reference, without_groups)
        try:
            runs.append(run_conformance(s, examples=8, seed=3))
        finally:
            s.close()
    first, second = runs
    assert first.conformant, first.divergences
    assert first.tally.operations > 100
    every_rule = {
        "create_topic",
        "create_refused_topic",
        "produce",
        "produce_keyed",
        "init_producer_id",
        "produce_idempotent",
        "produce_out_of_sequence",
        "retry_batch",
        "fetch",
        "list_offsets",
        "metadata",
    }
    assert every_rule <= set(first.tally.rules)
    assert first.tally.answers == second.tally.answers
    assert first.features["idempotence"] == "checked"
    # The harness restarts brokers only when it holds their processes (--local).
    assert first.features["may_kill_brokers"].startswith("not checked")


def test_invalid_acks_to_a_missing_partition(reference: BrokerProcess) -> None:
    """Found by the harness: a partition that does not exist is UNKNOWN_TOPIC_OR_PARTITION
    whatever the acks (Kafka checks acks only for partitions it has)."""
    s = session(reference)
    try:
        ops: list[Operation] = [
            CreateTopic("t0", 1),
            Produce((Batch(TopicPartition("t0", 1), ((None, b""),)),), acks=2),
        ]
        _, divergence = replay(s, ops)
    finally:
        s.close()
    assert divergence is None


def test_a_target_unlike_its_declaration_is_caught_shrunk_and_replayed(
    small_messages: BrokerProcess,
) -> None:
    s = session(small_messages, TargetDeclaration(name="claims Kafka's defaults", groups=False))
    try:
        result = run_conformance(s, examples=10, seed=3, shrink_budget_s=20)
    finally:
        s.close()
    assert len(result.divergences) == 1
    d = result.divergences[0]
    last = d.steps[-1]
    assert isinstance(last.op, Produce)
    tp = last.op.batches[0].tp
    too_large = ProduceAnswer((PartitionAnswer(tp, ErrorCode.MESSAGE_TOO_LARGE),))
    # At acks=0 Kafka closes the connection instead of answering MESSAGE_TOO_LARGE.
    assert last.observed == (Closed() if last.op.acks == 0 else too_large)
    assert all(
        a == NoAnswer() or (isinstance(a, ProduceAnswer) and not a.partitions[0].error)
        for a in d.allowed
    )
    assert d.reproduced
    assert [type(s.op) for s in d.steps] == [CreateTopic, Produce]
    assert d.found_length > len(d.steps)
    again = session(small_messages, TargetDeclaration())
    honest = TargetDeclaration(config={"message.max.bytes": str(SMALL_MESSAGE_MAX_BYTES)})
    declared = session(small_messages, honest)
    try:
        _, reproduced = replay(again, d.operations)
        steps, none = replay(declared, d.operations)
    finally:
        again.close()
        declared.close()
    assert reproduced is not None and reproduced.steps[-1].observed == last.observed
    assert none is None and len(steps) == 2  # the spec allows it once the setting is declared
