"""Record batches (magic v2) as bytes: header view, CRC-32C check, offset rewrite, building.

The broker keeps batches opaque: it reads the fixed 61-byte header, checks the CRC over
everything after the CRC field, and rewrites the base offset and the partition leader
epoch, which lie before the CRC field and so leave it valid.  Records inside a batch are
only decoded by clients (``decode_records``, uncompressed and gzip batches).

Layout (Kafka's ``DefaultRecordBatch``), big-endian::

    baseOffset int64 | batchLength int32 | partitionLeaderEpoch int32 | magic int8 |
    crc uint32 | attributes int16 | lastOffsetDelta int32 | baseTimestamp int64 |
    maxTimestamp int64 | producerId int64 | producerEpoch int16 | baseSequence int32 |
    recordsCount int32 | records...

``batchLength`` counts the bytes after itself; the CRC covers attributes to the end.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Sequence

import attrs
import crc32c

HEADER_SIZE = 61
LOG_OVERHEAD = 12  # baseOffset and batchLength: the bytes batchLength does not count
CRC_START = 21  # attributes onwards are covered by the CRC
MAGIC = 2
NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NO_PARTITION_LEADER_EPOCH = -1

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
TRANSACTIONAL_FLAG = 0x10
CONTROL_FLAG = 0x20

NONE, GZIP, SNAPPY, LZ4, ZSTD = range(5)
CODECS = {NONE: "none", GZIP: "gzip", SNAPPY: "snappy", LZ4: "lz4", ZSTD: "zstd"}

_HEADER = struct.Struct(">qiibIhiqqqhii")


class CorruptBatchError(ValueError):
    """Bytes that are not a whole, well-formed v2 record batch (Kafka: CORRUPT_MESSAGE)."""


@attrs.frozen(slots=True)
class BatchHeader:
    """The fixed header of one record batch."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int

    @property
    def size(self) -> int:
        """The whole batch's size in bytes."""
        return LOG_OVERHEAD + self.batch_length

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL_FLAG)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL_FLAG)

    @property
    def is_idempotent(self) -> bool:
        return self.producer_id >= 0

    @property
    def last_sequence(self) -> int:
        """The sequence number of the batch's last record (wrapping as Kafka's does)."""
        if self.base_sequence < 0:
            return NO_SEQUENCE
        return (self.base_sequence + self.last_offset_delta) % (1 << 31)


def parse_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """The header of the batch at ``buf[pos:]``; raises CorruptBatchError when it is short,
    not magic v2, or its length or record count is impossible.  The CRC is not checked."""
    if len(buf) - pos < HEADER_SIZE:
        raise CorruptBatchError(f"batch header needs {HEADER_SIZE} bytes, {len(buf) - pos} left")
    h = BatchHeader(*_HEADER.unpack_from(buf, pos))
    if h.magic != MAGIC:
        raise CorruptBatchError(f"record batch magic {h.magic}, only magic 2 is supported")
    if h.batch_length < HEADER_SIZE - LOG_OVERHEAD:
        raise CorruptBatchError(f"batch length {h.batch_length} is shorter than its header")
    if len(buf) - pos < h.size:
        raise CorruptBatchError(f"batch of {h.size} bytes, only {len(buf) - pos} present")
    if h.last_offset_delta < 0 or h.records_count < 0:
        raise CorruptBatchError("negative last offset delta or record count")
    if h.compression not in CODECS:
        raise CorruptBatchError(f"unknown compression codec {h.compression}")
    return h


def crc_ok(buf: bytes | bytearray | memoryview, pos: int, header: BatchHeader) -> bool:
    """Whether the batch at ``buf[pos:]`` matches its CRC-32C."""
    body = memoryview(buf)[pos + CRC_START : pos + header.size]
    return crc32c.crc32c(body) == header.crc


def iter_batches(buf: bytes | bytearray | memoryview) -> Iterator[tuple[int, BatchHeader]]:
    """(position, header) of each batch in ``buf``, which must hold whole batches only;
    raises CorruptBatchError at the first malformed one or on a bad CRC."""
    pos = 0
    while pos < len(buf):
        h = parse_header(buf, pos)
        if not crc_ok(buf, pos, h):
            raise CorruptBatchError(f"CRC mismatch in the batch at byte {pos}")
        yield pos, h
        pos += h.size


def valid_prefix(buf: bytes | bytearray | memoryview) -> tuple[list[BatchHeader], int]:
    """The well-formed batches at the start of ``buf`` with matching CRCs, and how many
    bytes they take: what survives of a log segment whose tail may be torn."""
    headers: list[BatchHeader] = []
    pos = 0
    while pos < len(buf):
        try:
            h = parse_header(buf, pos)
        except CorruptBatchError:
            break
        if not crc_ok(buf, pos, h):
            break
        headers.append(h)
        pos += h.size
    return headers, pos


