"""CPU per request of one worker's serving path, in process, without a network.

A fake transport feeds an ``HTTPConnection`` one request at a time (keep-alive
HTTP/1.1, HTTP/2 streams by prior knowledge, or text messages on one WebSocket)
and waits for its response (or echo);
the figure is the process CPU time per request, best of several rounds. No
kernel, no load generator: what it measures is our code and the loop, so
compare two builds with it on the same machine, not with ``make bench``.
``--only`` runs one scenario, e.g. under ``valgrind --tool=cachegrind`` with
``--rounds 1``, where the difference between two ``--requests`` counts is the
instructions of those requests alone (``h2c`` counts its h2 client too,
``h2c-server`` the server alone; both send ``--requests``/4 requests;
``http11-close`` is one connection per request, from ``connection_made`` to
``connection_lost``; ``http11-64k`` is keep-alive ``GET /64k``: a head and
one 64 KiB body).

    python benchmarks/inprocess.py [--requests N] [--rounds R] [--loop asyncio|uvloop]
                                   [--only http11|http11-unique|http11-close|http11-64k|
                                           h2c|h2c-server|ws|wsgi]
                                   [--lazy]

``--lazy`` gives the loop a task factory, which makes a worker start every
request's task on the loop's next turn, as on Python 3.11, where it would
otherwise (3.12+) run the app's first step eagerly: the lever, measured alone.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import h2.config
import h2.connection
import h2.events
import hpack
from apps import BIG, app, wsgi  # benchmarks/ is the script's directory, as for run.py

from hypercorn.config import Config
from hypercorn.shared.wrappers import WSGIWrapper
from hypercorn.worker.context import WorkerContext
from hypercorn.worker.io import HTTPConnection


class FakeTransport:
    """Just enough of ``asyncio.Transport`` for one connection: writes are collected."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self.expect = b""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 40000)}.get(
            name, default
        )

    def write(self, data: bytes) -> None:
        self.out.append(data)
        if self.waiter is not None and not self.waiter.done() and self.expect in data:
            self.waiter.set_result(None)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():  # fail, never hang
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    def abort(self) -> None:
        self.close()

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None: ...
    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None: ...
    def get_write_buffer_size(self) -> int:
        return 0


def _context(loop: asyncio.AbstractEventLoop, served: Any = app) -> WorkerContext:
    config = Config()
    config.keep_alive_max_requests = 10**9
    config.keep_alive_timeout = 3600.0  # a slow run (valgrind on a busy machine) is not idle
    return WorkerContext(served, config, loop, {})


def _connection(
    loop: asyncio.AbstractEventLoop, transport: FakeTransport | None = None, served: Any = app
) -> tuple[HTTPConnection, FakeTransport]:
    connection = HTTPConnection(_context(loop, served), secure=False)
    transport = transport or FakeTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    return connection, transport


async def http11(requests: int, unique: bool) -> float:
    loop = asyncio.get_running_loop()
    connection, transport = _connection(loop)
    transport.expect = b"Hello, world!"
    heads = [
        b"GET /?n=%d HTTP/1.1\r\nHost: bench\r\nCookie: id=%d\r\n\r\n" % (i, i)
        if unique
        else b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: inprocess\r\n\r\n"
        for i in range(requests)
    ]
    started = time.process_time()
    for head in heads:
        transport.waiter = loop.create_future()
        connection.data_received(head)
        await transport.waiter
    return (time.process_time() - started) / requests


async def http11_close(requests: int) -> float:
    """A connection per request: made, one ``Connection: close`` request, its
    response, the server's close, and the transport's ``connection_lost``."""
    loop = asyncio.get_running_loop()
    ctx = _context(loop)
    head = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    started = time.process_time()
    for _ in range(requests):
        connection = HTTPConnection(ctx, secure=False)
        transport = FakeTransport()
        transport.expect = b"Hello, world!"
        transport.waiter = loop.create_future()
        connection.connection_made(transport)  # type: ignore[arg-type]
        connection.data_received(head)
        await transport.waiter
        if not transport.closed:
            raise RuntimeError("the server kept a Connection: close connection open")
        connection.connection_lost(None)
    if ctx.connections:
        raise RuntimeError("a closed connection is still registered")
    return (time.process_time() - started) / requests


