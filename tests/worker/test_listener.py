"""``Listener``: the worker's own accept loop, the request limit and closing
without resets."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import hpack
import hyperframe.frame
import pytest
from h2.config import H2Configuration
from h2.connection import H2Connection

from hypercorn.worker.io import HTTPConnection
from hypercorn.worker.serve import WorkerHooks, serve_sockets
from tests.e2e.conftest import make_config, scaled, serving
from tests.supervisor.harness import request

REQUEST = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})  # fmt: skip
    await send({"type": "http.response.body", "body": b"ok"})


class LimitedWorker:
    """``serve_sockets`` with a request limit, in the test's loop.

    Its application answers ``ok``; on ``/slow`` it first reports that it has
    the request (``slow_started``) and answers once the test releases it
    (``slow_release``).
    """

    def __init__(self, limit: int | None, **settings: Any) -> None:
        self.ready = asyncio.Event()
        self.slow_started = asyncio.Event()
        self.slow_release = asyncio.Event()
        self.config = make_config(**settings)
        self.sockets = self.config.create_sockets()
        listener = self.sockets.insecure_sockets[0]
        self.port = listener.getsockname()[1]
        # The master's copy, as in a real worker: the accept queue outlives ours.
        self.queue = listener.dup()
        self.stopped = asyncio.Event()
        self.trigger = asyncio.Event()
        self.task = asyncio.create_task(
            serve_sockets(
                self.app,
                self.config,
                self.sockets,
                shutdown_trigger=self.trigger.wait,
                hooks=WorkerHooks(
                    ready=self.ready.set,
                    request_limit=limit,
                    limit_reached=lambda n: self.stopped.set(),
                ),
            )
        )

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/slow":
            self.slow_started.set()
            await self.slow_release.wait()
        await app(scope, receive, send)

    async def close(self) -> None:
        self.trigger.set()
        try:
            await asyncio.wait_for(self.task, scaled(10))
        finally:
            self.sockets.close()
            self.queue.close()


pytestmark = pytest.mark.asyncio


@contextlib.asynccontextmanager
async def limited(limit: int | None, **settings: Any) -> AsyncIterator[LimitedWorker]:
    server = LimitedWorker(limit, **settings)
    try:
        await asyncio.wait_for(server.ready.wait(), scaled(10))  # lifespan startup done
        yield server
    finally:
        await server.close()


TCP_ESTABLISHED = 1  # tcpi_state in the kernel's ``struct tcp_info`` (include/net/tcp_states.h)


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of ``sock``: ``ESTABLISHED`` until the peer's FIN or reset."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


async def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    """Poll ``condition`` on the loop until it holds; fail after ``seconds``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not condition():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.005)


def connect(port: int) -> socket.socket:
    """A client connection the kernel completes on its own (queued for accept)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=scaled(5))
    sock.setblocking(False)
    return sock


async def receive_all(sock: socket.socket) -> bytes:
    """Everything until the server's EOF (a reset raises)."""
    loop = asyncio.get_running_loop()
    data = b""
    while chunk := await asyncio.wait_for(loop.sock_recv(sock, 65536), scaled(5)):
        data += chunk
    return data


async def receive_response(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while not data.endswith(b"ok"):
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), scaled(5))
        assert chunk, data
        data += chunk
    return data


async def test_the_limit_stops_accepting_within_one_batch() -> None:
    async with limited(3) as worker:
        await _limit_in_one_batch(worker)


async def _limit_in_one_batch(worker: LimitedWorker) -> None:
    clients = [connect(worker.port) for _ in range(6)]  # all queued before one accept
    for client in clients:
        client.send(REQUEST)
    await asyncio.wait_for(worker.stopped.wait(), scaled(5))
    # Three accepted and served, with connection: close; three left queued.
    served = []
    for client in clients[:3]:
        data = await receive_all(client)
        assert data.startswith(b"HTTP/1.1 200") and b"connection: close" in data.lower()
        served.append(data)
    queued = []
    worker.queue.settimeout(scaled(1))
    for _ in range(3):
        queued.append(worker.queue.accept()[0])
    worker.queue.setblocking(False)
    with pytest.raises(BlockingIOError):
        worker.queue.accept()
    assert all(sock.recv(100) == REQUEST for sock in queued)  # never read by the worker
    for sock in queued + clients:
        sock.close()


async def test_an_idle_one_request_connection_is_drained_at_the_limit_as_on_reload() -> None:
    async with limited(2, keep_alive_timeout=5, graceful_timeout=10) as worker:
        await _idle_at_limit(worker)


async def _idle_at_limit(worker: LimitedWorker) -> None:
    loop = asyncio.get_running_loop()
    first = connect(worker.port)
    await loop.sock_sendall(first, REQUEST)
    data = await receive_response(first)
    assert b"connection: close" not in data.lower()  # kept alive; one request: not counted
    second = connect(worker.port)  # counted: the limit is reached
    await asyncio.wait_for(worker.stopped.wait(), scaled(5))
    # The client of the idle connection sends its next request after all: it is
    # served (over the limit) with connection: close, never met with a close.
    await asyncio.sleep(0.2)
    await loop.sock_sendall(first, REQUEST)
    data = await receive_all(first)
    assert data.startswith(b"HTTP/1.1 200") and b"connection: close" in data.lower()
    await loop.sock_sendall(second, REQUEST)
    data = await receive_all(second)
    assert data.startswith(b"HTTP/1.1 200") and b"connection: close" in data.lower()
    first.close()
    second.close()


