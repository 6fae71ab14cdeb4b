"""The broker's network side: one asyncio Protocol per connection that splits the byte
stream into frames, and a per-connection worker that answers them one at a time in
request order (as Kafka's processors do: a connection's next request is handled after
the previous one's response), so a long-polling Fetch holds back only its own connection.

Kafka's rules for bad input: an API key this broker does not serve closes the connection;
an ApiVersions request of a version it does not serve gets UNSUPPORTED_VERSION in the v0
layout; another API at a version it does not serve, a malformed header or body, or a
frame length that is negative or above socket.request.max.bytes closes the connection.
A handler bug is logged and closes that connection; the process keeps serving.

Request bodies are read by kio's schemas (``impl.wire.codec``), except Produce bodies,
the largest and most frequent, which ``impl.wire.produce_request`` reads without copying
their record batches.

Responses are written without waiting for the socket to drain, unless the transport's
buffer is over its high-water mark; reading pauses while too many requests are queued.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
from typing import TYPE_CHECKING, cast

from kio.static.protocol import Entity, Payload, RequestPayload

from impl.broker.apis import API_VERSIONS, APIS, PRODUCE, supported_versions
from impl.broker.context import CLIENT_HOST
from impl.broker.produce import handle_produce
from impl.wire import codec
from impl.wire.framing import FrameError, FrameReader, parse_request_header
from impl.wire.produce_request import FIRST_VERSION as FIRST_PRODUCE
from impl.wire.produce_request import LAST_VERSION as LAST_PRODUCE
from impl.wire.produce_request import ProduceRequest, decode_produce_request

if TYPE_CHECKING:
    from impl.broker.context import BrokerContext

_log = logging.getLogger(__name__)

MAX_QUEUED_REQUESTS = 64  # per connection; reading pauses above this
RESUME_QUEUED_REQUESTS = 16


# glibc's mallopt parameters (malloc.h) and the values set: see keep_freed_buffers.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 16 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024


def keep_freed_buffers() -> None:
    """Have glibc's malloc reuse freed large buffers instead of returning them to the OS.

    Every request allocates and frees buffers of up to a few MiB (frames read, batches
    read from the log, responses).  By default glibc maps each allocation above 128 KiB
    afresh and trims the heap as soon as 128 KiB are free at its top, so every request
    page-faults its buffers in again: about half the broker's time on a 1 MiB Fetch.
    No-op where the C library has no mallopt (musl, macOS)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)


class CloseConnectionError(Exception):
    """The connection must be closed (Kafka's answer to unreadable requests)."""


class BrokerServer:
    """Accepts connections and dispatches their requests to the API handlers."""

    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._max_frame_bytes = ctx.config.socket_request_max_bytes

    async def start(self, host: str, port: int) -> asyncio.Server:
        keep_freed_buffers()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: Connection(self), host, port, reuse_address=True
        )
        return self._server

    @property
    def bound_port(self) -> int:
        """The port actually listened on (useful when asked for port 0)."""
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        """Stop accepting, close every connection and wait for their workers."""
        if self._server is not None:
            self._server.close()
        connections = list(self._connections)
        for conn in connections:
            conn.shut()
        await asyncio.gather(*(c.finished() for c in connections), return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def dispatch(self, frame: bytes) -> list[codec.Buffer] | None:
        """The whole response frame answering one request frame, as pieces to write in
        order (None: no response).  Raises CloseConnectionError when the request cannot
        be answered."""
        try:
            header, body_offset = parse_request_header(frame)
        except FrameError as e:
            raise CloseConnectionError(f"bad request header: {e}") from None
        api = APIS.get(header.api_key)
        if api is None:
            raise CloseConnectionError(f"unknown API key {header.api_key}")
        if not api.supports(header.api_version):
            if header.api_key == API_VERSIONS:
                return [
                    codec.api_versions_unsupported_v0(header.correlation_id, supported_versions())
                ]
            raise CloseConnectionError(
                f"unsupported version {header.api_version} of API key {header.api_key} "
                f"(supported {api.min_version}..{api.max_version})"
            )
        version = header.api_version
        request: RequestPayload | ProduceRequest
        try:
            if header.api_key == PRODUCE and FIRST_PRODUCE <= version <= LAST_PRODUCE:
                # The hottest request, read without kio (see impl.wire.produce_request).
                request = decode_produce_request(version, frame, body_offset)
            else:
                request = codec.decode_request(header, frame, body_offset)
        except codec.DecodeError as e:
            raise CloseConnectionError(
                f"cannot decode API key {header.api_key} v{version}: {e}"
            ) from None
        response: Entity | bytes | None
        if isinstance(request, ProduceRequest):
            response = await handle_produce(self.ctx, header, request)
        else:
            response = await api.handler(self.ctx, header, request)
        if response is None or isinstance(response, bytes):
            return None if response is None else [response]
        return codec.encode_response_parts(header, cast(Payload, response))


class Connection(asyncio.Protocol):
    """One client connection: frames in, responses out in request order."""

    def __init__(self, server: BrokerServer) -> None:
        self._server = server
        self._reader = FrameReader(server._max_frame_bytes)
        self._queue: collections.deque[bytes | None] = collections.deque()  # None: close
        self._transport: asyncio.Transport | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._closed = False
        self._worker: asyncio.Task[None] | None = None
        self._peer = "?"
        self._host = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._host = f"/{peer[0]}" if isinstance(peer, tuple) else ""
        self._server._connections.add(self)
        self._worker = asyncio.get_running_loop().create_task(self._run())

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        try:
            frames = self._reader.feed(data)
        except FrameError as e:
            _log.warning("closing connection from %s: %s", self._peer, e)
            self._queue.append(None)
            self._closed = True
            self._wake()
            return
        if not frames:
            return
        self._queue.extend(frames)
        if len(self._queue) > MAX_QUEUED_REQUESTS and not self._reading_paused:
            assert self._transport is not None
            self._transport.pause_reading()
            self._reading_paused = True
        self._wake()

    def eof_received(self) -> bool | None:
        # The client finished sending: answer what was received, then close.
        self._queue.append(None)
        self._wake()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server._connections.discard(self)
        if self._worker is not None:
            self._worker.cancel()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        if self._drained is None or self._drained.done():
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def shut(self) -> None:
        """Close now (broker shutdown)."""
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
        if self._transport is not None:
            self._transport.close()

    async def finished(self) -> None:
        if self._worker is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _run(self) -> None:
        transport = self._transport
        assert transport is not None
        CLIENT_HOST.set(self._host)  # this task's own context: its requests' client address
        queue = self._queue
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not queue:
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    self._wakeup = None
                    continue
                frame = queue.popleft()
                if self._reading_paused and len(queue) <= RESUME_QUEUED_REQUESTS:
                    self._reading_paused = False
                    if not transport.is_closing():
                        transport.resume_reading()
                if frame is None:
                    break
                try:
                    response = await self._server.dispatch(frame)
                except CloseConnectionError as e:
                    _log.warning("closing connection from %s: %s", self._peer, e)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:
                    _log.exception("request from %s failed; closing its connection", self._peer)
                    break
                if transport.is_closing():
                    return
                if response is not None:
                    for part in response:
                        transport.write(part)
                drained = self._drained
                if drained is not None and not drained.done():
                    await drained
        except asyncio.CancelledError:
            if not transport.is_closing():
                transport.close()
            raise
        self._closed = True
        transport.close()
