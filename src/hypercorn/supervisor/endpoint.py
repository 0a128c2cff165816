"""A tiny HTTP/1.x server inside the master's synchronous loop.

Theory of operation
-------------------
The master runs no event loop and no thread (see ``docs/discussion/metrics.md``),
yet it answers a few plain-text requests of its own: the Prometheus text
(``metrics.py``) and the health checks (``health.py``). ``Endpoint`` owns a
non-blocking listening socket and its few client sockets, all registered in
the master's selector. Each client is read until the end of its request head,
answered with one response (``connection: close``) written as the socket
accepts it, and closed. A client that is too slow (``CLIENT_TIMEOUT``) or too
large (``MAX_HEAD``) is dropped, and beyond ``MAX_CLIENTS`` a new connection is
closed at once, so an endpoint can neither block nor starve the loop that
supervises the workers.

What an endpoint answers is a table of routes: a path and a function that
renders ``(status, content type, text)`` at request time, from the master's
state as it is in that turn of the loop. Several routes may share one socket
(``metrics_bind`` and ``health_bind`` set to the same address).

A USR2 upgrade hands each listening socket on to the new master, by role
(``upgrade.hand_on``), so an address is never bound twice. The new master
adopts it at start (so its workers close it like every other master socket)
but serves it only once it takes over (``Endpoints.serve``): until then the old
master alone answers on the shared queue, and a balancer never reads the new
master's "starting" beside the old one's "ready".

A stopping master closes an endpoint after answering the requests it already
accepted (for at most ``FINISH_TIMEOUT``): in a hand-over both masters accept
from one queue, and a request the old one took in its last turn would
otherwise be cut (a reset) instead of answered.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import stat
import time
from collections.abc import Callable, Mapping

from hypercorn.shared.sockets import SocketOptions, create_socket, parse_bind
from hypercorn.supervisor.upgrade import hand_on, inherited_listener

__all__ = ["TEXT", "Endpoint", "Endpoints", "Reply", "Route"]

CLIENT_TIMEOUT = 10.0  # seconds a request may take, from accept to the last byte
MAX_HEAD = 8192  # bytes of request head read before giving up on a client
MAX_CLIENTS = 16
FINISH_TIMEOUT = 0.5  # seconds a stopping master gives the requests it has accepted
TEXT = "text/plain; charset=utf-8"

Reply = tuple[int, str, str]  # status, content type, body text
Route = Callable[[], Reply]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}  # fmt: skip


class _Client:
    """One request in progress."""

    __slots__ = ("deadline", "head", "out", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.head = bytearray()
        self.out: memoryview | None = None


class Endpoint:
    """``GET`` and ``HEAD`` of a few paths, served from the master's selector.

    Args:
        sock: the listening socket (non-blocking).
        selector: the master's selector; ``serve`` registers the sockets there.
        routes: path -> the function that renders its reply.
        role: the socket's name in a USR2 hand-over.
    """

    def __init__(
        self,
        sock: socket.socket,
        selector: selectors.BaseSelector,
        routes: Mapping[str, Route],
        role: str,
    ) -> None:
        self._sock = sock
        self._selector = selector
        self.routes = dict(routes)
        self.role = role
        self.serving = False
        self._clients: dict[int, _Client] = {}
        self._unix_path: str | None = None
        if sock.family == socket.AF_UNIX:
            self._unix_path = sock.getsockname()
        hand_on(role, sock)

    @classmethod
    def open(
        cls,
        bind: str,
        options: SocketOptions,
        selector: selectors.BaseSelector,
        routes: Mapping[str, Route],
        role: str,
    ) -> Endpoint:
        """The old master's socket of ``role`` after a USR2 upgrade, else ``bind`` bound now.

        Raises:
            ConfigError: ``bind`` is not a valid address.
            BindError: it cannot be bound.
        """
        sock = inherited_listener(role) or create_socket(parse_bind(bind), options)
        sock.set_inheritable(False)  # the workers must not hold it; a USR2 fork does
        return cls(sock, selector, routes, role)

    def serve(self) -> None:
        """Start answering (accepting from the socket's queue)."""
        if not self.serving and self._sock.fileno() >= 0:
            self._selector.register(self._sock, selectors.EVENT_READ, self)
            self.serving = True

    @property
    def fds(self) -> list[int]:
        """The descriptors a forked worker must close."""
        return [self._sock.fileno(), *self._clients]

    def owns(self, data: object) -> bool:
        """Whether a selector key's data is this endpoint's."""
        return data is self or (
            isinstance(data, _Client) and self._clients.get(data.sock.fileno()) is data
        )

    def deadline(self) -> float | None:
        return min((client.deadline for client in self._clients.values()), default=None)

    def handle(self, data: object, now: float) -> None:
        """Act on a ready socket of ours (``data`` from its selector key)."""
        if data is self:
            self._accept(now)
        elif isinstance(data, _Client):
            if data.out is None:
                self._read(data)
            else:
                self._write(data)

    def expire(self, now: float) -> None:
        """Drop the clients past their deadline."""
        for client in [c for c in self._clients.values() if now >= c.deadline]:
            self._drop(client)

    def close(self, *, unlink: bool = True) -> None:
        """Stop accepting, answer the requests already accepted, and close;
        ``unlink`` removes a unix socket's file."""
        if self.serving:
            self._selector.unregister(self._sock)
            self.serving = False
        self._finish(FINISH_TIMEOUT)
        if self._sock.fileno() >= 0:
            hand_on(self.role, None)
            self._sock.close()
            if unlink and self._unix_path:
                with contextlib.suppress(OSError):
                    if stat.S_ISSOCK(os.stat(self._unix_path).st_mode):
                        os.remove(self._unix_path)

    def _finish(self, seconds: float) -> None:
        """Serve the clients already accepted, for at most ``seconds``, on a selector
        of their own (the master's holds sockets nobody reads any more); drop the rest."""
        if not self._clients:
            return
        own = selectors.DefaultSelector()
        for client in self._clients.values():
            self._selector.unregister(client.sock)
            events = selectors.EVENT_READ if client.out is None else selectors.EVENT_WRITE
            own.register(client.sock, events, client)
        self._selector = own  # _read, _write and _drop act on it from now on
        end = time.monotonic() + seconds
        try:
            while self._clients and (left := end - time.monotonic()) > 0:
                for key, _ in own.select(left):
                    self.handle(key.data, time.monotonic())
        finally:
            for client in list(self._clients.values()):
                self._drop(client)
            own.close()

    def _accept(self, now: float) -> None:
        try:
            sock, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        if len(self._clients) >= MAX_CLIENTS:
            sock.close()
            return
        sock.setblocking(False)
        client = _Client(sock, now + CLIENT_TIMEOUT)
        self._clients[sock.fileno()] = client
        self._selector.register(sock, selectors.EVENT_READ, client)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(client)
            return
        client.head += data
        end = client.head.find(b"\r\n\r\n")
        if end == -1:
            if len(client.head) > MAX_HEAD:
                self._respond(client, (431, TEXT, "request header too large\n"))
            return
        request_line = bytes(client.head[: client.head.find(b"\r\n")])
        parts = request_line.split()
        route = None
        if len(parts) == 3:
            route = self.routes.get(parts[1].split(b"?", 1)[0].decode("latin-1"))
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._respond(client, (400, TEXT, "bad request\n"))
        elif route is None:
            self._respond(client, (404, TEXT, f"not found; try {', '.join(self.routes)}\n"))
        elif parts[0] not in (b"GET", b"HEAD"):
            self._respond(client, (405, TEXT, "method not allowed\n"))
        else:
            self._respond(client, route(), head_only=parts[0] == b"HEAD")

    def _respond(self, client: _Client, reply: Reply, *, head_only: bool = False) -> None:
        status, content_type, text = reply
        body = text.encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
            f"content-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\n"
            "cache-control: no-store\r\n"
            "connection: close\r\n\r\n"
        ).encode()
        client.out = memoryview(head if head_only else head + body)
        self._selector.modify(client.sock, selectors.EVENT_WRITE, client)
        self._write(client)

    def _write(self, client: _Client) -> None:
        assert client.out is not None
        try:
            sent = client.sock.send(client.out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(client)
            return
        client.out = client.out[sent:]
        if not client.out:
            with contextlib.suppress(OSError):
                client.sock.shutdown(socket.SHUT_WR)
            self._drop(client)

    def _drop(self, client: _Client) -> None:
        fd = client.sock.fileno()
        if self._clients.pop(fd, None) is not None:
            self._selector.unregister(client.sock)
        client.sock.close()


class Endpoints:
    """The master's endpoints: one ``Endpoint`` per address, routes to one address merged.

    Args:
        selector: the master's selector.
    """

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self._selector = selector
        self._by_bind: dict[str, Endpoint] = {}

    def add(
        self, bind: str, routes: Mapping[str, Route], options: SocketOptions, role: str
    ) -> None:
        """Answer ``routes`` on ``bind`` (opened now, under ``role``, unless another
        route holds it already).

        Raises:
            ConfigError: ``bind`` is not a valid address.
            BindError: it cannot be bound.
        """
        if bind in self._by_bind:
            self._by_bind[bind].routes.update(routes)
        else:
            self._by_bind[bind] = Endpoint.open(bind, options, self._selector, routes, role)

    def serve(self) -> None:
        for endpoint in self._by_bind.values():
            endpoint.serve()

    @property
    def serving(self) -> bool:
        return all(endpoint.serving for endpoint in self._by_bind.values())

    @property
    def fds(self) -> list[int]:
        return [fd for endpoint in self._by_bind.values() for fd in endpoint.fds]

    def handle(self, data: object, now: float) -> bool:
        """Act on a ready socket if it is an endpoint's; False if it is not."""
        for endpoint in self._by_bind.values():
            if endpoint.owns(data):
                endpoint.handle(data, now)
                return True
        return False

    def expire(self, now: float) -> None:
        for endpoint in self._by_bind.values():
            endpoint.expire(now)

    def deadline(self) -> float | None:
        due = [d for e in self._by_bind.values() if (d := e.deadline()) is not None]
        return min(due, default=None)

    def close(self, *, unlink: bool = True) -> None:
        for endpoint in self._by_bind.values():
            endpoint.close(unlink=unlink)
        self._by_bind.clear()
