"""The asyncio I/O layer's ``sendfile``: a real ``HTTPConnection`` on a real
asyncio transport over a socket pair (Unix, or TCP on 127.0.0.1), with the
client's end read by the test.

``os.sendfile`` is wrapped to count its calls (the real call still runs), so a
test tells a body that left by ``sendfile`` from one that was read and written.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hypercorn.config import Config
from hypercorn.worker.asgi.http import ClientDisconnectedError
from hypercorn.worker.context import WorkerContext
from hypercorn.worker.io import HTTPConnection
from hypercorn.worker.sendfile import UNSENT_LIMIT
from tests.e2e.conftest import scaled

pytestmark = pytest.mark.asyncio

SIZE = 8 * 1024 * 1024  # far more than a socket pair buffers
GET = b"GET /file HTTP/1.1\r\nHost: a\r\n\r\n"


class Calls:
    """What ``os.sendfile`` was asked and answered (the real call runs)."""

    def __init__(self) -> None:
        self.sent = 0
        self.blocked = 0
        self.calls = 0


@pytest.fixture
def sendfile_calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    calls = Calls()
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        calls.calls += 1
        try:
            sent = real(out_fd, in_fd, offset, count)
        except BlockingIOError:
            calls.blocked += 1
            raise
        calls.sent += sent
        return sent

    monkeypatch.setattr(os, "sendfile", counting)
    return calls


@pytest.fixture
def content(tmp_path: Path) -> Path:
    path = tmp_path / "content.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


class Peer:
    """The client's end of the pair, and what the server's app did."""

    def __init__(self, sock: socket.socket, connection: HTTPConnection) -> None:
        self.sock = sock
        self.connection = connection
        self.loop = asyncio.get_running_loop()
        self.received = bytearray()
        self.outcomes: list[str] = []

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendall(self.sock, data)

    async def read_until(self, size: int) -> bytes:
        async with asyncio.timeout(scaled(10)):
            while len(self.received) < size:
                data = await self.loop.sock_recv(self.sock, 1 << 20)
                if not data:
                    break
                self.received += data
        return bytes(self.received)


@pytest_asyncio.fixture
async def serve(content: Path) -> AsyncIterator[Any]:
    """Start a connection whose app answers ``/file`` by ``pathsend`` (or by
    ``http.response.body`` then ``zerocopysend`` for ``/mixed``)."""
    peers: list[Peer] = []

    async def start(*, tcp: bool = False, **settings: Any) -> Peer:
        outcomes: list[str] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            path = scope["path"]
            length = {"/file": SIZE, "/mixed": 2 * SIZE}.get(path)  # /chunked: none
            headers = [(b"content-length", b"%d" % length)] if length else []
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            try:
                if path != "/file":
                    body = {"type": "http.response.body", "body": b"<" * SIZE, "more_body": True}
                    await send(body)
                    with content.open("rb") as file:
                        await send({"type": "http.response.zerocopysend", "file": file})
                else:
                    await send({"type": "http.response.pathsend", "path": str(content)})
            except ClientDisconnectedError:
                outcomes.append("disconnected")
                raise
            outcomes.append("sent")

        config = Config()
        for name, value in settings.items():
            setattr(config, name, value)
        loop = asyncio.get_running_loop()
        ctx = WorkerContext(app, config, loop, {})
        server, client = _tcp_pair() if tcp else socket.socketpair()
        for sock in (server, client):
            sock.setblocking(False)
        connection = HTTPConnection(ctx, secure=False)
        await loop.connect_accepted_socket(lambda: connection, server)
        peer = Peer(client, connection)
        peer.outcomes = outcomes
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.connection.abort()
        peer.sock.close()
    await asyncio.sleep(0)  # connection_lost callbacks


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return server, client


async def _until(condition: Any) -> None:
    async with asyncio.timeout(scaled(10)):
        while not condition():
            await asyncio.sleep(0.005)


async def test_the_file_leaves_by_sendfile_between_its_head_and_the_next_response(
    serve: Any, content: Path, sendfile_calls: Calls
) -> None:
    peer = await serve()
    await peer.send(GET + GET)  # pipelined: the second answer must follow the whole file
    data = await peer.read_until(2 * SIZE)
    first_head, rest = data.split(b"\r\n\r\n", 1)
    second_head = rest[SIZE:].split(b"\r\n\r\n", 1)[0]
    assert first_head.startswith(b"HTTP/1.1 200 ") and second_head.startswith(b"HTTP/1.1 200 ")
    data = await peer.read_until(len(first_head) + len(second_head) + 8 + 2 * SIZE)
    body = content.read_bytes()
    assert data == first_head + b"\r\n\r\n" + body + second_head + b"\r\n\r\n" + body
    assert sendfile_calls.sent == 2 * SIZE  # every body byte, none read into Python
    assert peer.outcomes == ["sent", "sent"]


async def test_a_client_that_does_not_read_holds_the_app_in_send(
    serve: Any, sendfile_calls: Calls
) -> None:
    peer = await serve()
    await peer.send(GET)
    await _until(lambda: sendfile_calls.blocked)  # the socket is full
    await asyncio.sleep(0)
    assert peer.outcomes == []  # the app's send still waits
    await peer.read_until(SIZE)
    await _until(lambda: peer.outcomes)
    assert peer.outcomes == ["sent"] and sendfile_calls.sent == SIZE


async def test_a_client_gone_mid_file_ends_the_send_as_a_disconnect(
    serve: Any, sendfile_calls: Calls
) -> None:
    peer = await serve()
    await peer.send(GET)
    await _until(lambda: sendfile_calls.blocked)
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    peer.sock.close()  # unread data and a zero linger: a reset
    await _until(lambda: peer.outcomes)
    assert peer.outcomes == ["disconnected"]
    transport = peer.connection.transport
    await _until(lambda: transport is None or transport.is_closing())


async def test_a_client_that_half_closes_mid_file_ends_it(
    serve: Any, sendfile_calls: Calls
) -> None:
    peer = await serve()
    await peer.send(GET)
    await _until(lambda: sendfile_calls.blocked)
    peer.sock.shutdown(socket.SHUT_WR)  # HTTP/1.1 takes the FIN for the client gone
    await _until(lambda: peer.outcomes)
    assert peer.outcomes == ["disconnected"]


async def test_bytes_queued_in_the_transport_leave_before_the_file(
    serve: Any, content: Path, sendfile_calls: Calls
) -> None:
    """Body the transport still buffers (the socket was full) leaves first."""
    peer = await serve()
    await peer.send(b"GET /mixed HTTP/1.1\r\nHost: a\r\n\r\n")
    data = await peer.read_until(2 * SIZE)
    await _until(lambda: peer.outcomes)
    body = data.split(b"\r\n\r\n", 1)[1]
    assert body == b"<" * SIZE + content.read_bytes()
    assert sendfile_calls.sent == SIZE and peer.outcomes == ["sent"]


async def test_a_chunked_body_is_read_and_written_in_chunks(
    serve: Any, content: Path, sendfile_calls: Calls
) -> None:
    peer = await serve()
    await peer.send(b"GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
    data = await peer.read_until(2 * SIZE + 1000)
    while not data.endswith(b"0\r\n\r\n"):
        data = await peer.read_until(len(data) + 1)
    assert _unchunk(data.split(b"\r\n\r\n", 1)[1]) == b"<" * SIZE + content.read_bytes()
    assert sendfile_calls.calls == 0  # each piece needs its chunk line


def _unchunk(data: bytes) -> bytes:
    out = bytearray()
    while True:
        line, data = data.split(b"\r\n", 1)
        size = int(line, 16)
        if not size:
            return bytes(out)
        out += data[:size]
        data = data[size + 2 :]


async def test_a_client_gone_before_a_read_file_ends_it_at_once(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The first write of a chunked file body finds the client gone: the rest
    is neither read nor written (asyncio warns of writes to a lost socket)."""
    peer = await serve()
    await peer.send(b"GET /chunked HTTP/1.1\r\nHost: a\r\n\r\n")
    peer.sock.close()
    await _until(lambda: peer.outcomes)
    assert peer.outcomes == ["disconnected"]
    assert not [r for r in caplog.records if r.name == "asyncio"]


