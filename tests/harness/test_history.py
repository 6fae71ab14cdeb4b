"""Histories: every kind of operation survives a round trip through a JSON Lines file, a
crash's torn last line is dropped, anything else malformed is refused with its line
number, and the recorder numbers and stamps operations, from several threads at once."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

import pytest

from harness.history import (
    NEMESIS,
    F,
    Fault,
    FaultWindow,
    HistoryFormatError,
    HistoryWriter,
    Json,
    MemoryHistory,
    Op,
    OpType,
    PartitionRead,
    Partitions,
    Poll,
    Send,
    fault_windows,
    parse_history,
    read_history,
    write_history,
)
from spec.state import TopicPartition


def every_kind_of_op() -> list[Op]:
    clock = itertools.count(0, 1000)
    h = MemoryHistory(clock_ns=clock.__next__, wall_clock=lambda: 1_700_000_000.5)
    h.invoke(0, F.SEND, Send("t", None, "k", "0-1"))
    h.ok(0, F.SEND, Send("t", 2, "k", "0-1", 17))
    h.invoke(0, F.SEND, Send("t", 1, None, "0-2"))
    h.fail(0, F.SEND, Send("t", 1, None, "0-2"), "NOT_ENOUGH_REPLICAS")
    h.info(0, F.SEND, Send("t", None, None, "0-3"), "timeout")
    h.info(NEMESIS, F.FAULT, Fault("partition", ("kafka-1", "kafka-2"), "leader isolated"))
    h.ok("c1", F.ASSIGN, Partitions((TopicPartition("t", 0), TopicPartition("u", 1))))
    h.ok("c1", F.SEEK, Partitions())
    h.invoke("c1", F.POLL, Poll())
    reads = (PartitionRead("t", 2, ((17, "0-1"), (18, "x"))), PartitionRead("u", 0, ()))
    h.ok("c1", F.POLL, Poll(reads))
    h.info("c1", F.CRASH)
    h.ok("final", F.POLL, Poll(reads[:1], final=True))
    h.info(NEMESIS, F.HEAL, Fault("partition"))
    return h.ops


def test_the_recorder_numbers_operations_and_stamps_their_times() -> None:
    ops = every_kind_of_op()
    assert [op.index for op in ops] == list(range(len(ops)))
    assert [op.time for op in ops] == [1000 * (i + 1) for i in range(len(ops))]
    assert {op.wall for op in ops} == {1_700_000_000.5}
    assert ops[3].type is OpType.FAIL and ops[3].error == "NOT_ENOUGH_REPLICAS"


def test_every_kind_of_operation_round_trips_through_a_file(tmp_path: Path) -> None:
    ops = every_kind_of_op()
    path = tmp_path / "history.jsonl"
    write_history(path, ops)
    history = read_history(path)
    assert list(history) == ops and len(history) == len(ops) and not history.torn_tail
    lines = path.read_text().splitlines()
    assert len(lines) == len(ops)
    ack = json.loads(lines[1])
    assert ack["type"] == "ok" and ack["f"] == "send"
    assert ack["value"] == {"topic": "t", "partition": 2, "key": "k", "value": "0-1", "offset": 17}
    poll = json.loads(lines[9])["value"]
    assert poll["reads"][0] == {"topic": "t", "partition": 2, "records": [[17, "0-1"], [18, "x"]]}
    assert json.loads(lines[5])["process"] == "nemesis"


def test_the_writer_flushes_every_line(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as w:
        w.invoke(3, F.SEND, Send("t", 0, None, "a"))
        assert len(read_history(path)) == 1  # readable while the run goes on
        op = w.ok(3, F.SEND, Send("t", 0, None, "a", 0))
        assert op.time >= 0 and op.wall > 0
    assert [op.type for op in read_history(path)] == [OpType.INVOKE, OpType.OK]


def test_a_torn_last_line_is_dropped(tmp_path: Path) -> None:
    ops = every_kind_of_op()
    path = tmp_path / "history.jsonl"
    write_history(path, ops)
    text = path.read_text()
    cut = text[: len(text) - 20]  # the recording process died mid-line
    history = parse_history(cut)
    assert history.torn_tail and list(history) == ops[:-1]
    whole = parse_history(text.rstrip("\n"))  # a complete last line without its newline
    assert not whole.torn_tail and list(whole) == ops
    assert parse_history("").ops == () and parse_history("\n\n").ops == ()


def test_a_bad_line_before_the_last_is_refused_with_its_number() -> None:
    lines = [json.dumps(op.to_json()) for op in every_kind_of_op()]
    lines[2] = lines[2][:30]
    with pytest.raises(HistoryFormatError, match=r"h\.jsonl:3: "):
        parse_history("\n".join(lines) + "\n", name="h.jsonl")


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("type", "maybe"),
        ("f", "produce"),
        ("process", None),
        ("process", True),
        ("index", "7"),
        ("wall", "now"),
        ("error", 3),
        ("value", None),
        ("value", {"topic": "t", "partition": 0, "key": None}),
        ("value", {"topic": "t", "partition": -1, "key": None, "value": "v"}),
    ],
)
def test_malformed_operations_are_refused(field: str, bad: Json) -> None:
    line = every_kind_of_op()[0].to_json()
    line[field] = bad
    with pytest.raises(HistoryFormatError):
        Op.from_json(line)


@pytest.mark.parametrize("records", [[[1]], [["1", "a"]], [[True, "a"]], [[1, 2]], "1:a"], ids=repr)
def test_malformed_records_are_refused(records: Json) -> None:
    line = every_kind_of_op()[9].to_json()
    line["value"] = {"final": False, "reads": [{"topic": "t", "partition": 0, "records": records}]}
    with pytest.raises(HistoryFormatError, match="record"):
        Op.from_json(line)


def test_an_operation_must_carry_the_value_its_function_takes() -> None:
    with pytest.raises(HistoryFormatError, match="f poll"):
        Op(0, 0, 0.0, 0, OpType.OK, F.POLL, Send("t", 0, None, "v", 0))
    with pytest.raises(HistoryFormatError, match="f crash"):
        Op(0, 0, 0.0, 0, OpType.INFO, F.CRASH, Partitions())
    with pytest.raises(HistoryFormatError, match="without a partition"):
        Op(0, 0, 0.0, 0, OpType.OK, F.SEND, Send("t", None, None, "v", 0))
    with pytest.raises(HistoryFormatError, match="offset -1"):
        Send("t", 0, None, "v", -1)


def test_threads_recording_at_once_get_distinct_contiguous_indexes(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    with HistoryWriter(path) as w:

        def client(process: int) -> None:
            for i in range(200):
                w.invoke(process, F.SEND, Send("t", 0, None, f"{process}-{i}"))

        threads = [threading.Thread(target=client, args=(p,)) for p in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
            assert not t.is_alive()
    ops = read_history(path).ops
    assert [op.index for op in ops] == list(range(800))
    assert all(a.time <= b.time for a, b in itertools.pairwise(ops))


def test_fault_windows_pair_each_fault_with_the_heal_that_ends_it() -> None:
    clock = itertools.count(0, 10)
    h = MemoryHistory(clock_ns=clock.__next__, wall_clock=lambda: 0.0)
    h.invoke(NEMESIS, F.FAULT, Fault("kill", ("kafka-1",)))  # t=10
    h.info(NEMESIS, F.FAULT, Fault("kill", ("kafka-1",)))  # t=20: same fault, completed
    h.info(NEMESIS, F.FAULT, Fault("partition", ("kafka-2",)))  # 30
    h.info(NEMESIS, F.FAULT, Fault("pause", ("kafka-3",)))  # 40
    h.invoke(NEMESIS, F.HEAL, Fault("kill", ("kafka-1",)))  # 50: not healed yet
    h.info(NEMESIS, F.HEAL, Fault("kill", ("kafka-1",)))  # 60
    h.info(NEMESIS, F.HEAL, Fault("partition"))  # 70: heals every partition
    h.info(0, F.CRASH)
    assert fault_windows(h.ops) == [
        FaultWindow("kill", ("kafka-1",), 10, 60),
        FaultWindow("partition", ("kafka-2",), 30, 70),
        FaultWindow("pause", ("kafka-3",), 40, None),
    ]
