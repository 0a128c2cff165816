"""HTTP/1.1 over real sockets: connection reuse, pipelining, framing, limits, timeouts."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import httpx
import pytest

from tests.e2e.conftest import close_raw, open_raw, read_response, running_server, scaled

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("worker_class")]


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the request body; headers carry the path and the client port."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await anyio.sleep(0.05)  # lets later pipelined requests arrive first
    headers = [
        (b"x-path", scope["path"].encode()),
        (b"x-client-port", str(scope["client"][1]).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def chunks_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    for part in (b"one,", b"two,", b"three"):
        await send({"type": "http.response.body", "body": part, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def sized_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


async def test_keep_alive_reuses_one_connection() -> None:
    async with running_server(echo_app) as server, httpx.AsyncClient() as client:
        ports = set()
        for _ in range(5):
            response = await client.get(f"{server.url}/x")
            assert response.status_code == 200
            ports.add(response.headers["x-client-port"])
    assert len(ports) == 1


async def test_default_headers_and_content_length_of_a_complete_body() -> None:
    async with running_server(echo_app) as server, httpx.AsyncClient() as client:
        response = await client.post(f"{server.url}/x", content=b"abc")
    assert response.content == b"abc"
    assert response.headers["content-length"] == "3"
    assert response.headers["server"] == "hypercorn-h11"
    assert "date" in response.headers


async def test_pipelined_requests_are_answered_in_order() -> None:
    async with running_server(echo_app) as server:
        reader, writer = await open_raw(server)
        writer.write(
            b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\na"
            b"POST /second HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nb"
            b"GET /third HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        answers = [await read_response(reader) for _ in range(3)]
        await close_raw(writer)
    assert [body for _, body in answers] == [b"a", b"b", b""]
    assert [head.split(b"x-path: ")[1].split(b"\r\n")[0] for head, _ in answers] == [
        b"/slow",
        b"/second",
        b"/third",
    ]


async def test_chunked_request_body_is_dechunked() -> None:
    async with running_server(echo_app) as server:
        reader, writer = await open_raw(server)
        writer.write(b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"5\r\nhello\r\n")
        await writer.drain()
        writer.write(b"6\r\n world\r\n0\r\n\r\n")
        head, body = await read_response(reader)
        await close_raw(writer)
    assert head.startswith(b"HTTP/1.1 200")
    assert body == b"hello world"


async def test_streamed_response_is_chunked() -> None:
    async with running_server(chunks_app) as server:
        reader, writer = await open_raw(server)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = await read_response(reader)
        await close_raw(writer)
    assert b"transfer-encoding: chunked" in head.lower()
    assert body == b"one,two,three"


async def test_100_continue_is_sent_when_the_app_reads_the_body() -> None:
    async with running_server(echo_app) as server:
        reader, writer = await open_raw(server)
        writer.write(
            b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), scaled(5))
        assert interim.startswith(b"HTTP/1.1 100")
        writer.write(b"12345")
        head, body = await read_response(reader)
        await close_raw(writer)
    assert head.startswith(b"HTTP/1.1 200") and body == b"12345"


async def test_head_response_has_no_body_and_keeps_the_connection() -> None:
    async with running_server(sized_app) as server:
        reader, writer = await open_raw(server)
        writer.write(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = await read_response(reader, no_body=True)
        assert b"content-length: 5" in head.lower()
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = await read_response(reader)
        await close_raw(writer)
    assert head.startswith(b"HTTP/1.1 200") and body == b"hello"


async def test_huge_header_gets_431() -> None:
    async with running_server(echo_app) as server:
        reader, writer = await open_raw(server)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
        head, _ = await read_response(reader)
        await close_raw(writer)
    assert head.startswith(b"HTTP/1.1 431")


async def test_malformed_request_gets_400() -> None:
    async with running_server(echo_app) as server:
        reader, writer = await open_raw(server)
        writer.write(b"GET / HTTP/1.1\r\nHost x\r\n\r\n")
        head, _ = await read_response(reader)
        rest = await asyncio.wait_for(reader.read(), scaled(5))
        await close_raw(writer)
    assert head.startswith(b"HTTP/1.1 400")
    assert rest == b""  # and the connection is closed


async def test_a_flood_of_empty_lines_gets_400_at_once() -> None:
    async with running_server(echo_app) as server:
        reader, writer = await open_raw(server)
        writer.write(b"\r\n" * 20_000 + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = await read_response(reader)
        rest = await asyncio.wait_for(reader.read(), scaled(5))
        await close_raw(writer)
    assert head.startswith(b"HTTP/1.1 400")
    assert rest == b""


async def test_keep_alive_timeout_closes_an_idle_connection() -> None:
    async with running_server(echo_app, keep_alive_timeout=0.2) as server:
        reader, writer = await open_raw(server)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_response(reader)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await asyncio.wait_for(reader.read(), scaled(5)) == b""
        assert loop.time() - started >= 0.15
        await close_raw(writer)


async def test_read_timeout_ends_a_stalled_request_head() -> None:
    async with running_server(echo_app, read_timeout=0.2, keep_alive_timeout=30) as server:
        reader, writer = await open_raw(server)
        writer.write(b"GET / HTTP/1.1\r\nHost:")
        data = await asyncio.wait_for(reader.read(), scaled(5))
        await close_raw(writer)
    assert data == b"" or data.startswith(b"HTTP/1.1 408")


async def test_body_timeout_answers_a_stalled_body_408() -> None:
    async with running_server(echo_app, body_timeout=0.2) as server:
        reader, writer = await open_raw(server)
        writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        head, _ = await read_response(reader)
        rest = await asyncio.wait_for(reader.read(), scaled(5))
        await close_raw(writer)
    assert head.startswith(b"HTTP/1.1 408")
    assert rest == b""


async def test_keep_alive_max_requests_closes_after_the_limit() -> None:
    async with running_server(echo_app, keep_alive_max_requests=2) as server:
        reader, writer = await open_raw(server)
        writer.write(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
        first, _ = await read_response(reader)
        writer.write(b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
        second, _ = await read_response(reader)
        rest = await asyncio.wait_for(reader.read(), scaled(5))
        await close_raw(writer)
    assert b"connection: close" not in first.lower()
    assert b"connection: close" in second.lower()
    assert rest == b""


async def test_server_names_answer_404_for_other_hosts() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await echo_app(scope, receive, send)

    async with (
        running_server(app, server_names=["example.com"]) as server,
        httpx.AsyncClient() as client,
    ):
        other = await client.get(f"{server.url}/other", headers={"host": "evil.test"})
        good = await client.get(f"{server.url}/good", headers={"host": "example.com:80"})
    assert other.status_code == 404
    assert good.status_code == 200
    assert seen == ["/good"]


async def test_many_concurrent_connections() -> None:
    async with running_server(echo_app) as server, httpx.AsyncClient() as client:
        responses = await asyncio.gather(
            *(client.post(f"{server.url}/n{i}", content=b"%d" % i) for i in range(50))
        )
    assert [r.content for r in responses] == [b"%d" % i for i in range(50)]
