"""spec/log.py: offsets, the leader-epoch cache (Kafka's leader-epoch-checkpoint), truncation,
retention (delete_prefix), OffsetForLeaderEpoch answers (KIP-101, KIP-279), flush and the
recovery point."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from spec.log import UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET, EpochEntry, Log, Record

UNDEFINED = (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)


def rec(value: str, epoch: int) -> Record:
    return Record(value.encode(), leader_epoch=epoch)


def build(*epochs: int, start: int = 0) -> Log:
    """A log (from offset ``start``) with one record per entry, written in the given epochs."""
    log = Log(start_offset=start, recovery_point=start)
    for i, e in enumerate(epochs):
        log = log.append(rec(f"v{start + i}", e))
    return log


# A log whose cache is [(0, 0), (2, 3), (5, 6)], offsets 0..7.
THREE_EPOCHS = build(0, 0, 0, 2, 2, 2, 5, 5)


# --- append and the epoch cache --------------------------------------------------------


def test_append_assigns_contiguous_offsets() -> None:
    log = Log()
    assert log.end_offset == 0
    for i in range(4):
        log = log.append(rec(f"v{i}", 0))
        assert log.end_offset == i + 1
        assert log.record_at(i) == rec(f"v{i}", 0)
    assert log.record_at(4) is None
    assert log.record_at(-1) is None
    assert log.read(1, 3) == (rec("v1", 0), rec("v2", 0))


def test_append_starts_an_epoch_entry_only_for_a_new_epoch() -> None:
    assert build(0).epochs == (EpochEntry(0, 0),)
    assert build(0, 0, 0).epochs == (EpochEntry(0, 0),)
    assert THREE_EPOCHS.epochs == (EpochEntry(0, 0), EpochEntry(2, 3), EpochEntry(5, 6))
    assert THREE_EPOCHS.latest_epoch == 5
    assert Log().latest_epoch == UNDEFINED_EPOCH


def test_append_at_an_older_epoch_adds_no_entry() -> None:
    log = build(3).append(rec("old", 1))
    assert log.epochs == (EpochEntry(3, 0),)
    assert log.end_offset == 2


def test_read_clips_to_the_log() -> None:
    log = build(0, 0, 0, start=5)
    assert log.read(0, 100) == log.records
    assert log.read(6, 7) == (log.records[1],)
    assert log.read(7, 6) == ()
    assert log.read(8, 10) == ()
    assert log.record_at(4) is None
    assert log.record_at(5) == rec("v5", 0)


def test_assign_epoch_starts_the_epoch_at_the_log_end() -> None:
    log = build(0, 0).assign_epoch(3)
    assert log.epochs == (EpochEntry(0, 0), EpochEntry(3, 2))
    assert log.latest_epoch == 3
    assert log.end_offset == 2  # no record written
    # Records written in the epoch do not add another entry.
    log = log.append(rec("x", 3))
    assert log.epochs == (EpochEntry(0, 0), EpochEntry(3, 2))


def test_assign_epoch_ignores_an_epoch_not_above_the_latest() -> None:
    log = build(0, 2)
    assert log.assign_epoch(2) is log
    assert log.assign_epoch(1) is log


def test_assign_epoch_replaces_an_empty_epoch_at_the_log_end() -> None:
    # A leader that wrote nothing in epoch 3 and leads again in epoch 4: epoch 3 started at
    # the LEO and covers no record; Kafka's cache assign() removes it.
    log = build(0, 0).assign_epoch(3).assign_epoch(4)
    assert log.epochs == (EpochEntry(0, 0), EpochEntry(4, 2))


def test_assign_epoch_on_an_empty_log() -> None:
    assert Log().assign_epoch(0).epochs == (EpochEntry(0, 0),)
    assert Log(start_offset=7, recovery_point=7).assign_epoch(2).epochs == (EpochEntry(2, 7),)


# --- truncate_to ---------------------------------------------------------------------


def test_truncate_to_removes_the_suffix_and_its_epochs() -> None:
    log = THREE_EPOCHS.truncate_to(4)
    assert log.end_offset == 4
    assert log.records == THREE_EPOCHS.records[:4]
    assert log.epochs == (EpochEntry(0, 0), EpochEntry(2, 3))
    # Truncating exactly to an epoch's start removes that epoch.
    log = THREE_EPOCHS.truncate_to(6)
    assert log.epochs == (EpochEntry(0, 0), EpochEntry(2, 3))
    log = THREE_EPOCHS.truncate_to(3)
    assert log.epochs == (EpochEntry(0, 0),)
    assert log.latest_epoch == 0


def test_truncate_to_at_or_past_the_end_keeps_every_record() -> None:
    assert THREE_EPOCHS.truncate_to(8) == THREE_EPOCHS
    assert THREE_EPOCHS.truncate_to(100) == THREE_EPOCHS


def test_truncate_to_the_end_drops_an_empty_trailing_epoch() -> None:
    log = build(0, 0).assign_epoch(2)  # led in epoch 2, wrote nothing
    assert log.truncate_to(log.end_offset).epochs == (EpochEntry(0, 0),)


def test_truncate_to_lowers_the_recovery_point() -> None:
    log = THREE_EPOCHS.flush()
    assert log.truncate_to(5).recovery_point == 5
    unflushed = THREE_EPOCHS  # recovery point 0
    assert unflushed.truncate_to(5).recovery_point == 0


def test_truncate_to_the_start_empties_the_log_but_keeps_the_start_offset() -> None:
    log = build(1, 1, 2, start=10)
    for cut in (10, 3):
        empty = log.truncate_to(cut)
        assert empty.start_offset == 10
        assert empty.end_offset == 10
        assert empty.records == ()
        assert empty.epochs == ()


# --- delete_prefix (retention) -------------------------------------------------------


def test_delete_prefix_advances_the_start_offset_without_reusing_offsets() -> None:
    log = THREE_EPOCHS.delete_prefix(4)
    assert log.start_offset == 4
    assert log.end_offset == 8
    assert log.record_at(3) is None
    assert log.record_at(4) == THREE_EPOCHS.record_at(4)
    assert log.read(0, 8) == THREE_EPOCHS.records[4:]
    # The next append still gets offset 8.
    assert log.append(rec("next", 5)).record_at(8) == rec("next", 5)


def test_delete_prefix_keeps_the_entry_covering_the_new_start() -> None:
    # Kafka's truncateFromStart: the last entry at or below the new start moves up to it.
    assert THREE_EPOCHS.delete_prefix(4).epochs == (EpochEntry(2, 4), EpochEntry(5, 6))
    assert THREE_EPOCHS.delete_prefix(3).epochs == (EpochEntry(2, 3), EpochEntry(5, 6))
    assert THREE_EPOCHS.delete_prefix(1).epochs == (
        EpochEntry(0, 1),
        EpochEntry(2, 3),
        EpochEntry(5, 6),
    )
    assert THREE_EPOCHS.delete_prefix(7).epochs == (EpochEntry(5, 7),)


def test_delete_prefix_of_everything_keeps_the_latest_epoch() -> None:
    log = THREE_EPOCHS.delete_prefix(8)
    assert log.start_offset == log.end_offset == 8
    assert log.records == ()
    assert log.epochs == (EpochEntry(5, 8),)
    assert log.latest_epoch == 5


def test_delete_prefix_never_passes_the_log_end_nor_goes_back() -> None:
    assert THREE_EPOCHS.delete_prefix(50).start_offset == 8
    log = THREE_EPOCHS.delete_prefix(4)
    assert log.delete_prefix(2) is log
    assert log.delete_prefix(4) is log


def test_delete_prefix_raises_the_recovery_point_to_the_start() -> None:
    assert THREE_EPOCHS.delete_prefix(5).recovery_point == 5
    flushed = THREE_EPOCHS.flush()
    assert flushed.delete_prefix(5).recovery_point == 8


def test_end_offset_for_epoch_after_delete_prefix() -> None:
    log = THREE_EPOCHS.delete_prefix(4)
    assert log.end_offset_for_epoch(2) == (2, 6)
    # Epoch 0 is gone from the cache: it is below every known epoch.
    assert log.end_offset_for_epoch(0) == (0, 4)


# --- flush and recovery point ----------------------------------------------------------


def test_flush_moves_the_recovery_point_to_the_log_end() -> None:
    log = build(0, 0, 1)
    assert log.recovery_point == 0
    flushed = log.flush()
    assert flushed.recovery_point == 3
    assert flushed.records == log.records
    # Appending after a flush leaves the new records above the recovery point.
    more = flushed.append(rec("x", 1))
    assert more.recovery_point == 3
    # A power loss keeps only what was flushed.
    assert more.truncate_to(more.recovery_point).records == log.records


# --- end_offset_for_epoch (OffsetForLeaderEpoch, KIP-101 and KIP-279) -----------------


def test_end_offset_for_the_latest_epoch_is_the_log_end() -> None:
    assert THREE_EPOCHS.end_offset_for_epoch(5) == (5, 8)
    # Also when the latest epoch has no record yet (a new leader).
    log = build(0, 0).assign_epoch(4)
    assert log.end_offset_for_epoch(4) == (4, 2)


def test_end_offset_for_an_earlier_epoch_is_the_next_epochs_start() -> None:
    assert THREE_EPOCHS.end_offset_for_epoch(0) == (0, 3)
    assert THREE_EPOCHS.end_offset_for_epoch(2) == (2, 6)


def test_an_epoch_missing_from_the_cache_answers_the_largest_epoch_below_it() -> None:
    # KIP-279: the leader answers with the epoch it actually has, so that the follower can
    # see that it diverged.
    assert THREE_EPOCHS.end_offset_for_epoch(1) == (0, 3)
    assert THREE_EPOCHS.end_offset_for_epoch(3) == (2, 6)
    assert THREE_EPOCHS.end_offset_for_epoch(4) == (2, 6)


def test_an_epoch_below_every_cached_epoch_answers_itself_and_the_first_start() -> None:
    log = build(3, 3, 6, start=10)
    assert log.end_offset_for_epoch(1) == (1, 10)


def test_unknown_epochs_are_undefined() -> None:
    assert THREE_EPOCHS.end_offset_for_epoch(UNDEFINED_EPOCH) == UNDEFINED
    assert THREE_EPOCHS.end_offset_for_epoch(6) == UNDEFINED
    assert THREE_EPOCHS.end_offset_for_epoch(99) == UNDEFINED
    assert Log().end_offset_for_epoch(0) == UNDEFINED
    # A log whose records carry no epoch information (an empty cache).
    assert Log(records=(rec("a", 0),)).end_offset_for_epoch(0) == UNDEFINED


# --- properties ------------------------------------------------------------------------

epoch_steps = st.lists(st.integers(0, 2), min_size=0, max_size=12)


def log_from(increments: list[int], start: int) -> Log:
    log = Log(start_offset=start, recovery_point=start)
    epoch = 0
    for inc in increments:
        epoch += inc
        log = log.append(rec(str(log.end_offset), epoch))
    return log


def cache_is_well_formed(log: Log) -> bool:
    starts = [e.start_offset for e in log.epochs]
    epochs = [e.epoch for e in log.epochs]
    return (
        starts == sorted(starts)
        and epochs == sorted(set(epochs))
        and all(log.start_offset <= x <= log.end_offset for x in starts)
    )


def epoch_at(log: Log, offset: int) -> int:
    """The epoch the cache says ``offset`` was written in."""
    return max(e.epoch for e in log.epochs if e.start_offset <= offset)


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(epoch_steps, st.integers(0, 5), st.integers(0, 20), st.integers(0, 20))
def test_cache_describes_each_records_epoch(
    increments: list[int], start: int, cut: int, retain: int
) -> None:
    log = log_from(increments, start)
    for candidate in (log, log.truncate_to(start + cut), log.delete_prefix(start + retain)):
        assert cache_is_well_formed(candidate)
        assert candidate.end_offset == candidate.start_offset + len(candidate.records)
        for offset in range(candidate.start_offset, candidate.end_offset):
            record = candidate.record_at(offset)
            assert record is not None
            assert epoch_at(candidate, offset) == record.leader_epoch
            # The record's epoch ends after it.
            epoch, end = candidate.end_offset_for_epoch(record.leader_epoch)
            assert epoch == record.leader_epoch
            assert end > offset


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(epoch_steps, st.integers(0, 20), st.integers(0, 20))
def test_truncate_and_delete_prefix_keep_the_surviving_records_at_their_offsets(
    increments: list[int], cut: int, retain: int
) -> None:
    log = log_from(increments, 0)
    truncated = log.truncate_to(cut)
    assert truncated.end_offset == min(cut, log.end_offset)
    assert truncated.records == log.records[: truncated.end_offset]
    retained = log.delete_prefix(retain)
    assert retained.start_offset == min(retain, log.end_offset)
    assert retained.end_offset == log.end_offset
    for offset in range(retained.start_offset, retained.end_offset):
        assert retained.record_at(offset) == log.record_at(offset)
