"""The master's Prometheus endpoint (``metrics_bind``): totals over every worker.

Theory of operation
-------------------
Workers count (``shared/metrics.py``) and send their cumulative counters with
each heartbeat; the master keeps the latest vector of each live worker in its
``WorkerHandle``. ``Totals`` adds, when a worker is reaped, that worker's last
counters to the totals of the workers gone, so a counter is the sum over live
workers plus the retired ones: it never goes backwards across a reload, a
recycle or a crash. The open-connections gauge is summed over live workers
only. The master counts itself what only it sees: worker restarts (a worker
that exited without being asked to: a crash, a kill for a heartbeat timeout,
a failed boot) and reloads (each HUP, ``--reload`` change, or control-command
reload that starts a new generation).

Serving stays inside the master's one synchronous loop (see
``docs/discussion/metrics.md``): ``MetricsEndpoint`` owns a non-blocking
listening socket and its few client sockets, all registered in the master's
selector. Each client is read until the end of its request head, answered
with one response (``connection: close``) written as the socket accepts it,
and closed; a client that is too slow (``CLIENT_TIMEOUT``) or too large
(``MAX_HEAD``) is dropped, and beyond ``MAX_CLIENTS`` a new connection is
closed at once, so the endpoint can neither block nor starve the loop that
supervises the workers. The text is rendered on request from the totals; it
costs the master nothing between scrapes.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import stat
from collections.abc import Callable, Iterable

from hypercorn.shared.metrics import (
    BUCKETS,
    GAUGE_SLOTS,
    SLOTS,
    STATUS_CLASSES,
    buckets,
    latency_sum,
    open_connections,
    statuses,
)
from hypercorn.shared.sockets import SocketOptions, create_socket, parse_bind
from hypercorn.supervisor.upgrade import METRICS, hand_on, inherited_listener

__all__ = ["CONTENT_TYPE", "MetricsEndpoint", "Totals"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CLIENT_TIMEOUT = 10.0  # seconds a scrape may take, from accept to the last byte
MAX_HEAD = 8192  # bytes of request head read before giving up on a client
MAX_CLIENTS = 16


class Totals:
    """The master's side of the counters: the workers gone, restarts, reloads."""

    def __init__(self) -> None:
        self.retired = [0] * SLOTS
        self.restarts = 0
        self.reloads = 0

    def worker_gone(self, values: list[int]) -> None:
        """Keep the final counters of a worker that exited (gauges excepted)."""
        for index, value in enumerate(values):
            if index not in GAUGE_SLOTS:
                self.retired[index] += value

    def render(self, live: Iterable[list[int]], workers: int) -> str:
        """The Prometheus text (format 0.0.4) of the totals.

        Args:
            live: the latest counters of each live worker.
            workers: the number of workers serving (READY).
        """
        total = list(self.retired)
        connections = 0
        for values in live:
            connections += open_connections(values)
            for index, value in enumerate(values):
                if index not in GAUGE_SLOTS:
                    total[index] += value
        lines: list[str] = []

        def family(name: str, kind: str, doc: str) -> None:
            lines.append(f"# HELP hypercorn_{name} {doc}")
            lines.append(f"# TYPE hypercorn_{name} {kind}")

        family("requests_total", "counter", "HTTP responses sent, by status class.")
        for klass, count in zip(STATUS_CLASSES, statuses(total), strict=True):
            lines.append(f'hypercorn_requests_total{{status="{klass}"}} {count}')
        name = "request_duration_seconds"
        family(name, "histogram", "Time from a request's head to the end of its response.")
        cumulative = 0
        per_bucket = buckets(total)
        for bound, count in zip((*map(repr, BUCKETS), "+Inf"), per_bucket, strict=True):
            cumulative += count
            lines.append(f'hypercorn_{name}_bucket{{le="{bound}"}} {cumulative}')
        lines.append(f"hypercorn_{name}_sum {latency_sum(total)!r}")
        lines.append(f"hypercorn_{name}_count {cumulative}")
        family("open_connections", "gauge", "Client connections open in the workers.")
        lines.append(f"hypercorn_open_connections {connections}")
        family("workers", "gauge", "Workers serving.")
        lines.append(f"hypercorn_workers {workers}")
        family(
            "worker_restarts_total",
            "counter",
            "Workers replaced after exiting unasked (crash, timeout, failed boot).",
        )
        lines.append(f"hypercorn_worker_restarts_total {self.restarts}")
        family("reloads_total", "counter", "Rolling reloads started (HUP, file changes).")
        lines.append(f"hypercorn_reloads_total {self.reloads}")
        return "\n".join(lines) + "\n"


