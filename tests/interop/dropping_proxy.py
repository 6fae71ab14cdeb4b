"""A TCP proxy between Kafka clients and one broker that loses the answer to a request:
the request reaches the broker (which acts on it), the response never reaches the
client, and the connection is closed, as when a network fails at the worst moment.  The
client cannot tell whether its request was carried out; a producer retries it.

Clients reach the broker through the proxy only if the broker advertises the proxy's
address (``advertised.listeners``), so the proxy's port is known before the broker
starts and its target is given afterwards.  Frames are forwarded whole; the request
header (api key, correlation id) tells which response answers what.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable

_LENGTH = struct.Struct(">i")
_REQUEST_HEAD = struct.Struct(">hhi")  # api key, api version, correlation id


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        try:
            chunk = sock.recv(size - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _read_frame(sock: socket.socket) -> bytes | None:
    """A whole frame, length prefix included; None at end of stream."""
    prefix = _read_exactly(sock, 4)
    if prefix is None:
        return None
    body = _read_exactly(sock, _LENGTH.unpack(prefix)[0])
    return None if body is None else prefix + body


class DroppingProxy:
    """Forwards every connection to ``target``; the first ``drops`` responses to requests
    with api key ``drop_api_key`` are swallowed and their connection closed."""

    def __init__(self, drop_api_key: int, drops: int = 1, host: str = "127.0.0.1") -> None:
        self.drop_api_key = drop_api_key
        self.drops_left = drops
        self.dropped = 0
        self.requests: Counter[int] = Counter()
        self.target: tuple[str, int] | None = None
        self.listener = socket.create_server((host, 0))
        self.host, self.port = host, self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._closed = False

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._spawn(self._accept)

    def _spawn(self, run: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=run, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(0.2)  # to see close() soon; accept() is not woken by it
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            client.settimeout(None)
            assert self.target is not None
            try:
                upstream = socket.create_connection(self.target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            api_keys: dict[int, int] = {}  # correlation id -> api key of each request
            self._spawn(self._requests, client, upstream, api_keys)
            self._spawn(self._responses, upstream, client, api_keys)

    def _requests(
        self, client: socket.socket, upstream: socket.socket, keys: dict[int, int]
    ) -> None:
        while (frame := _read_frame(client)) is not None:
            api_key, _, correlation_id = _REQUEST_HEAD.unpack_from(frame, 4)
            with self._lock:
                keys[correlation_id] = api_key
                self.requests[api_key] += 1
            try:
                upstream.sendall(frame)
            except OSError:
                break
        self._close_pair(client, upstream)

    def _responses(
        self, upstream: socket.socket, client: socket.socket, keys: dict[int, int]
    ) -> None:
        while (frame := _read_frame(upstream)) is not None:
            (correlation_id,) = _LENGTH.unpack_from(frame, 4)
            with self._lock:
                api_key = keys.pop(correlation_id, None)
                drop = api_key == self.drop_api_key and self.drops_left > 0
                if drop:
                    self.drops_left -= 1
                    self.dropped += 1
            if drop:
                break  # the broker has answered; the client never hears it
            try:
                client.sendall(frame)
            except OSError:
                break
        self._close_pair(client, upstream)

    @staticmethod
    def _close_pair(*sockets: socket.socket) -> None:
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sockets, self._sockets = self._sockets, []
        self.listener.close()
        self._close_pair(*sockets)
        for thread in self._threads:
            thread.join(10)

    def __enter__(self) -> DroppingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
