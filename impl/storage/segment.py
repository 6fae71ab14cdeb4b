"""One log segment: ``<base offset, 20 digits>.log`` holding whole record batches, and its
sparse ``.index``.

Besides the on-disk index, the segment keeps in memory, per batch, its base and last
offset, byte position and max timestamp (compact arrays, searched by bisection), so a
read is one ``pread`` spanning whole batches.
"""

from __future__ import annotations

import bisect
import mmap
import os
import struct
from array import array
from collections.abc import Callable, Iterator

from impl.storage.index import OffsetIndex
from impl.wire.records import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    BatchHeader,
    CorruptBatchError,
    crc_ok,
    parse_header,
)

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
_HEADER = struct.Struct(">qiibIhiqqqhii")  # the batch header (records.py's layout)
_BATCH_START = struct.Struct(">qii")  # base offset, batch length, partition leader epoch

Buffer = bytes | bytearray | memoryview


def file_name(directory: str, base_offset: int, suffix: str) -> str:
    """``<dir>/<base offset as 20 digits><suffix>``, as Kafka names segment files."""
    return os.path.join(directory, f"{base_offset:020d}{suffix}")


def delete_files(directory: str, base_offset: int) -> None:
    """Remove the files of the segment at ``base_offset`` (those that exist)."""
    for suffix in (LOG_SUFFIX, INDEX_SUFFIX):
        path = file_name(directory, base_offset, suffix)
        if os.path.exists(path):
            os.remove(path)


