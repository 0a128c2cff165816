"""The ASGI side of HTTP/1.1 over real sockets: scope, errors, disconnects, flow control."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Flag, close_raw, open_raw, read_response, running_server, scaled

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("worker_class")]


class Capture(logging.Handler):
    """Keeps the records of a logger, for assertions."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def capturing_logger(name: str) -> tuple[logging.Logger, Capture]:
    logger = logging.getLogger(f"tests.e2e.{name}")
    logger.handlers.clear()
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    capture = Capture()
    logger.addHandler(capture)
    return logger, capture


async def until(condition: Any, seconds: float = 5) -> None:
    """Wait (bounded) for ``condition()`` to become true."""
    loop = asyncio.get_running_loop()
    end = loop.time() + scaled(seconds)
    while not condition():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_scope_follows_the_asgi_spec() -> None:
    scopes: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            scope["state"]["db"] = "ready"
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        scopes.append(scope)
        states.append(dict(scope["state"]))
        scope["state"]["mutated"] = True  # a request's copy must not leak to the next
        await send({"type": "http.response.start", "status": 204})
        await send({"type": "http.response.body"})

    async with running_server(app, root_path="/api") as server:
        reader, writer = await open_raw(server)
        writer.write(b"GET /a%20b/%C3%A9?x=1&y=%20 HTTP/1.1\r\nHost: h\r\nX-Test: v\r\n\r\n")
        await read_response(reader)
        writer.write(b"GET http://h/abs?q HTTP/1.1\r\nHost: h\r\n\r\n")
        await read_response(reader)
        await close_raw(writer)
    first, second = scopes
    assert first["type"] == "http"
    assert first["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert first["http_version"] == "1.1" and first["method"] == "GET"
    assert first["scheme"] == "http"
    assert first["path"] == "/a b/\u00e9"
    assert first["raw_path"] == b"/a%20b/%C3%A9"
    assert first["query_string"] == b"x=1&y=%20"
    assert first["root_path"] == "/api"
    assert (b"x-test", b"v") in [tuple(h) for h in first["headers"]]
    assert first["client"][0] == "127.0.0.1" and isinstance(first["client"][1], int)
    assert first["server"] == ("127.0.0.1", server.port)
    assert states == [{"db": "ready"}, {"db": "ready"}]
    assert "tls" not in first["extensions"]
    assert second["path"] == "/abs" and second["query_string"] == b"q"


async def test_app_exception_before_start_gives_500_and_one_log() -> None:
    logger, capture = capturing_logger("boom")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raise RuntimeError("boom")

    async with running_server(app, errorlog=logger) as server, httpx.AsyncClient() as client:
        response = await client.get(server.url)
        again = await client.get(server.url)  # the connection survives a 500
    assert response.status_code == 500 and again.status_code == 500
    errors = [r for r in capture.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2
    assert errors[0].exc_info is not None and "boom" in str(errors[0].exc_info[1])


async def test_app_exception_after_start_aborts_the_connection() -> None:
    logger, capture = capturing_logger("abort")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("mid-body")

    async with running_server(app, errorlog=logger) as server:
        reader, writer = await open_raw(server)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), scaled(5))
        await close_raw(writer)
    assert data.startswith(b"HTTP/1.1 200")
    assert b"partial" in data and not data.endswith(b"0\r\n\r\n")  # cut, not completed
    assert sum(r.levelno >= logging.ERROR for r in capture.records) == 1


@pytest.mark.parametrize("sent", [[], [{"type": "http.response.start", "status": 200}]])
async def test_app_returning_without_a_response_gives_500(sent: list[dict[str, Any]]) -> None:
    logger, capture = capturing_logger("noresponse")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for message in sent if scope["type"] == "http" else []:
            await send(message)

    async with running_server(app, errorlog=logger) as server, httpx.AsyncClient() as client:
        response = await client.get(server.url)
    assert response.status_code == 500
    assert sum(r.levelno >= logging.ERROR for r in capture.records) == 1


async def test_out_of_order_message_raises_inside_send() -> None:
    raised: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        try:
            await send({"type": "http.response.body", "body": b"x"})
        except Exception as error:
            raised.append(error)
        try:
            await send({"type": "http.bogus"})
        except Exception as error:
            raised.append(error)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})
        await send({"type": "http.response.body", "body": b"ignored"})  # after completion

    async with running_server(app) as server, httpx.AsyncClient() as client:
        response = await client.get(server.url)
    assert response.content == b"ok"
    assert [type(e).__name__ for e in raised] == ["UnexpectedMessageError"] * 2


