"""File bodies (``http.response.pathsend``, ``http.response.zerocopysend``) to
real clients: httpx, curl, h2 and aioquic, over plain TCP, TLS, HTTP/2 and
HTTP/3, and Starlette's ``FileResponse``, which sends by path when offered;
each on every worker class (asyncio, uvloop, trio).

``os.sendfile`` is wrapped to count the bytes it sends (the real call still
runs): plain HTTP/1.1 sends every body byte by it, TLS and HTTP/2 and 3 none.
A file that shrinks or grows after the app measured it, a missing file and a
client gone mid-file each end one defined way, with a clear log.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h2.events
import h2.settings
import httpx
import pytest
import trustme

from hypercorn.worker.sendfile import UNSENT_LIMIT
from tests.e2e.conftest import (
    close_raw,
    make_config,
    open_raw,
    read_response,
    running_server,
    scaled,
    serving,
)
from tests.e2e.h3client import h3_connect
from tests.e2e.test_http2 import RawClient
from tests.e2e.test_http11_asgi import capturing_logger, until

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("worker_class")]

LARGE = 8 * 1024 * 1024


class Sendfile:
    """Bytes ``os.sendfile`` sent, while the fixture lasts."""

    sent = 0


@pytest.fixture
def sendfile(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Sendfile]]:
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        sent = real(out_fd, in_fd, offset, count)
        Sendfile.sent += sent
        return sent

    Sendfile.sent = 0
    monkeypatch.setattr(os, "sendfile", counting)
    yield Sendfile


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "large.bin"
    with path.open("wb") as file:
        for _ in range(LARGE // (1024 * 1024)):
            file.write(os.urandom(1024 * 1024))
    return path


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_app(path: Path) -> Any:
    """``/`` sends ``path`` by pathsend; ``/range?a-b`` bytes a..b-1 by zerocopysend;
    ``/missing`` a path that does not exist."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/range":
            start, end = map(int, scope["query_string"].split(b"-"))
            with path.open("rb") as file:
                message = {"type": "http.response.zerocopysend", "file": file}
                await send({**message, "offset": start, "count": end - start})
        else:
            target = path if scope["path"] == "/" else path.with_name("missing")
            await send({"type": "http.response.pathsend", "path": str(target)})

    return app


async def test_plain_http11_sends_large_files_by_sendfile_and_keeps_the_connection(
    large: Path, sendfile: type[Sendfile]
) -> None:
    expected = large.read_bytes()
    async with running_server(file_app(large)) as server:
        reader, writer = await open_raw(server)
        try:
            for _ in range(2):  # the same connection: kept alive after a file
                writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                head, body = await asyncio.wait_for(read_response(reader), scaled(20))
                assert head.startswith(b"HTTP/1.1 200 ")
                assert b"content-length: %d" % LARGE in head.lower()
                assert digest(body) == digest(expected)
        finally:
            await close_raw(writer)
        async with httpx.AsyncClient(timeout=scaled(10)) as client:
            response = await client.get(f"{server.url}/range?1000-500000")
    assert response.content == expected[1000:500000]
    assert sendfile.sent == 2 * LARGE + 499000  # every body byte


def _unsent_limit(fd: int) -> int:
    sock = socket.socket(fileno=fd)
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT)
    finally:
        sock.detach()


