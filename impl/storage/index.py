"""A segment's sparse offset index (Kafka's ``OffsetIndex``, the ``.index`` file).

Entries of 8 bytes, big-endian: the offset relative to the segment's base offset (int32)
of a batch's last offset, and the byte position (int32) of that batch in the ``.log``
file.  An entry is added when more than ``index.interval.bytes`` were appended since the
previous one.  A lookup gives the position to scan from for a wanted offset: the entry
with the largest offset not above it.  (Kafka preallocates the file and trims it on
close; here it only ever holds whole entries.)
"""

from __future__ import annotations

import bisect
import os
import struct
from array import array

ENTRY = struct.Struct(">ii")
ENTRY_SIZE = ENTRY.size


class OffsetIndex:
    """The index file of one segment, with its entries also kept in memory."""

    def __init__(self, path: str, base_offset: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.offsets = array("q")  # absolute offsets
        self.positions = array("q")
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    @classmethod
    def open(cls, path: str, base_offset: int, log_size: int, last_offset: int) -> OffsetIndex:
        """The index at ``path``; entries are checked against the segment (offsets and
        positions increasing, within the log); a bad index is emptied (call ``rebuild``)."""
        index = cls(path, base_offset)
        data = b""
        size = os.fstat(index._fd).st_size
        if size:
            data = os.pread(index._fd, size, 0)
        ok = size % ENTRY_SIZE == 0
        prev_off, prev_pos = -1, -1
        for rel, pos in ENTRY.iter_unpack(data[: size - size % ENTRY_SIZE]):
            off = base_offset + rel
            if not ok or off <= prev_off or pos <= prev_pos or pos >= log_size or off > last_offset:
                ok = False
                break
            index.offsets.append(off)
            index.positions.append(pos)
            prev_off, prev_pos = off, pos
        if not ok:
            index.truncate_entries(0)
        return index

    def append(self, offset: int, position: int) -> None:
        """Add an entry (offset and position above the last entry's)."""
        os.pwrite(
            self._fd,
            ENTRY.pack(offset - self.base_offset, position),
            len(self.offsets) * ENTRY_SIZE,
        )
        self.offsets.append(offset)
        self.positions.append(position)

    def entries(self) -> list[tuple[int, int]]:
        """The entries as (absolute offset, position)."""
        return list(zip(self.offsets, self.positions, strict=True))

    def lookup(self, offset: int) -> tuple[int, int]:
        """The entry with the largest offset not above ``offset``: (offset, position); the
        segment start ``(base_offset, 0)`` when there is none."""
        i = bisect.bisect_right(self.offsets, offset)
        if i == 0:
            return self.base_offset, 0
        return self.offsets[i - 1], self.positions[i - 1]

    def truncate_entries(self, count: int) -> None:
        """Keep only the first ``count`` entries."""
        del self.offsets[count:]
        del self.positions[count:]
        os.ftruncate(self._fd, count * ENTRY_SIZE)

    def truncate_to_position(self, position: int) -> None:
        """Drop the entries of batches at or after ``position`` (the log was truncated)."""
        self.truncate_entries(bisect.bisect_left(self.positions, position))

    def flush(self) -> None:
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