async def test_client_disconnect_reaches_receive_and_send_raises_oserror() -> None:
    seen: list[str] = []
    done = Flag()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        seen.append((await receive())["type"])
        seen.append((await receive())["type"])  # blocks until the client goes
        try:
            await send({"type": "http.response.start", "status": 200})
        except OSError:
            seen.append("OSError")
        done.set()

    async with running_server(app) as server:
        _, writer = await open_raw(server)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        await until(lambda: len(seen) == 1)
        await close_raw(writer)
        await done.wait()
    assert seen == ["http.request", "http.disconnect", "OSError"]


def pattern(size: int) -> bytes:
    """``size`` bytes that show any piece lost, doubled or out of order."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


SIZES = (5, 8 * 1024 - 1, 8 * 1024, 64 * 1024, 1024 * 1024 + 7)


async def sized_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/<size>/length``: one body with its length; ``/<size>/chunked``: the
    same bytes in two sends, so chunked."""
    if scope["type"] != "http":
        return
    size, framing = scope["path"].strip("/").split("/")
    body = pattern(int(size))
    if framing == "length":
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200})
    await send({"type": "http.response.body", "body": body, "more_body": True})
    await send({"type": "http.response.body", "body": body[:3]})


async def test_bodies_of_every_size_arrive_whole_on_one_connection() -> None:
    """Small and large bodies (a large one leaves beside its head, uncopied)
    are framed and ordered alike, by length or in chunks, kept alive."""
    async with running_server(sized_app) as server, httpx.AsyncClient() as client:
        for size in SIZES:
            for framing, tail in (("length", b""), ("chunked", pattern(3))):
                response = await client.get(f"{server.url}/{size}/{framing}")
                assert response.content == pattern(size) + tail, (size, framing)
                assert ("content-length" in response.headers) == (framing == "length")
        head = await client.head(f"{server.url}/{64 * 1024}/length")
        assert head.content == b"" and head.headers["content-length"] == "65536"


async def test_slow_reader_back_pressures_the_app() -> None:
    chunk = b"x" * 65536
    total = 256  # 16 MiB: far more than socket (4 MiB at most) and transport buffers hold
    sent = [0]
    finished = Flag()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200})
        for _ in range(total):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent[0] += 1
        await send({"type": "http.response.body"})
        finished.set()

    async with running_server(app) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (server.host, server.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        # The app's sends stall: progress stops well short of the whole body.
        last, loop = -1, asyncio.get_running_loop()
        end = loop.time() + scaled(10)
        while sent[0] != last:
            assert loop.time() < end
            last = sent[0]
            await asyncio.sleep(0.2)
        assert 0 < sent[0] < total // 2 and not finished.is_set()
        _, body = await asyncio.wait_for(read_response(reader), scaled(30))
        await finished.wait()
        await close_raw(writer)
    assert len(body) == total * len(chunk)


async def test_unread_request_body_pauses_reading_until_the_app_receives() -> None:
    received: list[int] = []
    gate = Flag()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await gate.app_wait()
        while True:
            message = await receive()
            received.append(len(message["body"]))
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"%d" % sum(received)})

    size = 8 * 1024 * 1024
    async with running_server(app) as server:
        reader, writer = await open_raw(server)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(b"y" * size)
        # The client cannot push the whole body while the app does not read.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(writer.drain(), 0.5)
        gate.set()
        await asyncio.wait_for(writer.drain(), scaled(10))
        _, body = await read_response(reader)
        await close_raw(writer)
    assert body == b"%d" % size
    assert max(received) <= 512 * 1024  # handed out in bounded pieces


async def test_access_log_gets_one_line_per_response() -> None:
    logger, capture = capturing_logger("access")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 201})
            await send({"type": "http.response.body", "body": b"abcd"})

    async with (
        running_server(app, accesslog=logger, access_log_format="%(s)s %(b)s %(U)s") as server,
        httpx.AsyncClient() as client,
    ):
        await client.get(f"{server.url}/logged")
    assert [r.getMessage() for r in capture.records] == ["201 4 /logged"]


async def test_early_hints_are_sent_before_the_response() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        assert "http.response.early_hint" in scope["extensions"]
        await send({"type": "http.response.early_hint", "links": [b"</s.css>; rel=preload"]})
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body", "body": b"ok"})

    async with running_server(app) as server:
        reader, writer = await open_raw(server)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        hint = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
        head, body = await read_response(reader)
        await close_raw(writer)
    assert hint.startswith(b"HTTP/1.1 103") and b"</s.css>; rel=preload" in hint
    assert head.startswith(b"HTTP/1.1 200") and body == b"ok"


async def test_a_head_the_protocol_refuses_becomes_a_500() -> None:
    logger, capture = capturing_logger("badlength")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = [(b"content-length", b"abc")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"x"})

    async with running_server(app, errorlog=logger) as server, httpx.AsyncClient() as client:
        response = await client.get(server.url)
        again = await client.get(server.url)
    assert response.status_code == 500 and again.status_code == 500
    assert sum(r.levelno >= logging.ERROR for r in capture.records) == 2