@pytest.mark.skipif(not hasattr(socket, "TCP_NOTSENT_LOWAT"), reason="Linux TCP option")
async def test_a_file_is_written_with_little_left_unsent_in_the_socket(
    large: Path, monkeypatch: pytest.MonkeyPatch, worker_class: str
) -> None:
    """Every ``sendfile`` call meets the socket's unsent bytes limited to
    ``UNSENT_LIMIT`` (``TCP_NOTSENT_LOWAT``; trio's socket streams hold 16 KiB
    of their own, which is kept), and the connection's own setting is back
    once the file is sent: the response after it is written as usual."""
    own = 16384 if worker_class == "trio" else 0
    seen: list[tuple[int, int]] = []
    real = os.sendfile

    def recording(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        seen.append((out_fd, _unsent_limit(out_fd)))
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", recording)
    expected = digest(large.read_bytes())
    async with running_server(file_app(large)) as server:
        reader, writer = await open_raw(server)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            head, body = await asyncio.wait_for(read_response(reader), scaled(20))
            assert head.startswith(b"HTTP/1.1 200 ") and digest(body) == expected
            assert seen and {limit for _, limit in seen} == {own or UNSENT_LIMIT}
            assert _unsent_limit(seen[0][0]) == own
            writer.write(b"GET /missing HTTP/1.1\r\nHost: a\r\n\r\n")
            head, _ = await asyncio.wait_for(read_response(reader), scaled(20))
            assert head.startswith(b"HTTP/1.1 500 ")  # the same connection serves on
        finally:
            await close_raw(writer)


async def test_curl_http11_and_h2c(large: Path, tmp_path: Path, sendfile: type[Sendfile]) -> None:
    """curl over HTTP/1.1 (rate-limited: the client sets the pace) and over h2c,
    where HTTP/2 frames the file: read and sent under its flow control."""
    async with running_server(file_app(large)) as server:
        for flags in (["--http1.1", "--limit-rate", "64M"], ["--http2-prior-knowledge"]):
            out = tmp_path / "out.bin"
            curl = await asyncio.create_subprocess_exec(
                "curl", "-sS", "--fail", "--max-time", str(scaled(20)), *flags,
                "-o", str(out), "-w", "%{http_version}", server.url + "/",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            version, _ = await asyncio.wait_for(curl.communicate(), scaled(30))
            assert curl.returncode == 0
            assert version == (b"1.1" if "--http1.1" in flags else b"2")
            assert digest(out.read_bytes()) == digest(large.read_bytes())
            if version == b"1.1":
                assert sendfile.sent == LARGE
    assert sendfile.sent == LARGE  # nothing more for h2c


@pytest.mark.parametrize("http2", [False, True], ids=["http/1.1", "h2"])
async def test_tls_reads_and_sends_the_file(
    large: Path, ca: trustme.CA, tls_files: dict[str, str], sendfile: type[Sendfile], http2: bool
) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    options: Any = {"verify": context, "http2": http2, "http1": not http2, "timeout": scaled(20)}
    async with (
        running_server(file_app(large), **tls_files) as server,
        httpx.AsyncClient(**options) as client,
    ):
        response = await client.get(server.url + "/")
        ranged = await client.get(server.url + "/range?7-70007")
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert response.headers["content-length"] == str(LARGE)
    assert digest(response.content) == digest(large.read_bytes())
    assert ranged.content == large.read_bytes()[7:70007]
    assert sendfile.sent == 0


async def test_h2c_keeps_the_clients_flow_control_window(large: Path) -> None:
    """A 16 KiB window: the server never sends past it (h2 would raise) and
    goes on as the client opens it."""
    size = 1024 * 1024
    async with running_server(file_app(large)) as server:
        client = RawClient(*await open_raw(server))
        client.conn.initiate_connection()
        client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 16384})
        client.flush()
        try:
            stream_id = client.request(b"/range?0-%d" % size)
            received = bytearray()
            ended = False
            while not ended:
                batch = await client.events()
                assert batch, "the server closed the connection"
                for event in batch:
                    if isinstance(event, h2.events.DataReceived):
                        received += event.data
                        length = event.flow_controlled_length
                        client.conn.acknowledge_received_data(length, stream_id)
                    ended = ended or isinstance(event, h2.events.StreamEnded)
                client.flush()
        finally:
            await close_raw(client.writer)
    assert bytes(received) == large.read_bytes()[:size]


