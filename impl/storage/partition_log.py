"""One partition's log on disk: segments, roll, retention, recovery, truncation, reads.

The directory holds the segments (``<base offset>.log`` / ``.index``), the
``leader-epoch-checkpoint``, and the ``log-start-offset-checkpoint`` and
``recovery-point-offset-checkpoint`` files (see ``checkpoint``).

Recovery on open: the segments that may hold offsets at or above the recovery point
(always at least the last one) have every batch CRC-checked; the log is cut after the
last good batch (later segments are deleted), their index is rebuilt, the leader-epoch
cache is re-derived from the recovered batches and truncated to the log, and the
idempotent producers' state is rebuilt from every batch header.  The recovery point
advances when the log is flushed (``flush``, ``close``, or every append with
``flush_every_append``); otherwise flushing is left to the OS page cache, as Kafka does.
"""

from __future__ import annotations

import bisect
import os
import shutil
import time
from collections.abc import Callable

import attrs

from impl import mutants
from impl.storage import checkpoint
from impl.storage.config import LogConfig
from impl.storage.epoch_cache import LeaderEpochCache
from impl.storage.errors import (
    CorruptRecordError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    StorageError,
)
from impl.storage.producer_state import Duplicate, ProducerStateManager
from impl.storage.segment import INDEX_SUFFIX, LOG_SUFFIX, Segment, delete_files
from impl.wire.records import (
    GZIP,
    NONE,
    BatchHeader,
    CorruptBatchError,
    crc_ok,
    decode_records,
    iter_batches,
    parse_header,
)
from spec.errors import ErrorCode

MAX_RELATIVE_OFFSET = (1 << 31) - 1


@attrs.frozen(slots=True)
class AppendInfo:
    """Where an append went: the batch's offsets, the log start offset after it, whether
    it was a duplicate of an earlier batch (then nothing was appended and the offsets are
    the original ones), and the batch's max timestamp."""

    base_offset: int
    last_offset: int
    log_start_offset: int
    duplicate: bool = False
    max_timestamp: int = -1