class _Client:
    """One scrape in progress."""

    __slots__ = ("deadline", "head", "out", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.head = bytearray()
        self.out: memoryview | None = None


class MetricsEndpoint:
    """``GET /metrics`` served from the master's selector; see the module docstring.

    Args:
        sock: the listening socket (non-blocking).
        selector: the master's selector; the endpoint registers its sockets there.
        render: returns the current text.
    """

    def __init__(
        self, sock: socket.socket, selector: selectors.BaseSelector, render: Callable[[], str]
    ) -> None:
        self._sock = sock
        self._selector = selector
        self._render = render
        self._clients: dict[int, _Client] = {}
        self._unix_path: str | None = None
        if sock.family == socket.AF_UNIX:
            self._unix_path = sock.getsockname()
        selector.register(sock, selectors.EVENT_READ, self)

    @classmethod
    def open(
        cls,
        bind: str,
        options: SocketOptions,
        selector: selectors.BaseSelector,
        render: Callable[[], str],
    ) -> MetricsEndpoint:
        """Bind ``bind`` and serve it.

        Raises:
            ConfigError: ``bind`` is not a valid address.
            BindError: it cannot be bound.
        """
        # After a USR2 upgrade, the old master's socket: the address is never bound twice.
        sock = inherited_listener(METRICS) or create_socket(parse_bind(bind), options)
        sock.set_inheritable(False)  # the workers must not hold it; a USR2 fork does
        hand_on(METRICS, sock)
        return cls(sock, selector, render)

    @property
    def fds(self) -> list[int]:
        """The descriptors a forked worker must close."""
        return [self._sock.fileno(), *self._clients]

    def owns(self, data: object) -> bool:
        """Whether a selector key's data is the endpoint's."""
        return data is self or isinstance(data, _Client)

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
        """Stop serving; ``unlink`` removes a unix socket's file."""
        for client in list(self._clients.values()):
            self._drop(client)
        if self._sock.fileno() >= 0:
            hand_on(METRICS, None)
            self._selector.unregister(self._sock)
            self._sock.close()
            if unlink and self._unix_path:
                with contextlib.suppress(OSError):
                    if stat.S_ISSOCK(os.stat(self._unix_path).st_mode):
                        os.remove(self._unix_path)

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
                self._respond(client, 431, "request header too large\n")
            return
        request_line = bytes(client.head[: client.head.find(b"\r\n")])
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            self._respond(client, 400, "bad request\n")
        elif parts[1].split(b"?", 1)[0] != b"/metrics":
            self._respond(client, 404, "not found; try /metrics\n")
        elif parts[0] not in (b"GET", b"HEAD"):
            self._respond(client, 405, "method not allowed\n")
        else:
            self._respond(client, 200, self._render(), head_only=parts[0] == b"HEAD")

    def _respond(self, client: _Client, status: int, text: str, *, head_only: bool = False) -> None:
        reasons = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                   431: "Request Header Fields Too Large"}  # fmt: skip
        body = text.encode()
        content_type = CONTENT_TYPE if status == 200 else "text/plain; charset=utf-8"
        head = (
            f"HTTP/1.1 {status} {reasons[status]}\r\n"
            f"content-type: {content_type}\r\n"
            f"content-length: {len(body)}\r\n"
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