class CountingTransport(FakeTransport):
    """A transport that keeps no bytes: a response ends once its head and
    ``body`` bytes after it are written, however many writes that took."""

    def __init__(self, body: int) -> None:
        super().__init__()
        self.body = body
        self.left = -1  # bytes still due in this response; -1 before its head

    def write(self, data: bytes) -> None:
        self._count(data, len(data))

    def writelines(self, pieces: list[bytes]) -> None:
        self._count(pieces[0], sum(map(len, pieces)))

    def _count(self, first: bytes, size: int) -> None:
        left = self.left
        if left < 0:  # the head starts the response's first write
            left = self.body - (size - first.index(b"\r\n\r\n") - 4)
        else:
            left -= size
        if left > 0:
            self.left = left
            return
        self.left = -1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


async def http11_big(requests: int) -> float:
    loop = asyncio.get_running_loop()
    transport = CountingTransport(len(BIG))
    connection, _ = _connection(loop, transport)
    head = b"GET /64k HTTP/1.1\r\nHost: bench\r\nUser-Agent: inprocess\r\n\r\n"
    started = time.process_time()
    for _ in range(requests):
        transport.waiter = loop.create_future()
        connection.data_received(head)
        await transport.waiter
    return (time.process_time() - started) / requests


WSGI_CONNECTIONS = 64
"""Connections with a request in flight at once in the WSGI scenario, as under wrk."""


async def wsgi_hello(requests: int) -> float:
    """Keep-alive WSGI hello on ``WSGI_CONNECTIONS`` connections, each sending its
    next request as soon as its response is written (the figure counts every
    thread's CPU: the loop's and the WSGI threads')."""
    loop = asyncio.get_running_loop()
    wrapper = WSGIWrapper(wsgi, 2**20)
    head = b"GET / HTTP/1.1\r\nHost: bench\r\nUser-Agent: inprocess\r\n\r\n"
    done = loop.create_future()
    left = [requests]  # requests still to send
    answered = [0]

    def answer(connection: HTTPConnection) -> None:
        answered[0] += 1
        if left[0]:
            left[0] -= 1
            connection.data_received(head)
        elif answered[0] == requests and not done.done():
            done.set_result(None)

    class Client(FakeTransport):
        connection: HTTPConnection

        def write(self, data: bytes) -> None:
            if b"Hello, world!" in data:
                loop.call_soon(answer, self.connection)

    clients = []
    for _ in range(WSGI_CONNECTIONS):
        client = Client()
        client.connection, _ = _connection(loop, client, wrapper)
        clients.append(client.connection)
    started = time.process_time()
    for connection in clients[:requests]:
        left[0] -= 1
        connection.data_received(head)
    await done
    elapsed = time.process_time() - started
    wrapper.close()
    return elapsed / requests


async def h2c(requests: int) -> float:
    loop = asyncio.get_running_loop()
    connection, transport = _connection(loop)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    connection.data_received(client.data_to_send())
    await asyncio.sleep(0)
    client.receive_data(b"".join(transport.out))
    transport.out.clear()
    headers = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "b")]
    started = time.process_time()
    for _ in range(requests):
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, headers, end_stream=True)
        transport.waiter = loop.create_future()
        transport.expect = b"Hello, world!"
        connection.data_received(client.data_to_send())
        await transport.waiter
        for event in client.receive_data(b"".join(transport.out)):
            if isinstance(event, h2.events.StreamEnded):
                break
        transport.out.clear()
    return (time.process_time() - started) / requests


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big")
        + bytes((kind, flags))
        + stream_id.to_bytes(4, "big")
        + payload
    )