def assign_offsets(batch: bytearray, base_offset: int, partition_leader_epoch: int) -> None:
    """Write the offset and leader epoch the log gives the batch (outside the CRC)."""
    struct.pack_into(">q", batch, 0, base_offset)
    struct.pack_into(">i", batch, 12, partition_leader_epoch)


# --- Records inside a batch (clients' side) ---------------------------------------------


@attrs.frozen(slots=True)
class Record:
    """One record as a client sees it: its absolute offset and timestamp, key, value and
    headers."""

    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def write_varint(out: bytearray, n: int) -> None:
    """Append ``n`` as a zigzag varint (Kafka's varint/varlong)."""
    z = _zigzag(n) & 0xFFFF_FFFF_FFFF_FFFF
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def read_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """The zigzag varint at ``buf[pos:]`` and the position after it."""
    shift = 0
    z = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise CorruptBatchError("truncated or overlong varint")
        b = buf[pos]
        pos += 1
        z |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
    return (z >> 1) ^ -(z & 1), pos


def _write_bytes(out: bytearray, data: bytes | None) -> None:
    if data is None:
        write_varint(out, -1)
    else:
        write_varint(out, len(data))
        out += data


def _read_bytes(buf: bytes | memoryview, pos: int) -> tuple[bytes | None, int]:
    n, pos = read_varint(buf, pos)
    if n < 0:
        return None, pos
    if pos + n > len(buf):
        raise CorruptBatchError("record field runs past the batch")
    return bytes(buf[pos : pos + n]), pos + n


def build_batch(
    records: Sequence[tuple[bytes | None, bytes | None]],
    *,
    timestamp: int = 0,
    base_offset: int = 0,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
    partition_leader_epoch: int = NO_PARTITION_LEADER_EPOCH,
    compression: int = NONE,
) -> bytes:
    """A v2 batch of (key, value) records, all with ``timestamp``.  Only ``NONE`` and
    ``GZIP`` compression can be built here (real clients build the others)."""
    if not records:
        raise ValueError("a record batch holds at least one record")
    body = bytearray()
    for delta, (key, value) in enumerate(records):
        rec = bytearray(b"\x00")  # attributes
        write_varint(rec, 0)  # timestamp delta
        write_varint(rec, delta)  # offset delta
        _write_bytes(rec, key)
        _write_bytes(rec, value)
        write_varint(rec, 0)  # headers
        write_varint(body, len(rec))
        body += rec
    if compression == GZIP:
        payload = zlib.compress(bytes(body), wbits=31)
    elif compression == NONE:
        payload = bytes(body)
    else:
        raise ValueError(f"cannot build {CODECS.get(compression, compression)} batches here")
    after_crc = struct.pack(
        ">hiqqqhii",
        compression,
        len(records) - 1,
        timestamp,
        timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        len(records),
    )
    after_crc += payload
    head = struct.pack(
        ">qiibI",
        base_offset,
        len(after_crc) + 9,  # partitionLeaderEpoch + magic + crc
        partition_leader_epoch,
        MAGIC,
        crc32c.crc32c(after_crc),
    )
    return head + after_crc


def decode_records(batch: bytes | memoryview) -> list[Record]:
    """The records of one batch (uncompressed or gzip), with absolute offsets."""
    h = parse_header(batch)
    payload: bytes | memoryview = memoryview(batch)[HEADER_SIZE : h.size]
    if h.compression == GZIP:
        try:
            payload = zlib.decompress(bytes(payload), wbits=47)
        except zlib.error as e:
            raise CorruptBatchError(f"bad gzip payload: {e}") from None
    elif h.compression != NONE:
        raise CorruptBatchError(f"cannot decode {CODECS[h.compression]} batches here")
    out: list[Record] = []
    pos = 0
    for _ in range(h.records_count):
        length, pos = read_varint(payload, pos)
        end = pos + length
        if length < 0 or end > len(payload):
            raise CorruptBatchError("record runs past the batch")
        pos += 1  # attributes
        ts_delta, pos = read_varint(payload, pos)
        off_delta, pos = read_varint(payload, pos)
        key, pos = _read_bytes(payload, pos)
        value, pos = _read_bytes(payload, pos)
        n_headers, pos = read_varint(payload, pos)
        if n_headers < 0:
            raise CorruptBatchError(f"invalid number of record headers {n_headers}")
        headers: list[tuple[str, bytes | None]] = []
        for _ in range(n_headers):
            hk, pos = _read_bytes(payload, pos)
            if hk is None:
                raise CorruptBatchError("null record header key")
            hv, pos = _read_bytes(payload, pos)
            headers.append((hk.decode("utf-8", "replace"), hv))
        if pos != end:
            raise CorruptBatchError("record length does not match its fields")
        out.append(
            Record(
                h.base_offset + off_delta, h.base_timestamp + ts_delta, key, value, tuple(headers)
            )
        )
    if pos != len(payload):
        raise CorruptBatchError(f"{len(payload) - pos} bytes after the batch's last record")
    return out
