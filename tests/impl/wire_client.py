"""A tiny blocking Kafka client for the broker tests, on impl.wire.codec: send kio
request entities (or raw bytes), read response frames, see whether the broker closed the
connection.  Every read has a deadline."""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

from kio.static.protocol import Payload

from impl.wire import codec

_LENGTH = struct.Struct(">i")
DEFAULT_TIMEOUT_S = 15.0


class WireClient:
    """One connection to a broker."""

    def __init__(self, host: str, port: int, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout_s = timeout_s
        self._next_correlation_id = 1

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, request: Payload, client_id: str | None = "kafkaref-test") -> int:
        """Send ``request``; its correlation id."""
        correlation_id = self._next_correlation_id
        self._next_correlation_id += 1
        self.sock.sendall(codec.encode_request(request, correlation_id, client_id))
        return correlation_id

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read_exactly(self, size: int) -> bytes | None:
        chunks = bytearray()
        deadline = time.monotonic() + self.timeout_s
        while len(chunks) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no response within {self.timeout_s} s")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(size - len(chunks))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            chunks += chunk
        return bytes(chunks)

    def read_frame(self) -> bytes | None:
        """The next response frame payload, or None when the broker closed the connection."""
        prefix = self._read_exactly(4)
        if prefix is None:
            return None
        (size,) = _LENGTH.unpack(prefix)
        return self._read_exactly(size)

    def receive(self, api_key: int, api_version: int) -> tuple[int, Any]:
        """(correlation id, response entity) of the next response."""
        frame = self.read_frame()
        if frame is None:
            raise ConnectionError("the broker closed the connection")
        return codec.decode_response(api_key, api_version, frame)

    def request(self, request: Payload) -> Any:
        """Send ``request`` and return its response entity."""
        correlation_id = self.send(request)
        got, response = self.receive(request.__api_key__, request.__version__)
        assert got == correlation_id, (got, correlation_id)
        return response

    def closed_by_peer(self) -> bool:
        """Whether the broker closes the connection (EOF or reset) before the deadline
        without sending anything more."""
        try:
            return self.read_frame() is None
        except TimeoutError:
            return False