class Segment:
    """A segment of a partition log, open for reading and (when active) appending."""

    def __init__(
        self, directory: str, base_offset: int, index_interval_bytes: int, now_ms: int
    ) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.index_interval_bytes = index_interval_bytes
        self.created_ms = now_ms
        self.log_path = file_name(directory, base_offset, LOG_SUFFIX)
        self.index_path = file_name(directory, base_offset, INDEX_SUFFIX)
        self._fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT, 0o644)
        self.size = 0
        self.bases = array("q")
        self.lasts = array("q")
        self.positions = array("q")
        self.max_timestamps = array("q")
        self.max_timestamp = -1
        self.bytes_since_index_entry = 0
        self.index: OffsetIndex

    # --- creation and loading -----------------------------------------------------------

    @classmethod
    def create(
        cls, directory: str, base_offset: int, index_interval_bytes: int, now_ms: int
    ) -> Segment:
        """A new empty segment (existing files of that base offset are emptied)."""
        seg = cls(directory, base_offset, index_interval_bytes, now_ms)
        os.ftruncate(seg._fd, 0)
        seg.index = OffsetIndex(seg.index_path, base_offset)
        seg.index.truncate_entries(0)
        return seg

    @classmethod
    def load(
        cls,
        directory: str,
        base_offset: int,
        index_interval_bytes: int,
        now_ms: int,
        *,
        check_crc: bool,
        visit: Callable[[BatchHeader], None] | None = None,
    ) -> tuple[Segment, int]:
        """Open an existing segment, reading every batch header (and with ``check_crc``
        every CRC: recovery).  The file is truncated after the last whole, well-formed
        batch (and, with ``check_crc``, CRC-valid).  Returns the segment and how many
        bytes were truncated.  ``visit`` sees each kept batch's header in order."""
        seg = cls(directory, base_offset, index_interval_bytes, now_ms)
        file_size = os.fstat(seg._fd).st_size
        valid = seg._scan(file_size, check_crc, visit)
        truncated = file_size - valid
        if truncated:
            os.ftruncate(seg._fd, valid)
        seg.size = valid
        last = seg.lasts[-1] if seg.lasts else base_offset - 1
        seg.index = OffsetIndex.open(seg.index_path, base_offset, valid, last)
        if check_crc or truncated or (not seg.index.offsets and valid > index_interval_bytes):
            seg._rebuild_index()
        else:
            tail_start = seg.index.positions[-1] if seg.index.positions else 0
            seg.bytes_since_index_entry = valid - tail_start
        return seg, truncated

    def _scan(
        self, file_size: int, check_crc: bool, visit: Callable[[BatchHeader], None] | None
    ) -> int:
        if file_size == 0:
            return 0
        mm = mmap.mmap(self._fd, file_size, access=mmap.ACCESS_READ)
        view = memoryview(mm)
        try:
            pos = 0
            next_offset = self.base_offset
            while pos < file_size:
                try:
                    h = parse_header(view, pos)
                except CorruptBatchError:
                    break
                if h.base_offset < next_offset or (check_crc and not crc_ok(view, pos, h)):
                    break
                self._remember(h.base_offset, h.last_offset, pos, h.max_timestamp)
                if visit is not None:
                    visit(h)
                next_offset = h.last_offset + 1
                pos += h.size
            return pos
        finally:
            view.release()
            mm.close()

    def _remember(self, base: int, last: int, position: int, max_ts: int) -> None:
        self.bases.append(base)
        self.lasts.append(last)
        self.positions.append(position)
        self.max_timestamps.append(max_ts)
        self.max_timestamp = max(self.max_timestamp, max_ts)

    def _rebuild_index(self) -> None:
        self.index.truncate_entries(0)
        self.bytes_since_index_entry = 0
        for i, pos in enumerate(self.positions):
            if self.bytes_since_index_entry > self.index_interval_bytes:
                self.index.append(self.lasts[i], pos)
                self.bytes_since_index_entry = 0
            self.bytes_since_index_entry += self._end_of(i) - pos

    # --- queries ------------------------------------------------------------------------

    @property
    def next_offset(self) -> int:
        """The offset after the last batch (the base offset when empty)."""
        return self.lasts[-1] + 1 if self.lasts else self.base_offset

    @property
    def batch_count(self) -> int:
        return len(self.bases)

    @property
    def first_batch_max_timestamp(self) -> int:
        """The max timestamp of the first batch (Kafka's rolling-based timestamp), or -1."""
        return self.max_timestamps[0] if self.max_timestamps else -1

    @property
    def largest_timestamp(self) -> int:
        """The largest record timestamp, or the file's last modified time without one."""
        if self.max_timestamp >= 0:
            return self.max_timestamp
        return os.fstat(self._fd).st_mtime_ns // 1_000_000

    def _end_of(self, i: int) -> int:
        return self.positions[i + 1] if i + 1 < len(self.positions) else self.size

    def batch_at_or_after(self, offset: int) -> int:
        """The index of the first batch whose last offset is at least ``offset``
        (``batch_count`` when there is none)."""
        return bisect.bisect_left(self.lasts, offset)

    def read(self, offset: int, max_bytes: int, max_offset: int) -> bytes:
        """Whole batches from the one holding ``offset``, up to ``max_bytes`` (but at least
        one batch), of those with a base offset below ``max_offset``."""
        i = bisect.bisect_left(self.lasts, offset)
        n = len(self.positions)
        if i >= n or self.bases[i] >= max_offset:
            return b""
        j_max = bisect.bisect_left(self.bases, max_offset, i)
        start = self.positions[i]
        limit = start + max_bytes
        j = bisect.bisect_right(self.positions, limit, i)
        if j > i and self._end_of(j - 1) > limit:
            j -= 1
        j = max(min(j, j_max), i + 1)
        return os.pread(self._fd, self._end_of(j - 1) - start, start)

    def read_batch(self, i: int) -> bytes:
        """The bytes of batch number ``i``."""
        start = self.positions[i]
        return os.pread(self._fd, self._end_of(i) - start, start)

    def headers(self) -> Iterator[BatchHeader]:
        """Each batch's header, read from the file."""
        for pos in self.positions:
            yield BatchHeader(*_HEADER.unpack(os.pread(self._fd, HEADER_SIZE, pos)))

    # --- changes ------------------------------------------------------------------------

    def append_batch(
        self,
        batch: bytes | bytearray | memoryview,
        base_offset: int,
        last_offset: int,
        leader_epoch: int,
        max_timestamp: int,
    ) -> None:
        """Append one whole batch as offsets ``base_offset``..``last_offset`` of
        ``leader_epoch``: its first 16 bytes are written with that base offset and
        partition leader epoch (both before the CRC-covered part), the rest straight from
        ``batch``, which is neither changed nor copied.  One write call."""
        size = len(batch)
        head = _BATCH_START.pack(base_offset, size - LOG_OVERHEAD, leader_epoch)
        position = self.size
        self._write([head, memoryview(batch)[_BATCH_START.size :]], size, position)
        if self.bytes_since_index_entry > self.index_interval_bytes:
            self.index.append(last_offset, position)
            self.bytes_since_index_entry = 0
        self.bytes_since_index_entry += size
        self.size += size
        self._remember(base_offset, last_offset, position, max_timestamp)

    def _write(self, parts: list[Buffer], size: int, position: int) -> None:
        written = os.pwritev(self._fd, parts, position)
        if written != size:
            # Undo a short write so the file keeps whole batches only.
            os.ftruncate(self._fd, position)
            raise OSError(f"short write to {self.log_path}: {written} of {size} bytes")

    def append_batches(
        self, data: bytes | bytearray | memoryview, headers: list[BatchHeader]
    ) -> None:
        """Append whole batches with their parsed headers (follower path): one write."""
        position = self.size
        self._write([data], len(data), position)
        for h in headers:
            if self.bytes_since_index_entry > self.index_interval_bytes:
                self.index.append(h.last_offset, position)
                self.bytes_since_index_entry = 0
            self.bytes_since_index_entry += h.size
            self._remember(h.base_offset, h.last_offset, position, h.max_timestamp)
            position += h.size
        self.size = position

    def truncate_to(self, offset: int) -> int:
        """Remove the batches with a last offset at or above ``offset`` (a batch holding
        ``offset`` goes whole); returns the bytes removed."""
        i = bisect.bisect_left(self.lasts, offset)
        if i >= len(self.positions):
            return 0
        position = self.positions[i]
        removed = self.size - position
        os.ftruncate(self._fd, position)
        self.size = position
        for arr in (self.bases, self.lasts, self.positions, self.max_timestamps):
            del arr[i:]
        self.max_timestamp = max(self.max_timestamps, default=-1)
        self.index.truncate_to_position(position)
        self._rebuild_index_tail()
        return removed

    def _rebuild_index_tail(self) -> None:
        tail_start = self.index.positions[-1] if self.index.positions else 0
        self.bytes_since_index_entry = self.size - tail_start

    def flush(self) -> None:
        os.fsync(self._fd)
        self.index.flush()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self.index.close()

    def delete(self) -> None:
        self.close()
        delete_files(self.directory, self.base_offset)
