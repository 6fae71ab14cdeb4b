"""The history checker on small hand-made histories: each of Jepsen's anomalies is reported
under its name with a telling example, and a near miss that is legitimate is not."""

from __future__ import annotations

import itertools
import json

import pytest

from harness.checker import (
    DUPLICATE,
    G1A,
    INCONSISTENT_OFFSETS,
    LOST_WRITE,
    NONMONOTONIC_POLL,
    NONMONOTONIC_SEND,
    POLL_SKIP,
    UNSEEN,
    CheckResult,
    check,
)
from harness.history import (
    NEMESIS,
    F,
    Fault,
    MemoryHistory,
    OpType,
    PartitionRead,
    Partitions,
    Poll,
    Process,
    Send,
)
from spec.state import TopicPartition

TOPIC = "t"


class Script:
    """Builds a history one client call at a time."""

    def __init__(self) -> None:
        self.h = MemoryHistory(clock_ns=itertools.count().__next__, wall_clock=lambda: 0.0)

    def send(
        self,
        process: Process,
        value: str,
        offset: int | None = None,
        *,
        partition: int = 0,
        outcome: OpType = OpType.OK,
    ) -> None:
        """A send invoked and completed at once."""
        self.invoke_send(process, value, partition)
        self.complete_send(process, value, offset, partition=partition, outcome=outcome)

    def invoke_send(self, process: Process, value: str, partition: int = 0) -> None:
        self.h.invoke(process, F.SEND, Send(TOPIC, partition, None, value))

    def complete_send(
        self,
        process: Process,
        value: str,
        offset: int | None,
        *,
        partition: int = 0,
        outcome: OpType = OpType.OK,
    ) -> None:
        shown = offset if outcome is OpType.OK else None
        self.h.record(process, outcome, F.SEND, Send(TOPIC, partition, None, value, shown))

    def poll(
        self,
        process: Process,
        *records: tuple[int, str],
        partition: int = 0,
        final: bool = False,
        outcome: OpType = OpType.OK,
    ) -> None:
        """A poll of one partition that read ``records``."""
        self.h.invoke(process, F.POLL, Poll(final=final))
        reads = (PartitionRead(TOPIC, partition, records),) if outcome is OpType.OK else ()
        self.h.record(process, outcome, F.POLL, Poll(reads, final=final))

    def final(self, *records: tuple[int, str], partition: int = 0) -> None:
        """The final read of a partition, by its own process."""
        self.h.ok("final", F.ASSIGN, Partitions((TopicPartition(TOPIC, partition),)))
        self.poll("final", *records, partition=partition, final=True)

    def check(self) -> CheckResult:
        result = check(self.h.ops)
        json.dumps(result.to_json())  # always renders
        return result


def found(result: CheckResult) -> set[str]:
    return set(result.anomalies)


def first_example(result: CheckResult, name: str) -> dict[str, object]:
    return dict(result.anomalies[name].examples[0])


def test_a_correct_history_is_valid_and_counted() -> None:
    s = Script()
    s.send(0, "a", 0)
    s.send(0, "b", 1)
    s.send(1, "c", outcome=OpType.FAIL)
    s.send(1, "d", outcome=OpType.INFO)
    s.poll(5, (0, "a"))
    s.h.info(NEMESIS, F.FAULT, Fault("kill", ("broker-1",)))
    s.poll(5, (1, "b"), (2, "d"))
    s.h.info(NEMESIS, F.HEAL, Fault("kill", ("broker-1",)))
    s.final((0, "a"), (1, "b"), (2, "d"))
    result = s.check()
    assert result.valid and not result.anomalies
    st = result.stats
    assert (st.sends_acknowledged, st.sends_failed, st.sends_unknown) == (2, 1, 1)
    assert (st.records_read, st.values_read) == (6, 3)
    assert (st.partitions, st.final_read_partitions, st.nemesis_ops) == (1, 1, 2)
    assert st.by_f["send"] == 8 and st.by_type["invoke"] == 7
    assert result.summary() == "valid: 2 sends acknowledged, 3 values read"


def test_lost_write_is_an_acknowledged_value_missing_from_the_final_read() -> None:
    s = Script()
    s.send(0, "a", 0)
    s.send(0, "b", 1)
    s.poll(5, (0, "a"), (1, "b"))
    s.final((0, "a"))
    result = s.check()
    assert not result.valid
    assert found(result) == {LOST_WRITE}
    assert result.anomalies[LOST_WRITE].count == 1
    example = first_example(result, LOST_WRITE)
    assert example["value"] == "b" and example["offset"] == 1 and example["partition"] == 0
    assert result.bad_anomaly_types == (LOST_WRITE,)


