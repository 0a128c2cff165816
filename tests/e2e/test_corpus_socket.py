"""Replay the HTTP/1.1 request corpus over a real socket against a real worker.

Every case is sent on its own connection. The application records each
request it receives (keyed by the client's port) and answers ``200 ok``; the
test reads the responses and checks that the application saw exactly the
expected requests and that the server answered with the expected status,
then closed, or kept serving when nothing was refused.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from tests.corpus_http1 import Case, ExpectedRequest, load_cases
from tests.e2e.conftest import ServerAddress, scaled, server_thread

# Over a plain socket the I/O layer hands the HTTP/2 preface to the HTTP/2
# protocol (prior knowledge); tests/e2e/test_http2.py covers that path.
CASES = [case for case in load_cases() if case.name != "version-h2-preface"]
seen: dict[int, list[ExpectedRequest]] = {}


async def recording_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return  # the body was cut short: not a complete request
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
    request = ExpectedRequest(
        scope["method"], target, tuple(scope["headers"]), body, scope["http_version"]
    )
    seen.setdefault(scope["client"][1], []).append(request)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def server() -> Iterator[ServerAddress]:
    with server_thread(recording_app, keep_alive_timeout=30) as address:
        yield address


class Responses:
    """Reads responses from a blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.eof = False

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        self.eof = not data
        self.buffer += data
        return bool(data)

    def next(self) -> tuple[int, bytes] | None:
        """The next (status, body), or None at EOF."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                return None
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.lower().split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            if not self._fill():
                break
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, body

    def at_eof(self) -> bool:
        return not self.buffer and not self._fill()


def _target(request: ExpectedRequest) -> tuple[bytes, bytes]:
    path, _, query = request.target.partition(b"?")
    return path, query


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_case_over_a_socket(server: ServerAddress, case: Case) -> None:
    with socket.create_connection((server.host, server.port), timeout=scaled(5)) as sock:
        port = sock.getsockname()[1]
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(case.raw)  # may be refused early: the answer is on its way
        responses = Responses(sock)
        statuses = []
        for _ in case.expected_requests:
            response = responses.next()
            assert response is not None, "connection closed before a 200"
            statuses.append(response[0])
        if case.expected_status is not None:
            response = responses.next()
            assert response is not None, "no error response"
            statuses.append(response[0])
        else:
            sock.shutdown(socket.SHUT_WR)
        assert responses.at_eof()
    expected_statuses = [200] * len(case.expected_requests)
    if case.expected_status is not None:
        expected_statuses.append(case.expected_status)
    assert statuses == expected_statuses
    got = seen.pop(port, [])
    assert [(r.method, _target(r), r.headers, r.body, r.http_version) for r in got] == [
        (r.method, _target(r), r.headers, r.body, r.http_version) for r in case.expected_requests
    ]
