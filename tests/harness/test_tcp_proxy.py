"""``harness.tcp_proxy``: the loopback proxy the harness puts between a broker and ZooKeeper
forwards bytes both ways; cut, it forwards nothing either way (and a connection opened
during the cut hears nothing); healed, the connections that lived through the cut are
closed and new ones are forwarded again.  On real sockets, against an echo server that
records every byte it received."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from harness.tcp_proxy import TcpProxy

pytestmark = pytest.mark.timeout(60)

QUIET_S = 0.5
"""How long a connection must stay silent to count as cut (a recv deadline)."""


class EchoServer:
    """Echoes every connection's bytes back and keeps all it received."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = ("127.0.0.1", int(self.listener.getsockname()[1]))
        self.received = bytearray()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(4096):
                with self._lock:
                    self.received += data
                conn.sendall(data)

    def got(self) -> bytes:
        with self._lock:
            return bytes(self.received)

    def close(self) -> None:
        self.listener.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


def _connect(proxy: TcpProxy) -> socket.socket:
    return socket.create_connection((proxy.host, proxy.port), timeout=5.0)


def _round_trip(conn: socket.socket, data: bytes) -> bytes:
    conn.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = conn.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def _silent(conn: socket.socket) -> bool:
    """Nothing arrives on ``conn`` within QUIET_S (and it is not closed)."""
    conn.settimeout(QUIET_S)
    try:
        conn.recv(4096)
    except TimeoutError:
        return True
    finally:
        conn.settimeout(5.0)
    return False


def _closed(conn: socket.socket) -> bool:
    try:
        return conn.recv(4096) == b""
    except ConnectionResetError:
        return True


def test_bytes_flow_both_ways(echo: EchoServer) -> None:
    with TcpProxy(echo.address) as proxy, _connect(proxy) as conn:
        assert _round_trip(conn, b"hello") == b"hello"
        assert echo.got() == b"hello"
        assert proxy.connections() == 1


def test_a_cut_drops_everything_both_ways_and_the_heal_resets_what_lived_through_it(
    echo: EchoServer,
) -> None:
    with TcpProxy(echo.address) as proxy, _connect(proxy) as before:
        assert _round_trip(before, b"a") == b"a"
        proxy.cut()
        assert proxy.is_cut
        before.sendall(b"lost")
        assert _silent(before)  # no echo: nothing went up, or nothing came back
        with _connect(proxy) as during:  # accepted, but it never reaches the target
            during.sendall(b"also lost")
            assert _silent(during)
            assert echo.got() == b"a"
            proxy.heal()
            assert not proxy.is_cut
            assert _closed(before) and _closed(during)
        with _connect(proxy) as after:
            assert _round_trip(after, b"b") == b"b"
        assert echo.got() == b"ab"


def test_only_loopback_targets() -> None:
    with pytest.raises(ValueError, match="loopback"):
        TcpProxy(("192.0.2.1", 2181))