@attrs.frozen(slots=True)
class TimestampOffset:
    """The answer to a ListOffsets by timestamp: the first record at or after it."""

    timestamp: int
    offset: int
    leader_epoch: int


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class PartitionLog:
    """A partition's log.  Use ``PartitionLog.open``."""

    def __init__(self, directory: str, config: LogConfig) -> None:
        self.directory = directory
        self.config = config
        self.segments: list[Segment] = []
        self._bases: list[int] = []
        self.start_offset = 0
        self.recovery_point = 0
        self.epoch_cache = LeaderEpochCache(
            os.path.join(directory, checkpoint.LEADER_EPOCH_CHECKPOINT)
        )
        self.producer_state = ProducerStateManager()

    # --- opening and recovery ---------------------------------------------------------

    @classmethod
    def open(cls, directory: str, config: LogConfig, now_ms: int) -> PartitionLog:
        """Open (or create) the log in ``directory``, recovering it (module doc)."""
        os.makedirs(directory, exist_ok=True)
        log = cls(directory, config)
        names = os.listdir(directory)
        bases = sorted(
            int(n[: -len(LOG_SUFFIX)])
            for n in names
            if n.endswith(LOG_SUFFIX) and n[: -len(LOG_SUFFIX)].isdigit()
        )
        for n in names:  # an index without its segment, a checkpoint's leftover temp file
            stem = n[: -len(INDEX_SUFFIX)]
            if (n.endswith(INDEX_SUFFIX) and (not stem.isdigit() or int(stem) not in bases)) or (
                n.endswith(".tmp")
            ):
                os.remove(os.path.join(directory, n))
        saved_start = checkpoint.read_offset(log._path(checkpoint.LOG_START_OFFSET_CHECKPOINT))
        recovery_point = checkpoint.read_offset(log._path(checkpoint.RECOVERY_POINT_CHECKPOINT))
        log.recovery_point = recovery_point or 0
        log.epoch_cache = LeaderEpochCache.load(log.epoch_cache.path)

        recovered: list[Segment] = []
        cut_at: int | None = None
        for k, base in enumerate(bases):
            if cut_at is not None:  # after a torn segment nothing is trusted
                delete_files(directory, base)
                continue
            check = k == len(bases) - 1 or bases[k + 1] > log.recovery_point
            if check and not recovered:
                # The cache's entries from here on are derived again from the batches.
                log.epoch_cache.truncate_from_end(base)
            seg, cut = Segment.load(
                directory,
                base,
                config.index_interval_bytes,
                now_ms,
                check_crc=check,
                visit=log._recovered_batch if check else log.producer_state.update,
            )
            log.segments.append(seg)
            if check:
                recovered.append(seg)
            if cut:
                cut_at = seg.next_offset
        if not log.segments:
            base = saved_start or 0
            log.segments.append(
                Segment.create(directory, base, config.index_interval_bytes, now_ms)
            )
        log._bases = [s.base_offset for s in log.segments]

        log.start_offset = max(saved_start or 0, log.segments[0].base_offset)
        if log.start_offset > log.end_offset:
            log.truncate_fully_and_start_at(log.start_offset, now_ms)
        elif saved_start != log.start_offset:
            log._checkpoint_start_offset()
        log.epoch_cache.truncate_from_end(log.end_offset)
        log.epoch_cache.truncate_from_start(log.start_offset)
        for seg in recovered:
            if seg in log.segments:
                seg.flush()
        log.recovery_point = log.end_offset
        checkpoint.write_offset(log._path(checkpoint.RECOVERY_POINT_CHECKPOINT), log.recovery_point)
        if mutants.active(mutants.LOSE_TAIL_ON_RESTART):
            log.truncate_to(max((b for s in log.segments for b in s.bases), default=log.end_offset))
        return log

    def _recovered_batch(self, header: BatchHeader) -> None:
        self.producer_state.update(header)
        # As Kafka's LogSegment.recover: only an epoch newer than the cache's latest.
        if header.partition_leader_epoch > self.epoch_cache.latest_epoch:
            self.epoch_cache.assign(header.partition_leader_epoch, header.base_offset)

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _checkpoint_start_offset(self) -> None:
        checkpoint.write_offset(
            self._path(checkpoint.LOG_START_OFFSET_CHECKPOINT), self.start_offset
        )

    # --- state ------------------------------------------------------------------------

    @property
    def end_offset(self) -> int:
        """The log end offset (LEO): the offset the next batch gets."""
        return self.segments[-1].next_offset

    @property
    def active_segment(self) -> Segment:
        return self.segments[-1]

    @property
    def size(self) -> int:
        """The bytes of all segments."""
        return sum(s.size for s in self.segments)

    @property
    def latest_epoch(self) -> int:
        return self.epoch_cache.latest_epoch

    # --- appends ------------------------------------------------------------------------

    def append(
        self,
        batch: bytes | bytearray | memoryview,
        leader_epoch: int,
        now_ms: int,
        header: BatchHeader | None = None,
    ) -> AppendInfo:
        """Append one producer batch as the leader: validate it (whole, CRC, size), run the
        idempotence check (a duplicate appends nothing and returns the original offsets;
        a rejected batch raises StorageError with its code), give it the next offsets and
        ``leader_epoch``, roll if due, and write it with one write call.  ``batch`` is
        not changed nor copied: its offsets and leader epoch are patched as it is written
        (``Segment.append_batch``).  ``header`` is ``parse_header(batch)`` when the
        caller has it already."""
        if header is not None:
            h = header
        else:
            try:
                h = parse_header(batch)
            except CorruptBatchError as e:
                raise CorruptRecordError(str(e)) from None
        if h.size != len(batch):
            raise CorruptRecordError(f"{len(batch) - h.size} bytes after the record batch")
        if h.size > self.config.message_max_bytes and not mutants.active(
            mutants.MESSAGE_TOO_LARGE_ACCEPTED
        ):
            raise RecordTooLargeError(
                f"batch of {h.size} bytes exceeds max.message.bytes {self.config.message_max_bytes}"
            )
        if h.size > self.config.segment_bytes:
            raise StorageError(
                f"batch of {h.size} bytes exceeds segment.bytes", ErrorCode.RECORD_LIST_TOO_LARGE
            )
        if not crc_ok(batch, 0, h) and not mutants.active(mutants.CRC_NOT_CHECKED):
            raise CorruptRecordError("record batch CRC mismatch")
        verdict = self.producer_state.check(h)
        if isinstance(verdict, Duplicate):
            return AppendInfo(
                verdict.base_offset, verdict.last_offset, self.start_offset, True, h.max_timestamp
            )
        if isinstance(verdict, ErrorCode):
            raise StorageError(f"producer {h.producer_id} batch rejected: {verdict.name}", verdict)
        base = self.end_offset
        last = base + h.last_offset_delta
        self._maybe_roll(h.size, h.max_timestamp, last, now_ms)
        self.epoch_cache.assign(leader_epoch, base)
        self.active_segment.append_batch(batch, base, last, leader_epoch, h.max_timestamp)
        if h.producer_id >= 0:
            self.producer_state.update(h, base)
        if self.config.flush_every_append:
            self.active_segment.flush()
            self.recovery_point = self.end_offset
        return AppendInfo(base, last, self.start_offset, False, h.max_timestamp)

    def append_replicated(
        self, batches: bytes | bytearray | memoryview, now_ms: int
    ) -> AppendInfo | None:
        """Append batches fetched from the leader, offsets and epochs kept (follower path).
        Each batch is CRC-checked; the first must start at or after the LEO and offsets
        must increase.  Returns None when ``batches`` is empty."""
        try:
            headers = [h for _, h in iter_batches(batches)]
        except CorruptBatchError as e:
            raise CorruptRecordError(str(e)) from None
        if not headers:
            return None
        next_offset = self.end_offset
        for h in headers:
            if h.base_offset < next_offset:
                raise StorageError(
                    f"replicated batch at offset {h.base_offset} below {next_offset}",
                    ErrorCode.UNKNOWN_SERVER_ERROR,
                )
            next_offset = h.last_offset + 1
        total = len(batches)
        max_ts = max(h.max_timestamp for h in headers)
        self._maybe_roll(total, max_ts, headers[-1].last_offset, now_ms)
        for h in headers:
            self.epoch_cache.assign(h.partition_leader_epoch, h.base_offset)
        self.active_segment.append_batches(batches, headers)
        for h in headers:
            self.producer_state.update(h)
        if self.config.flush_every_append:
            self.active_segment.flush()
            self.recovery_point = self.end_offset
        return AppendInfo(
            headers[0].base_offset, headers[-1].last_offset, self.start_offset, False, max_ts
        )

    def _maybe_roll(self, size: int, max_timestamp: int, last_offset: int, now_ms: int) -> None:
        seg = self.active_segment
        if seg.size == 0:
            return
        first_ts = seg.first_batch_max_timestamp
        waited = max_timestamp - first_ts if first_ts >= 0 else now_ms - seg.created_ms
        if (
            seg.size > self.config.segment_bytes - size
            or waited > self.config.segment_ms
            or last_offset - seg.base_offset > MAX_RELATIVE_OFFSET
        ):
            self.roll(now_ms)

    def roll(self, now_ms: int) -> None:
        """Start a new active segment at the LEO (nothing to do if the active one is
        empty).  The old segment is not fsynced here; the recovery point stays behind it
        until the next flush, so recovery would check it."""
        if self.active_segment.size == 0:
            return
        seg = Segment.create(
            self.directory, self.end_offset, self.config.index_interval_bytes, now_ms
        )
        self.segments.append(seg)
        self._bases.append(seg.base_offset)

    # --- reads --------------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int, max_offset: int | None = None) -> bytes:
        """Whole batches from the one holding ``offset``, up to ``max_bytes`` but at least
        one batch, of those starting below ``max_offset`` (default: the LEO); empty at the
        LEO.  Raises OffsetOutOfRangeError below the log start offset or above the LEO."""
        end = self.end_offset
        if offset < self.start_offset or offset > end:
            raise OffsetOutOfRangeError(f"offset {offset} outside [{self.start_offset}, {end}]")
        if offset == end:
            return b""
        limit = end if max_offset is None else max_offset
        i = max(bisect.bisect_right(self._bases, offset) - 1, 0)
        for seg in self.segments[i:]:
            if seg.batch_at_or_after(offset) < seg.batch_count:
                return seg.read(offset, max_bytes, limit)
        return b""

    def offset_for_timestamp(self, timestamp: int) -> TimestampOffset | None:
        """The first record at or above the log start offset whose timestamp is at least
        ``timestamp`` (in the first batch whose max timestamp is): its timestamp, offset
        and the batch's leader epoch.  Batches this module cannot decompress answer with
        their base offset and max timestamp.  None when there is no such record."""
        for seg in self.segments:
            if seg.max_timestamp < timestamp:
                continue
            first = seg.batch_at_or_after(self.start_offset)
            for i in range(first, seg.batch_count):
                if seg.max_timestamps[i] >= timestamp:
                    return self._record_at_timestamp(seg.read_batch(i), timestamp)
        return None

    def _record_at_timestamp(self, batch: bytes, timestamp: int) -> TimestampOffset:
        h = parse_header(batch)
        if h.compression in (NONE, GZIP):
            try:
                for record in decode_records(batch):
                    if record.timestamp >= timestamp and record.offset >= self.start_offset:
                        return TimestampOffset(
                            record.timestamp, record.offset, h.partition_leader_epoch
                        )
            except CorruptBatchError:
                pass
        offset = max(h.base_offset, self.start_offset)
        return TimestampOffset(h.max_timestamp, offset, h.partition_leader_epoch)

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch: ``(epoch, end offset)`` (see ``LeaderEpochCache``)."""
        return self.epoch_cache.end_offset_for(epoch, self.end_offset)

    # --- truncation and retention ------------------------------------------------------

    def truncate_to(self, offset: int, now_ms: int | None = None) -> None:
        """Remove everything at or above ``offset`` (a batch holding it goes whole) and the
        leader-epoch entries starting there; at or past the LEO only the epoch entries
        starting at the LEO go.  Below the log start offset the log is emptied, keeping
        its start offset.  The producer state is rebuilt from what is left."""
        if offset >= self.end_offset:
            self.epoch_cache.truncate_from_end(self.end_offset)
            return
        if offset <= self.start_offset:
            self.truncate_fully_and_start_at(self.start_offset, now_ms)
            return
        while len(self.segments) > 1 and self.active_segment.base_offset >= offset:
            self.segments.pop().delete()
            self._bases.pop()
        self.active_segment.truncate_to(offset)
        self.epoch_cache.truncate_from_end(self.end_offset)
        self._rebuild_producer_state()
        self._lower_recovery_point()

    def truncate_fully_and_start_at(self, offset: int, now_ms: int | None = None) -> None:
        """Delete every segment and start an empty log at ``offset`` (a follower that fell
        below the leader's log start offset)."""
        for seg in self.segments:
            seg.delete()
        seg = Segment.create(
            self.directory,
            offset,
            self.config.index_interval_bytes,
            _now_ms() if now_ms is None else now_ms,
        )
        self.segments = [seg]
        self._bases = [offset]
        self.start_offset = offset
        self._checkpoint_start_offset()
        self.epoch_cache.clear()
        self.producer_state.clear()
        self._lower_recovery_point()

    def _lower_recovery_point(self) -> None:
        if self.recovery_point != self.end_offset:
            self.recovery_point = min(self.recovery_point, self.end_offset)
            checkpoint.write_offset(
                self._path(checkpoint.RECOVERY_POINT_CHECKPOINT), self.recovery_point
            )

    def _rebuild_producer_state(self) -> None:
        self.producer_state.clear()
        for seg in self.segments:
            for h in seg.headers():
                self.producer_state.update(h)

    def maybe_increment_log_start_offset(self, offset: int) -> bool:
        """Advance the log start offset to ``offset`` (not past the LEO, never back) and
        checkpoint it; the leader-epoch cache follows.  Returns whether it moved."""
        offset = min(offset, self.end_offset)
        if offset <= self.start_offset:
            return False
        self.start_offset = offset
        self._checkpoint_start_offset()
        self.epoch_cache.truncate_from_start(offset)
        return True

    def apply_retention(self, now_ms: int, high_watermark: int | None = None) -> int:
        """Delete old segments as Kafka's retention does, oldest first and only a prefix,
        never the active segment nor one holding offsets at or above ``high_watermark``:
        by time (its largest timestamp more than ``retention.ms`` before ``now_ms``), by
        size (while the log stays at least ``retention.bytes`` without the segment), and
        those wholly below the log start offset.  The log start offset advances to the
        first remaining segment.  Returns how many segments were deleted."""
        cfg = self.config
        deleted = 0
        if cfg.retention_ms >= 0:
            deleted += self._delete_prefix(
                lambda seg, _: now_ms - seg.largest_timestamp > cfg.retention_ms, high_watermark
            )
        if cfg.retention_bytes >= 0:
            diff = self.size - cfg.retention_bytes

            def over_size(seg: Segment, _: int) -> bool:
                nonlocal diff
                if diff - seg.size >= 0:
                    diff -= seg.size
                    return True
                return False

            if diff >= 0:
                deleted += self._delete_prefix(over_size, high_watermark)
        deleted += self._delete_prefix(
            lambda _, next_base: next_base <= self.start_offset, high_watermark
        )
        return deleted

    def _delete_prefix(
        self, predicate: Callable[[Segment, int], bool], high_watermark: int | None
    ) -> int:
        """Delete the longest prefix of non-active segments satisfying ``predicate``
        (given the segment and the next segment's base offset)."""
        count = 0
        while count < len(self.segments) - 1:
            next_base = self.segments[count + 1].base_offset
            if high_watermark is not None and next_base > high_watermark:
                break
            if not predicate(self.segments[count], next_base):
                break
            count += 1
        if count == 0:
            return 0
        doomed, self.segments = self.segments[:count], self.segments[count:]
        self._bases = self._bases[count:]
        self.maybe_increment_log_start_offset(self.segments[0].base_offset)
        for seg in doomed:
            seg.delete()
        return count

    # --- durability -------------------------------------------------------------------

    def flush(self) -> None:
        """fsync every segment holding offsets at or above the recovery point, then move
        the recovery point to the LEO and checkpoint it."""
        for seg in self.segments:
            if seg.next_offset > self.recovery_point or seg is self.active_segment:
                seg.flush()
        self.recovery_point = self.end_offset
        checkpoint.write_offset(
            self._path(checkpoint.RECOVERY_POINT_CHECKPOINT), self.recovery_point
        )

    def close(self) -> None:
        """Flush and close the files."""
        self.flush()
        for seg in self.segments:
            seg.close()

    def delete(self) -> None:
        """Close the files and remove the directory."""
        for seg in self.segments:
            seg.close()
        shutil.rmtree(self.directory, ignore_errors=True)