async def test_http3_reads_and_sends_the_file(
    large: Path, tls_files: dict[str, str], sendfile: type[Sendfile]
) -> None:
    config = make_config(quic_bind=["127.0.0.1:0"], graceful_timeout=5, **tls_files)
    async with serving(file_app(large), config), h3_connect(config._quic_addresses[0][1]) as client:
        response = await client.request("GET", "/range?0-3000000")
    assert response.status == 200 and response.header(b"content-length") == b"3000000"
    assert response.body == large.read_bytes()[:3000000]
    assert sendfile.sent == 0


async def test_a_missing_file_is_a_500_and_the_connection_serves_on(large: Path) -> None:
    logger, capture = capturing_logger("missing-file")
    async with (
        running_server(file_app(large), errorlog=logger) as server,
        httpx.AsyncClient(timeout=scaled(10)) as client,
    ):
        missing = await client.get(server.url + "/missing")
        ranged = await client.get(server.url + "/range?0-10")
    assert missing.status_code == 500 and ranged.content == large.read_bytes()[:10]
    [error] = [r for r in capture.records if r.levelno >= logging.ERROR]
    assert error.exc_info is not None and isinstance(error.exc_info[1], FileNotFoundError)


@pytest.mark.parametrize("secure", [False, True], ids=["plain", "tls"])
async def test_a_client_gone_mid_file_is_no_error(
    large: Path, sendfile: type[Sendfile], ca: trustme.CA, tls_files: dict[str, str], secure: bool
) -> None:
    """The client resets with most of the file unsent: the transfer ends, no
    error is logged (the app's ``send`` raised ``ClientDisconnectedError``,
    logged at DEBUG) and the server serves the next client."""
    logger, capture = capturing_logger("gone-mid-file")
    settings: dict[str, Any] = {"errorlog": logger, **(tls_files if secure else {})}
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with running_server(file_app(large), **settings) as server:
        sock = socket.create_connection((server.host, server.port), timeout=scaled(10))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            if secure:  # the handshake off the loop, which may be the server's
                sock = context.wrap_socket(
                    sock, server_hostname="127.0.0.1", do_handshake_on_connect=False
                )
                await asyncio.to_thread(sock.do_handshake)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert (await asyncio.to_thread(sock.recv, 65536)).startswith(b"HTTP/1.1 200 ")
            if not secure:
                await until(lambda: sendfile.sent > 0)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00" * 2)
        finally:
            sock.close()  # a reset, with most of the file unsent
        await until(lambda: any("client disconnected" in r.getMessage() for r in capture.records))
        options: Any = {"verify": context, "timeout": scaled(10)}
        async with httpx.AsyncClient(**options) as client:
            again = await client.get(server.url + "/range?0-10")
    assert again.content == large.read_bytes()[:10]
    assert sendfile.sent < LARGE
    assert not [r for r in capture.records if r.levelno >= logging.WARNING]