def test_without_a_final_read_a_write_is_lost_when_a_later_offset_was_read() -> None:
    s = Script()
    s.send(0, "a", 0)
    s.send(0, "b", 1)
    s.send(0, "c", 2)
    s.poll(5, (0, "a"))
    s.h.ok(5, F.SEEK, Partitions((TopicPartition(TOPIC, 0),)))
    s.poll(5, (2, "c"))
    result = s.check()
    assert found(result) == {LOST_WRITE, UNSEEN}
    example = first_example(result, LOST_WRITE)
    assert example["value"] == "b" and example["max-offset-read"] == 2


def test_an_unknown_send_may_be_missing_and_an_unread_tail_is_only_unseen() -> None:
    s = Script()
    s.send(0, "a", 0)
    s.send(0, "b", outcome=OpType.INFO)
    s.invoke_send(0, "c")  # never completed: the client crashed
    s.final((0, "a"))
    assert s.check().valid
    s = Script()
    s.send(0, "a", 0)
    s.send(0, "b", 1)
    s.poll(5, (0, "a"))
    result = s.check()
    assert result.valid and found(result) == {UNSEEN}
    assert first_example(result, UNSEEN)["value"] == "b"
    assert result.stats.sends_unknown == 0


def test_duplicate_is_a_value_at_two_offsets() -> None:
    s = Script()
    s.send(0, "a", 0)
    s.send(0, "b", 1)
    s.final((0, "a"), (1, "b"), (2, "a"))
    result = s.check()
    assert found(result) == {DUPLICATE}
    example = first_example(result, DUPLICATE)
    assert example["value"] == "a"
    assert example["offsets"] == [
        {"topic": TOPIC, "partition": 0, "offset": 0},
        {"topic": TOPIC, "partition": 0, "offset": 2},
    ]
    assert check(s.h.ops, allowed=[DUPLICATE]).valid  # producers without idempotence


def test_reading_a_value_again_at_the_same_offset_is_no_duplicate() -> None:
    s = Script()
    s.send(0, "a", 0)
    s.poll(5, (0, "a"))
    s.poll(6, (0, "a"))
    s.final((0, "a"))
    assert s.check().valid


def test_inconsistent_offsets_between_two_reads_and_between_ack_and_read() -> None:
    s = Script()
    s.poll(5, (0, "a"))
    s.poll(6, (0, "b"))
    result = s.check()
    assert found(result) == {INCONSISTENT_OFFSETS}
    assert first_example(result, INCONSISTENT_OFFSETS) == {
        "topic": TOPIC,
        "partition": 0,
        "offset": 0,
        "values": ["a", "b"],
    }
    s = Script()
    s.send(0, "a", 0)
    s.send(1, "b", 1)
    s.final((0, "a"), (1, "x"), (2, "b"))  # b was acknowledged at 1 but lives at 2
    result = s.check()
    assert found(result) == {INCONSISTENT_OFFSETS, DUPLICATE}
    assert first_example(result, INCONSISTENT_OFFSETS)["values"] == ["b", "x"]


def test_nonmonotonic_send_is_a_producer_acknowledged_backwards() -> None:
    s = Script()
    s.invoke_send(0, "a")
    s.invoke_send(0, "b")  # pipelined: both in flight
    s.complete_send(0, "b", 0)
    s.complete_send(0, "a", 1)
    s.final((0, "b"), (1, "a"))
    result = s.check()
    assert found(result) == {NONMONOTONIC_SEND}
    example = first_example(result, NONMONOTONIC_SEND)
    assert example["values"] == ["a", "b"] and example["offsets"] == [1, 0]


def test_sends_of_different_producers_or_partitions_interleave_freely() -> None:
    s = Script()
    s.send(0, "a", 5)
    s.send(1, "b", 2)
    s.send(0, "c", 0, partition=1)
    s.send(0, "d", 9)  # a gap: other producers wrote 6..8
    s.final((2, "b"), (5, "a"), (9, "d"))
    s.final((0, "c"), partition=1)
    assert s.check().valid


def test_nonmonotonic_poll_across_polls_and_within_one() -> None:
    s = Script()
    s.poll(5, (0, "a"), (1, "b"))
    s.poll(5, (1, "b"))
    s.poll(6, (1, "b"), (0, "a"))
    result = s.check()
    assert found(result) == {NONMONOTONIC_POLL}
    assert result.anomalies[NONMONOTONIC_POLL].count == 2
    across, within = result.anomalies[NONMONOTONIC_POLL].examples
    assert across["process"] == 5 and across["offsets"] == [1, 1]
    assert within["process"] == 6 and within["offsets"] == [1, 0]
    assert within["poll-indexes"] == [5, 5]  # both reads in the same poll


