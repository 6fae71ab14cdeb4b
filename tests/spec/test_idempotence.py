"""The idempotent producer as the leader checks it: duplicates, gaps, epochs, wrap-around."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from spec.errors import ErrorCode
from spec.idempotence import (
    EMPTY_SNAPSHOT,
    MAX_SEQUENCE,
    NO_PRODUCERS,
    Append,
    BatchMetadata,
    Duplicate,
    ProducerBatch,
    ProducerIdState,
    ProducerSnapshot,
    ProducerStateEntry,
    ProducerStates,
    SequenceVerdict,
    append_batch,
    batch_records,
    check_sequence,
    increment_sequence,
    init_producer_id,
    log_batches,
    producer_state,
    take_snapshot,
)
from spec.log import Log, Record

OOO = ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def send(
    log: Log,
    pid: int,
    epoch: int,
    seq: int,
    count: int = 1,
    *,
    snapshot: ProducerSnapshot = EMPTY_SNAPSHOT,
) -> tuple[Log, SequenceVerdict]:
    """A produce request as the leader handles it: check, then append if in sequence."""
    verdict = check_sequence(log, pid, epoch, seq, count, snapshot=snapshot)
    if isinstance(verdict, Append):
        for r in batch_records(pid, epoch, seq, [b"v"] * count):
            log = log.append(r)
    return log, verdict


def plain(log: Log) -> Log:
    """A record from a producer that is not idempotent."""
    return log.append(Record(b"plain"))


def test_a_retried_batch_gets_its_original_offsets() -> None:
    log = plain(plain(Log()))
    log, v = send(log, pid=7, epoch=0, seq=0, count=3)
    assert v == Append()
    log = plain(log)
    log, v = send(log, pid=7, epoch=0, seq=3, count=2)
    assert v == Append()
    assert log.end_offset == 8
    assert send(log, 7, 0, 0, 3)[1] == Duplicate(base_offset=2, last_offset=4)
    assert send(log, 7, 0, 3, 2)[1] == Duplicate(base_offset=6, last_offset=7)
    assert send(log, 7, 0, 3, 2)[0] == log  # nothing appended


KAFKA_BATCHES_RETAINED = 5  # ProducerStateEntry.NUM_BATCHES_TO_RETAIN


def test_only_the_last_five_batches_are_remembered() -> None:
    log = Log()
    offsets = []
    for i in range(KAFKA_BATCHES_RETAINED + 1):
        base = log.end_offset
        log, v = send(log, 1, 0, 2 * i, 2)
        assert v == Append()
        offsets.append((base, base + 1))
        log = plain(log)
    for i in range(1, KAFKA_BATCHES_RETAINED + 1):
        assert send(log, 1, 0, 2 * i, 2)[1] == Duplicate(*offsets[i])
    # The oldest batch fell out of the cache: its retry is out of order, not a duplicate.
    assert send(log, 1, 0, 0, 2)[1] == OOO


def test_gaps_and_inexact_retries_are_out_of_order() -> None:
    log, _ = send(Log(), 1, 0, 0, 5)  # sequences 0..4
    assert send(log, 1, 0, 6)[1] == OOO  # gap: 5 is missing
    assert send(log, 1, 0, 4)[1] == OOO  # overlaps the last batch without matching it
    assert send(log, 1, 0, 0, 4)[1] == OOO  # same start, different length
    assert send(log, 1, 0, 1, 4)[1] == OOO
    assert send(log, 1, 0, 5, 3)[1] == Append()


def test_a_producer_with_no_state_may_start_at_any_sequence() -> None:
    # KIP-360: the broker cannot tell a new producer from one whose state expired.
    log, v = send(Log(), 9, 3, 42, 2)
    assert v == Append()
    assert send(log, 9, 3, 44)[1] == Append()
    assert send(log, 9, 3, 42, 2)[1] == Duplicate(0, 1)
    # Brokers before KIP-360 answered UNKNOWN_PRODUCER_ID unless the sequence was 0.
    assert check_sequence(Log(), 9, 3, 42, 2, kip_360=False) == ErrorCode.UNKNOWN_PRODUCER_ID
    assert check_sequence(Log(), 9, 3, 0, 2, kip_360=False) == Append()
    assert check_sequence(log, 9, 3, 44, 1, kip_360=False) == Append()


def test_epoch_fencing() -> None:
    log, _ = send(Log(), 1, 2, 0, 3)
    # An older epoch is fenced, even for what would be a duplicate or the next sequence.
    assert send(log, 1, 1, 0, 3)[1] == ErrorCode.INVALID_PRODUCER_EPOCH
    assert send(log, 1, 1, 3)[1] == ErrorCode.INVALID_PRODUCER_EPOCH
    # A newer epoch must start at sequence 0.
    assert send(log, 1, 3, 3)[1] == OOO
    log, v = send(log, 1, 3, 0, 2)
    assert v == Append()
    # The old epoch is fenced now, and its batches are no longer duplicates.
    assert send(log, 1, 2, 0, 3)[1] == ErrorCode.INVALID_PRODUCER_EPOCH
    assert send(log, 1, 2, 3)[1] == ErrorCode.INVALID_PRODUCER_EPOCH
    assert send(log, 1, 3, 0, 2)[1] == Duplicate(3, 4)
    assert send(log, 1, 3, 2)[1] == Append()
    # Other producers are unaffected.
    assert send(log, 2, 0, 0)[1] == Append()


def test_sequences_wrap_at_int32_max() -> None:
    assert increment_sequence(MAX_SEQUENCE, 1) == 0
    assert increment_sequence(MAX_SEQUENCE - 1, 3) == 1
    log, v = send(Log(), 1, 0, MAX_SEQUENCE - 1, 3)  # MAX-1, MAX, 0
    assert v == Append()
    assert [r.sequence for r in log.records] == [MAX_SEQUENCE - 1, MAX_SEQUENCE, 0]
    assert log_batches(log) == (ProducerBatch(1, 0, MAX_SEQUENCE - 1, 0, 0, 2),)
    assert send(log, 1, 0, MAX_SEQUENCE - 1, 3)[1] == Duplicate(0, 2)
    assert send(log, 1, 0, 2)[1] == OOO
    log, v = send(log, 1, 0, 1, 2)
    assert v == Append()
    # A batch ending exactly at MAX is followed by 0.
    log2, _ = send(Log(), 4, 0, MAX_SEQUENCE - 1, 2)
    assert send(log2, 4, 0, 0)[1] == Append()
    assert send(log2, 4, 0, MAX_SEQUENCE)[1] == OOO


def test_invalid_batches_and_non_idempotent_producers() -> None:
    log, _ = send(Log(), 1, 0, 0)
    assert check_sequence(log, 1, 0, -5, 1) == ErrorCode.INVALID_RECORD
    assert check_sequence(log, 1, 0, 1, 0) == ErrorCode.INVALID_RECORD
    assert check_sequence(log, -1, -1, -1, 3) == Append()


def test_batch_bounds_come_from_the_batch_header() -> None:
    log, _ = send(Log(), 1, 0, 0, 2)
    log, _ = send(log, 1, 0, 2, 2)
    assert [(b.base_sequence, b.last_sequence) for b in log_batches(log)] == [(0, 1), (2, 3)]
    # Plain records of one producer with consecutive sequences read as one batch.
    plain_log = Log()
    for seq in range(4):
        plain_log = plain_log.append(Record(b"v", producer_id=1, producer_epoch=0, sequence=seq))
    assert log_batches(plain_log) == (ProducerBatch(1, 0, 0, 3, 0, 3),)


def test_retention_keeps_producer_state_through_a_snapshot() -> None:
    log, _ = send(Log(), 1, 0, 0, 2)  # offsets 0-1
    log, _ = send(log, 1, 0, 2, 3)  # offsets 2-4
    log = plain(plain(log))  # offsets 5-6
    # Deleting up to offset 3 cuts the second batch: the snapshot takes it whole.
    snap = take_snapshot(EMPTY_SNAPSHOT, log, 3)
    assert snap.offset == 5
    trimmed = log.delete_prefix(3)
    assert producer_state(snap, trimmed) == producer_state(EMPTY_SNAPSHOT, log)
    assert check_sequence(trimmed, 1, 0, 2, 3, snapshot=snap) == Duplicate(2, 4)
    assert check_sequence(trimmed, 1, 0, 5, 1, snapshot=snap) == Append()
    assert check_sequence(trimmed, 1, 0, 6, 1, snapshot=snap) == OOO
    # Without a snapshot the producer is forgotten: a retry would be appended again.
    gone = log.delete_prefix(5)
    assert producer_state(EMPTY_SNAPSHOT, gone) == NO_PRODUCERS
    assert check_sequence(gone, 1, 0, 2, 3) == Append()


def test_a_snapshot_beyond_a_truncated_log_is_discarded() -> None:
    log, _ = send(Log(), 1, 0, 0, 2)
    log, _ = send(log, 1, 0, 2, 2)
    snap = take_snapshot(EMPTY_SNAPSHOT, log, log.end_offset)
    assert snap.offset == 4
    short = log.truncate_to(2)
    assert producer_state(snap, short) == producer_state(EMPTY_SNAPSHOT, short)
    assert check_sequence(short, 1, 0, 2, 2, snapshot=snap) == Append()


def test_the_persisted_snapshot_keeps_only_the_last_batch() -> None:
    log = Log()
    for i in range(3):
        log, _ = send(log, 1, 0, i)
    snap = take_snapshot(EMPTY_SNAPSHOT, log, log.end_offset)
    assert snap.producers[1].batches == tuple(BatchMetadata(i, i, i, i) for i in range(3))
    assert snap.persisted().producers[1] == ProducerStateEntry(0, (BatchMetadata(2, 2, 2, 2),))
    empty = log.delete_prefix(log.end_offset)
    assert check_sequence(empty, 1, 0, 1, 1, snapshot=snap) == Duplicate(1, 1)
    assert check_sequence(empty, 1, 0, 1, 1, snapshot=snap.persisted()) == OOO


def test_init_producer_id_allocates_fresh_ids_at_epoch_zero() -> None:
    state = ProducerIdState()
    got = []
    for _ in range(3):
        state, pid, epoch = init_producer_id(state)
        got.append((pid, epoch))
    assert got == [(0, 0), (1, 0), (2, 0)]
    assert state == ProducerIdState(3)
    assert init_producer_id(ProducerIdState(1000))[:2] == (ProducerIdState(1001), 1000)


# --- Random histories: the broker's verdicts against a producer's own bookkeeping. ---


@attrs.define
class Client:
    """What a producer knows: its epoch, next sequence and the offsets of its batches."""

    epoch: int = 0
    next_seq: int = 0
    sent: list[tuple[int, int, int, int]] = attrs.Factory(list)  # (seq, count, base, last)
    known: bool = False  # the broker has appended a batch of this epoch


OPS = ["next"] * 4 + ["retry"] * 3 + ["bump", "stale", "gap", "plain", "retain"]


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_random_histories(data: st.DataObject) -> None:
    start_seq = data.draw(st.sampled_from([0, 17, MAX_SEQUENCE - 4]))
    clients = {pid: Client(next_seq=start_seq) for pid in (1, 2)}
    full = log = Log()  # full never loses its prefix
    snap = EMPTY_SNAPSHOT
    incremental: ProducerStates = NO_PRODUCERS
    for _ in range(data.draw(st.integers(1, 60))):
        pid = data.draw(st.sampled_from(sorted(clients)))
        c = clients[pid]
        op = data.draw(st.sampled_from(OPS))
        if op == "plain":
            log, full = plain(log), plain(full)
        elif op == "retain":
            cut = data.draw(st.integers(log.start_offset, log.end_offset))
            snap = take_snapshot(snap, log, cut)
            log = log.delete_prefix(cut)
        elif op == "bump":
            c.epoch, c.next_seq, c.sent, c.known = c.epoch + 1, 0, [], False
        elif op == "next":
            count = data.draw(st.integers(1, 3))
            base = log.end_offset
            log, verdict = send(log, pid, c.epoch, c.next_seq, count, snapshot=snap)
            assert verdict == Append()
            full, _ = send(full, pid, c.epoch, c.next_seq, count)
            batch = ProducerBatch(
                pid,
                c.epoch,
                c.next_seq,
                increment_sequence(c.next_seq, count - 1),
                base,
                base + count - 1,
            )
            incremental = append_batch(incremental, batch)
            c.sent.append((c.next_seq, count, base, base + count - 1))
            c.next_seq = increment_sequence(c.next_seq, count)
            c.known = True
        elif op == "retry" and c.sent:
            i = data.draw(st.integers(max(0, len(c.sent) - 7), len(c.sent) - 1))
            seq, count, base, last = c.sent[i]
            verdict = check_sequence(log, pid, c.epoch, seq, count, snapshot=snap)
            if i >= len(c.sent) - KAFKA_BATCHES_RETAINED:
                assert verdict == Duplicate(base, last)
                assert [r.sequence for r in full.read(base, last + 1)] == [
                    increment_sequence(seq, k) for k in range(count)
                ]
            else:
                assert verdict == OOO
        elif op == "stale" and c.known and c.epoch > 0:
            verdict = check_sequence(log, pid, c.epoch - 1, c.next_seq, 1, snapshot=snap)
            assert verdict == ErrorCode.INVALID_PRODUCER_EPOCH
        elif op == "gap" and c.known:
            skip = data.draw(st.integers(1, 5))
            gap_seq = increment_sequence(c.next_seq, skip)
            assert check_sequence(log, pid, c.epoch, gap_seq, 1, snapshot=snap) == OOO
        # Derived from (snapshot, log) and from the whole log: the incremental state.
        assert producer_state(snap, log) == incremental
        assert producer_state(EMPTY_SNAPSHOT, full) == incremental
