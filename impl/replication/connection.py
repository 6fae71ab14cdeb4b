"""One client connection from a follower to a leader broker, on impl.wire.codec: send a
kio request entity, await its response, every wait bounded by the socket timeout
(replica.socket.timeout.ms).  Requests go one at a time, as a Kafka fetcher sends them."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from kio.static.protocol import Payload

from impl.wire import codec

_LENGTH = struct.Struct(">i")


class BrokerConnection:
    """A connection to ``host:port``; use ``await BrokerConnection.open(...)``."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client_id: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._client_id = client_id
        self._correlation_id = 0

    @classmethod
    async def open(cls, host: str, port: int, client_id: str, timeout_s: float) -> BrokerConnection:
        """Connect within ``timeout_s``; raises OSError or TimeoutError."""
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, client_id)

    async def request(self, entity: Payload, timeout_s: float) -> Any:
        """Send ``entity`` and return the response body.  Raises ConnectionError when the
        broker closes the connection, TimeoutError past ``timeout_s``, and
        codec.DecodeError for a response that does not parse."""
        self._correlation_id += 1
        correlation_id = self._correlation_id
        self._writer.write(codec.encode_request(entity, correlation_id, self._client_id))
        async with asyncio.timeout(timeout_s):
            await self._writer.drain()
            try:
                prefix = await self._reader.readexactly(4)
                (size,) = _LENGTH.unpack(prefix)
                frame = await self._reader.readexactly(size)
            except asyncio.IncompleteReadError as e:
                raise ConnectionError("the leader closed the connection") from e
        got, body = codec.decode_response(entity.__api_key__, entity.__version__, frame)
        if got != correlation_id:
            raise ConnectionError(f"correlation id {got}, expected {correlation_id}")
        return body

    def close(self) -> None:
        self._writer.close()