def measured_app(path: Path, change: Any) -> Any:
    """Sends ``path`` by pathsend with the length it had when measured, after
    ``change(path)`` has shrunk or grown it (as another writer might)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        size = path.stat().st_size
        headers = [(b"content-length", b"%d" % size)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        change(path)
        await send({"type": "http.response.pathsend", "path": str(path)})

    return app


def _copy(large: Path, tmp_path: Path, size: int) -> tuple[Path, bytes]:
    data = large.read_bytes()[:size]
    path = tmp_path / "changing.bin"
    path.write_bytes(data)
    return path, data


async def test_a_file_shrunk_after_measuring_aborts_the_response(
    large: Path, tmp_path: Path, sendfile: type[Sendfile]
) -> None:
    """HTTP/1.1: what the file still holds is sent, then the connection closes
    short of the announced length (never passed off as complete), and an
    error names the shortfall."""
    size = 3 * 1024 * 1024
    path, data = _copy(large, tmp_path, size)
    logger, capture = capturing_logger("shrunk-file")

    def shrink(target: Path) -> None:
        os.truncate(target, size // 2)

    async with running_server(measured_app(path, shrink), errorlog=logger) as server:
        reader, writer = await open_raw(server)
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(10))
            body = await asyncio.wait_for(reader.read(), scaled(20))  # to EOF
        finally:
            await close_raw(writer)
        await until(lambda: any(r.levelno >= logging.ERROR for r in capture.records))
    assert b"content-length: %d" % size in head.lower()
    assert body == data[: size // 2]
    assert sendfile.sent == size // 2
    [error] = [r for r in capture.records if r.levelno >= logging.ERROR]
    assert f"ended {size - size // 2} bytes short: response aborted" in error.getMessage()


async def test_a_file_shrunk_after_measuring_resets_the_h2_stream(
    large: Path, tmp_path: Path, ca: trustme.CA, tls_files: dict[str, str]
) -> None:
    """TLS HTTP/2: the stream is reset after what the file held; the client
    never takes the short body for the whole one."""
    size = 1024 * 1024
    path, _ = _copy(large, tmp_path, size)
    context = ssl.create_default_context()
    ca.configure_trust(context)
    logger, capture = capturing_logger("shrunk-file-h2")
    options: Any = {"verify": context, "http2": True, "http1": False, "timeout": scaled(10)}

    def shrink(target: Path) -> None:
        os.truncate(target, 1000)

    async with (
        running_server(measured_app(path, shrink), errorlog=logger, **tls_files) as server,
        httpx.AsyncClient(**options) as client,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(server.url + "/")
        await until(lambda: any(r.levelno >= logging.ERROR for r in capture.records))
    assert any("bytes short: response aborted" in r.getMessage() for r in capture.records)


async def test_a_file_grown_after_measuring_is_sent_to_the_announced_length(
    large: Path, tmp_path: Path, sendfile: type[Sendfile]
) -> None:
    """The app's length rules: the bytes added later are not sent, and the
    connection serves the next request."""
    size = 1024 * 1024
    path, data = _copy(large, tmp_path, size)

    def grow(target: Path) -> None:
        with target.open("ab") as file:
            file.write(b"x" * 5000)

    async with running_server(measured_app(path, grow)) as server:
        reader, writer = await open_raw(server)
        try:
            bodies = []
            for _ in range(2):
                writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                _, body = await asyncio.wait_for(read_response(reader), scaled(20))
                bodies.append(body)
        finally:
            await close_raw(writer)
    assert bodies == [data, data + b"x" * 5000]
    assert sendfile.sent == 2 * size + 5000


class TestStarlette:
    @pytest.fixture
    def app(self, large: Path) -> Any:
        from starlette.applications import Starlette
        from starlette.responses import FileResponse
        from starlette.routing import Route

        async def download(request: Any) -> FileResponse:
            return FileResponse(large, media_type="application/octet-stream")

        return Starlette(routes=[Route("/large.bin", download, methods=["GET", "HEAD"])])

    async def test_file_response_goes_by_path(
        self, app: Any, large: Path, sendfile: type[Sendfile]
    ) -> None:
        async with running_server(app) as server, httpx.AsyncClient(timeout=scaled(10)) as client:
            response = await client.get(server.url + "/large.bin")
            head = await client.head(server.url + "/large.bin")
        assert response.status_code == 200
        assert digest(response.content) == digest(large.read_bytes())
        assert sendfile.sent == LARGE  # Starlette sent the path; we sent the bytes
        assert head.headers["content-length"] == str(LARGE) and head.content == b""

    async def test_range_is_the_apps(self, app: Any, large: Path, sendfile: type[Sendfile]) -> None:
        async with running_server(app) as server, httpx.AsyncClient(timeout=scaled(10)) as client:
            response = await client.get(
                server.url + "/large.bin", headers={"range": "bytes=100-199"}
            )
        assert response.status_code == 206
        assert response.headers["content-range"] == f"bytes 100-199/{LARGE}"
        assert response.content == large.read_bytes()[100:200]
        assert sendfile.sent == 0  # Starlette reads a range itself