@pytest.mark.parametrize("reset", ["seek", "assign", "crash", "info-poll"])
def test_a_consumer_may_go_back_or_skip_after_a_reset(reset: str) -> None:
    s = Script()
    for offset, value in enumerate("abc"):
        s.send(0, value, offset)
    s.poll(5, (0, "a"), (1, "b"))
    if reset == "seek":
        s.h.ok(5, F.SEEK, Partitions((TopicPartition(TOPIC, 0),)))
    elif reset == "assign":
        s.h.info(5, F.ASSIGN, Partitions())  # a rebalance's new assignment
    elif reset == "crash":
        s.h.info(5, F.CRASH)
    else:
        s.poll(5, outcome=OpType.INFO)
    s.poll(5, (0, "a"))
    s.poll(5, (2, "c"))
    reported = s.check()
    assert found(reported) == {POLL_SKIP}  # the jump 0 -> 2 after the reset is still one
    assert reported.anomalies[POLL_SKIP].count == 1


def test_a_seek_on_another_partition_does_not_reset() -> None:
    s = Script()
    s.poll(5, (3, "a"))
    s.h.ok(5, F.SEEK, Partitions((TopicPartition(TOPIC, 1),)))
    s.poll(5, (2, "b"))
    assert found(s.check()) == {NONMONOTONIC_POLL}


def test_poll_skip_jumps_over_an_offset_that_exists() -> None:
    s = Script()
    for offset, value in enumerate("abcd"):
        s.send(0, value, offset)
    s.poll(5, (0, "a"))
    s.poll(5, (3, "d"))
    s.final((0, "a"), (1, "b"), (2, "c"), (3, "d"))
    result = s.check()
    assert found(result) == {POLL_SKIP}
    example = first_example(result, POLL_SKIP)
    assert example["offsets"] == [0, 3]
    assert example["skipped"] == 2 and example["skipped-offsets"] == [1, 2]


def test_offsets_nobody_saw_are_no_skip() -> None:
    """Gaps in offsets (transaction markers, compaction) are not records to read."""
    s = Script()
    s.send(0, "a", 0)
    s.send(0, "b", 2)
    s.send(0, "c", 7)
    s.poll(5, (0, "a"), (2, "b"))
    s.poll(5, (7, "c"))
    s.final((0, "a"), (2, "b"), (7, "c"))
    assert s.check().valid


def test_g1a_is_a_failed_send_read_back() -> None:
    s = Script()
    s.send(0, "a", 0)
    s.send(0, "x", outcome=OpType.FAIL)
    s.poll(5, (0, "a"), (1, "x"))
    s.final((0, "a"), (1, "x"))
    result = s.check()
    assert found(result) == {G1A}
    example = first_example(result, G1A)
    assert example["value"] == "x" and example["offset"] == 1 and example["read-index"] == 5


def test_a_failed_send_that_stays_unread_and_an_unknown_one_read_are_fine() -> None:
    s = Script()
    s.send(0, "x", outcome=OpType.FAIL)
    s.send(0, "y", outcome=OpType.INFO)
    s.final((0, "y"))
    assert s.check().valid


def test_partitions_are_kept_apart() -> None:
    s = Script()
    s.send(0, "a", 0, partition=0)
    s.send(0, "b", 0, partition=1)
    s.poll(5, (0, "a"), partition=0)
    s.poll(5, (0, "b"), partition=1)
    s.final((0, "a"), partition=0)
    s.final((0, "b"), partition=1)
    assert s.check().valid


def test_examples_are_capped_and_counts_are_not() -> None:
    s = Script()
    for i in range(20):
        s.send(0, f"v{i}", i)
    s.final()
    result = s.check()
    lost = result.anomalies[LOST_WRITE]
    assert lost.count == 20 and len(lost.examples) == 8
    assert (
        result.summary()
        == "INVALID: 20 sends acknowledged, 0 values read; lost-write 20, unseen 20"
    )


def test_unknown_allowed_names_are_refused() -> None:
    with pytest.raises(ValueError, match="lost-writes"):
        check([], allowed=["lost-writes"])


def test_the_verdict_renders_to_json() -> None:
    s = Script()
    s.send(0, "a", 0)
    s.final()
    rendered = json.loads(json.dumps(s.check().to_json()))
    assert rendered["valid"] is False
    assert rendered["anomaly-types"] == [LOST_WRITE, UNSEEN]
    assert rendered["bad-anomaly-types"] == [LOST_WRITE]
    assert rendered["anomalies"][LOST_WRITE]["count"] == 1
    assert rendered["stats"]["sends-acknowledged"] == 1
