"""A loopback TCP proxy that the harness can cut, as a network partition between the
proxy's clients and its target, and heal again.

Every connection to the proxy is forwarded, byte for byte, to ``target`` (one upstream
connection each).  :meth:`TcpProxy.cut` makes the link drop every packet both ways, as a
partition does: bytes already on their way in either direction are read and thrown
away, nothing is forwarded, and neither side sees the other close; a connection opened
during the cut is accepted (the proxy listens on this machine) but never reaches the
target and never hears anything back, like a SYN lost in the partition would leave its
client waiting.  :meth:`TcpProxy.heal` ends the partition: every connection that lived
through it is closed at both ends (as TCP connections whose retransmissions timed out:
a byte stream with a hole in it cannot go on), and new connections are forwarded again.

Threads, not asyncio: the harness is synchronous.  Only a loopback address may be the
target (the harness sends traffic nowhere else).
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Callable

import attrs

__all__ = ["TcpProxy"]

_CHUNK = 65536
_ACCEPT_POLL_S = 0.2
"""How often the accept loop looks whether the proxy was closed (accept() is not woken
by closing the listener on every platform)."""


@attrs.define(eq=False)
class _Link:
    """One client connection and, unless it was opened during a cut, its upstream one."""

    client: socket.socket
    upstream: socket.socket | None
    cut: bool = False
    """It lived through a cut: nothing is forwarded any more; closed at the heal."""


class TcpProxy:
    """Forwards connections to ``target`` (see the module docstring); ``start`` it,
    ``close`` it at the end (or use ``with``)."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        for address in (host, target[0]):
            if not ipaddress.ip_address(socket.gethostbyname(address)).is_loopback:
                raise ValueError(f"{address} is not a loopback address")
        self.target = target
        self.listener = socket.create_server((host, 0))
        self.host: str = host
        self.port: int = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._cut = False
        self._closed = False
        self._threads: list[threading.Thread] = []

    @property
    def address(self) -> str:
        """``HOST:PORT`` where clients connect."""
        return f"{self.host}:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._cut

    def start(self) -> TcpProxy:
        self._spawn(self._accept)
        return self

    def cut(self) -> None:
        """Drop every packet both ways from now on (idempotent)."""
        with self._lock:
            self._cut = True
            for link in self._links:
                link.cut = True

    def heal(self) -> None:
        """Forward again: the connections that lived through the cut are closed at both
        ends, new ones reach the target (idempotent)."""
        with self._lock:
            self._cut = False
            dead = [link for link in self._links if link.cut]
            self._links = [link for link in self._links if not link.cut]
        for link in dead:
            _close(link.client, link.upstream)

    def connections(self) -> int:
        """The client connections the proxy holds now (forwarded or held by a cut)."""
        with self._lock:
            return len(self._links)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            links, self._links = self._links, []
        self.listener.close()
        for link in links:
            _close(link.client, link.upstream)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(5.0)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- threads ---------------------------------------------------------------------------

    def _spawn(self, run: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=run, args=args, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        self.listener.settimeout(_ACCEPT_POLL_S)
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            client.settimeout(None)
            if self._cut:
                self._hold(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5.0)
                upstream.settimeout(None)
            except OSError:
                _close(client)  # the target refuses: so does the proxy
                continue
            link = _Link(client, upstream)
            with self._lock:
                if self._closed:
                    _close(client, upstream)
                    return
                link.cut = self._cut  # a cut that came while connecting holds it too
                self._links.append(link)
            self._spawn(self._pump, link, client, upstream)
            self._spawn(self._pump, link, upstream, client)

    def _hold(self, client: socket.socket) -> None:
        """A connection opened during a cut: it stays open, unanswered, until the heal."""
        with self._lock:
            if self._closed:
                _close(client)
                return
            self._links.append(_Link(client, None, cut=True))

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket) -> None:
        """Copy ``source`` to ``sink`` until either ends; while the link is cut, read and
        drop (and at its end close only ``source``: the other side must not notice)."""
        while True:
            try:
                data = source.recv(_CHUNK)
            except OSError:
                data = b""
            if not data:
                break
            if link.cut:
                continue
            try:
                sink.sendall(data)
            except OSError:
                break
        if link.cut:
            _close(source)
        else:
            _close(source, sink)


def _close(*sockets: socket.socket | None) -> None:
    for s in sockets:
        if s is None:
            continue
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()
