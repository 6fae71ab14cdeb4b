"""Errors of the storage layer, each carrying the Kafka error code a broker answers with."""

from __future__ import annotations

from spec.errors import ErrorCode


class StorageError(Exception):
    """A storage operation refused or failed; ``code`` is the Kafka error for the client."""

    code: ErrorCode = ErrorCode.KAFKA_STORAGE_ERROR

    def __init__(self, message: str, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class OffsetOutOfRangeError(StorageError):
    """A read below the log start offset or above the log end offset."""

    code = ErrorCode.OFFSET_OUT_OF_RANGE


class CorruptRecordError(StorageError):
    """A batch that is malformed or fails its CRC (Kafka: CORRUPT_MESSAGE)."""

    code = ErrorCode.CORRUPT_MESSAGE


class RecordTooLargeError(StorageError):
    """A batch larger than ``max.message.bytes`` (Kafka: MESSAGE_TOO_LARGE)."""

    code = ErrorCode.MESSAGE_TOO_LARGE