async def test_closing_with_unread_bytes_sends_no_reset() -> None:
    async with limited(None, h11_max_incomplete_size=1024) as worker:
        await _unread_at_close(worker)


async def _unread_at_close(worker: LimitedWorker) -> None:
    loop = asyncio.get_running_loop()
    client = connect(worker.port)
    # The response closes the connection while more waits unread in the
    # socket (the worker stopped reading: too much input held); closing then
    # would reset the connection, and could destroy the response.
    request = b"GET /slow HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    await loop.sock_sendall(client, request + b"x" * 2048)
    await asyncio.wait_for(worker.slow_started.wait(), scaled(5))
    await loop.sock_sendall(client, b"x" * 100_000)
    worker.slow_release.set()
    # The response and the server's close reach the client before it reads.
    await wait_until(lambda: tcp_state(client) != TCP_ESTABLISHED, scaled(5))
    data = await receive_all(client)
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok")
    client.close()


async def test_an_http2_connection_counted_at_the_limit_is_served() -> None:
    async with limited(1) as worker:
        await _h2_at_limit(worker)


async def _h2_at_limit(worker: LimitedWorker) -> None:
    loop = asyncio.get_running_loop()
    client = connect(worker.port)  # counted: the limit is reached at once
    await asyncio.wait_for(worker.stopped.wait(), scaled(5))
    h2 = H2Connection(H2Configuration(client_side=True))
    h2.initiate_connection()
    h2.send_headers(1, [(":method", "GET"), (":path", "/"), (":scheme", "http"),
                        (":authority", "test")], end_stream=True)  # fmt: skip
    await loop.sock_sendall(client, h2.data_to_send())
    # A GOAWAY sent before the request was read would have refused it. (Framed
    # by hand: h2's client state machine stops at a GOAWAY.)
    data = await receive_all(client)
    frames = []
    while data:
        frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    heads = [f for f in frames if isinstance(f, hyperframe.frame.HeadersFrame)]
    assert [f.stream_id for f in heads] == [1]
    assert (b":status", b"200") in list(hpack.Decoder().decode(heads[0].data, raw=True))
    goaway = [f for f in frames if isinstance(f, hyperframe.frame.GoAwayFrame)]
    assert [f.last_stream_id for f in goaway] == [1]
    assert not any(isinstance(f, hyperframe.frame.RstStreamFrame) for f in frames)
    client.close()


@pytest.mark.parametrize(
    ("host", "client_host"),
    [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("[::1]", "::1")],
)
async def test_the_scope_names_the_local_address_on_one_address_and_on_a_wildcard(
    host: str, client_host: str
) -> None:
    """A listener bound to one address names it without asking each socket;
    on a wildcard the socket's own local address is read. The peer's address
    is the one ``accept`` returned (IPv6: host and port, as ASGI has it)."""
    seen: list[dict[str, Any]] = []

    async def recording(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(scope)
        await app(scope, receive, send)

    async with serving(recording, make_config(bind=[f"{host}:0"])) as address:
        reader, writer = await asyncio.open_connection(client_host, address.port)
        writer.write(REQUEST)
        assert (await asyncio.wait_for(reader.read(65536), scaled(5))).startswith(b"HTTP/1.1 200")
        local = writer.get_extra_info("sockname")
        writer.close()
        await writer.wait_closed()
    assert seen[0]["server"] == (client_host, address.port)
    assert seen[0]["client"] == (client_host, local[1])


def live_connections() -> int:
    """``HTTPConnection`` objects alive (the cyclic collector finds the rest)."""
    return sum(1 for o in gc.get_objects() if type(o) is HTTPConnection)


async def test_a_closed_connection_is_freed_without_the_cycle_collector() -> None:
    """A worker closing connections one after another leaves no reference cycle
    behind: each connection is freed as it is lost, not by a collection of the
    whole heap, and with the collector off nothing accumulates."""
    gc.collect()
    gc.disable()
    try:
        async with limited(None) as worker:
            before = live_connections()
            for _ in range(5):
                client = connect(worker.port)
                await asyncio.get_running_loop().sock_sendall(
                    client, b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
                )
                assert (await receive_all(client)).endswith(b"ok")
                client.close()
            await wait_until(lambda: live_connections() <= before, scaled(5))
    finally:
        gc.enable()


async def test_a_loop_with_a_task_factory_of_its_own_makes_the_connecting_tasks() -> None:
    """Each accepted socket is connected by a task the worker makes itself
    (eagerly, where the loop starts tasks so); a task factory set on the loop
    (by the app or a tool) makes that task instead, as it makes the request's.
    The client runs in a thread, so every task the factory sees is the worker's."""
    made: list[asyncio.Task[Any]] = []

    def factory(loop: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    loop = asyncio.get_running_loop()
    async with limited(None) as worker:
        loop.set_task_factory(factory)
        try:
            answer = await asyncio.wait_for(
                loop.run_in_executor(None, request, worker.port), scaled(10)
            )
        finally:
            loop.set_task_factory(None)
        assert answer == (200, "ok")
    assert len(made) == 2, made  # the connecting task and the request's