SIOCOUTQNSD = 0x894B  # Linux: bytes in a TCP socket's send queue not sent yet


def _unsent(sock: Any) -> int:
    count = bytearray(4)
    fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, count)
    return int.from_bytes(count, "little")


@pytest.mark.skipif(not hasattr(socket, "TCP_NOTSENT_LOWAT"), reason="Linux TCP option")
async def test_a_file_queues_little_unsent_in_a_tcp_socket_and_restores_its_setting(
    serve: Any, content: Path, sendfile_calls: Calls
) -> None:
    """While the client does not read, the socket holds about ``UNSENT_LIMIT``
    bytes TCP has not sent, not as much as its send buffer takes; once the
    file is sent the socket's setting is the system's default again."""
    peer = await serve(tcp=True)
    transport = peer.connection.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    await peer.send(GET)
    await _until(lambda: sendfile_calls.blocked)  # the socket took all it would
    notsent_lowat = socket.TCP_NOTSENT_LOWAT
    assert sock.getsockopt(socket.IPPROTO_TCP, notsent_lowat) == UNSENT_LIMIT
    assert 0 < _unsent(sock) <= 2 * UNSENT_LIMIT  # one buffer's worth of overshoot at most
    data = await peer.read_until(SIZE)
    await _until(lambda: peer.outcomes)
    assert data.split(b"\r\n\r\n", 1)[1] == content.read_bytes()
    assert peer.outcomes == ["sent"] and sendfile_calls.sent == SIZE
    assert sock.getsockopt(socket.IPPROTO_TCP, notsent_lowat) == 0
