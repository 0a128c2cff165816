"""WSGI applications over a real socket: environ, limits, streaming, close()."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import scaled, server_thread

# WSGI runs in threads above the transport: asyncio stands for uvloop too.
pytestmark = [
    pytest.mark.usefixtures("worker_class"),
    pytest.mark.worker_classes("asyncio", "trio"),
]

StartResponse = Callable[..., Any]


def echo_environ(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    body = environ["wsgi.input"].read()
    seen = [
        f"{key}={environ.get(key)}"
        for key in (
            "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE",
            "CONTENT_LENGTH", "SERVER_PROTOCOL", "HTTP_X_CUSTOM", "wsgi.url_scheme",
        )
    ]  # fmt: skip
    payload = ("\n".join(seen) + f"\nbody={body.decode()}").encode()
    start_response("201 Created", [("Content-Type", "text/plain"), ("X-Wsgi", "yes")])
    return [payload]


def test_environ_and_response() -> None:
    with server_thread(echo_environ, root_path="/mount") as address:
        response = httpx.post(
            f"{address.url}/mount/a%20b/c?q=1&r=2",
            content=b"hello",
            headers={"content-type": "text/plain", "x-custom": "v"},
            timeout=scaled(10),
        )
    assert response.status_code == 201
    assert response.headers["x-wsgi"] == "yes"
    lines = dict(line.split("=", 1) for line in response.text.splitlines())
    assert lines["REQUEST_METHOD"] == "POST"
    assert lines["SCRIPT_NAME"] == "/mount"
    assert lines["PATH_INFO"] == "/a b/c"
    assert lines["QUERY_STRING"] == "q=1&r=2"
    assert lines["CONTENT_TYPE"] == "text/plain" and lines["CONTENT_LENGTH"] == "5"
    assert lines["SERVER_PROTOCOL"] == "HTTP/1.1" and lines["HTTP_X_CUSTOM"] == "v"
    assert lines["wsgi.url_scheme"] == "http" and lines["body"] == "hello"


def test_body_over_the_limit_gets_413_without_calling_the_app() -> None:
    calls: list[int] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        calls.append(1)
        start_response("200 OK", [])
        return [b"ok"]

    with server_thread(app, wsgi_max_body_size=1024) as address:
        small = httpx.post(address.url, content=b"x" * 1024, timeout=scaled(10))
        large = httpx.post(address.url, content=b"x" * 4096, timeout=scaled(10))
    assert small.status_code == 200
    assert large.status_code == 413
    assert calls == [1]


def test_exception_before_start_response_is_a_500() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        raise RuntimeError("boom")

    with server_thread(app) as address:
        response = httpx.get(address.url, timeout=scaled(10))
    assert response.status_code == 500


class Streaming:
    """A response iterable that records how far it got and whether it was closed."""

    def __init__(self, chunks: int, size: int) -> None:
        self.chunks, self.size = chunks, size
        self.produced = 0
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.chunks):
            self.produced += 1
            yield b"x" * self.size

    def close(self) -> None:
        self.closed.set()


def test_streaming_response_is_complete_and_closed() -> None:
    body = Streaming(chunks=50, size=1000)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return body

    with server_thread(app) as address:
        response = httpx.get(address.url, timeout=scaled(10))
    assert response.content == b"x" * 50_000
    assert response.headers.get("transfer-encoding") == "chunked"
    assert body.closed.wait(scaled(5))


def test_slow_reader_back_pressures_the_wsgi_thread_and_disconnect_closes() -> None:
    body = Streaming(chunks=10_000, size=64 * 1024)  # 640 MB if nothing held it back

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return body

    with server_thread(app) as address:
        client = socket.create_connection(address[:2], timeout=scaled(10))
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        client.recv(1024)
        # The producer stalls once the socket buffers are full: wait until it stops moving.
        deadline = time.monotonic() + scaled(10)
        last = -1
        while time.monotonic() < deadline and body.produced != last:
            last = body.produced
            time.sleep(0.2)
        assert body.produced < 200, body.produced  # held back well before the end
        client.close()
        assert body.closed.wait(scaled(10)), "close() was not called after the disconnect"