async def h2c_server(requests: int) -> float:
    """h2c, the server alone: the client's frames are made beforehand with ``hpack``."""
    loop = asyncio.get_running_loop()
    connection, transport = _connection(loop)
    encoder = hpack.Encoder()
    headers = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "b")]
    # HEADERS with END_STREAM and END_HEADERS, one stream each. The first block
    # fills the encoder's table; every later one is the same indexed block.
    first, repeated = encoder.encode(headers), encoder.encode(headers)
    chunks = [_frame(0x1, 0x5, 1 + 2 * i, repeated if i else first) for i in range(requests)]
    largest = 2**31 - 1  # windows that never close: no WINDOW_UPDATE is needed
    connection.data_received(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        + _frame(0x4, 0, 0, b"\x00\x04" + largest.to_bytes(4, "big"))
        + _frame(0x8, 0, 0, (largest - 65535).to_bytes(4, "big"))
        + _frame(0x4, 0x1, 0, b"")  # the server's SETTINGS acknowledged
    )
    await asyncio.sleep(0)
    transport.out.clear()
    transport.expect = b"Hello, world!"
    started = time.process_time()
    for chunk in chunks:
        transport.waiter = loop.create_future()
        connection.data_received(chunk)
        await transport.waiter
        transport.out.clear()
    return (time.process_time() - started) / requests


async def websocket(messages: int) -> float:
    loop = asyncio.get_running_loop()
    connection, transport = _connection(loop)
    transport.waiter = loop.create_future()
    transport.expect = b"101 Switching Protocols"
    connection.data_received(
        b"GET /ws HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await transport.waiter
    # A masked text frame "Hello, world!" (mask 0x01020304); the echo is unmasked.
    text = b"Hello, world!"
    mask = b"\x01\x02\x03\x04"
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(text))
    message = bytes((0x81, 0x80 | len(text))) + mask + masked
    transport.expect = text
    started = time.process_time()
    for _ in range(messages):
        transport.waiter = loop.create_future()
        connection.data_received(message)
        await transport.waiter
    elapsed = time.process_time() - started
    transport.out.clear()
    connection.data_received(b"\x88\x82" + mask + bytes((0x03 ^ 1, 0xE8 ^ 2)))
    await asyncio.sleep(0)
    return elapsed / messages


SCENARIOS = {
    "http11": "keep-alive hello",
    "http11-unique": "keep-alive hello, unique heads",
    "http11-close": "Connection: close hello (a connection each)",
    "http11-64k": "keep-alive 64 KiB responses",
    "h2c": "h2c hello (one stream at a time)",
    "h2c-server": "h2c hello, server only",
    "ws": "WebSocket echo (per message)",
    "wsgi": f"WSGI hello ({WSGI_CONNECTIONS} connections)",
}


def _plain_task(loop: asyncio.AbstractEventLoop, coroutine: Any, **options: Any) -> Any:
    return asyncio.Task(coroutine, loop=loop, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    parser.add_argument("--only", choices=SCENARIOS, help="one scenario")
    parser.add_argument("--lazy", action="store_true", help="no eager task starts (3.12+)")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    else:
        runner = asyncio.Runner()
    n = args.requests
    scenarios = {
        "http11": lambda: http11(n, False),
        "http11-unique": lambda: http11(n, True),
        "http11-close": lambda: http11_close(n),
        "http11-64k": lambda: http11_big(n),
        "h2c": lambda: h2c(n // 4),
        "h2c-server": lambda: h2c_server(n // 4),
        "ws": lambda: websocket(n),
        "wsgi": lambda: wsgi_hello(n),
    }
    with runner:
        if args.lazy:
            runner.get_loop().set_task_factory(_plain_task)
        for key, title in SCENARIOS.items():
            if args.only in (None, key):
                best = min(runner.run(scenarios[key]()) for _ in range(args.rounds))
                print(
                    f"{title:34} {best * 1e6:6.1f} µs CPU per request ({args.loop}, "
                    f"Python {sys.version.split()[0]}{', lazy' if args.lazy else ''})"
                )


if __name__ == "__main__":
    main()
