"""``HTTPStream`` against a recording connection: scope, message order, body flow.

The recording host stands in for the connection (the ``StreamHost`` seam);
the stream, the config and the worker context are the real ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hypercorn.config import Config
from hypercorn.shared.errors import UnexpectedMessageError
from hypercorn.worker.asgi.http import (
    BODY_HIGH_WATER,
    ClientDisconnectedError,
    HTTPStream,
    ResponseState,
    build_scope,
)
from hypercorn.worker.context import WorkerContext
from hypercorn.worker.protocol.events import (
    ConnectionInfo,
    InformationalResponse,
    OutboundEvent,
    RequestReceived,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
)

pytestmark = pytest.mark.asyncio

INFO = ConnectionInfo("h11", "http", ("10.0.0.1", 5000), ("10.0.0.2", 80))


class RecordingHost:
    """A ``StreamHost`` that keeps what the stream asks of its connection."""

    def __init__(self) -> None:
        self.sent: list[tuple[OutboundEvent, ...]] = []
        self.write_paused = False
        self.receive_paused: list[bool] = []
        self.finished: list[int] = []
        self.pushed: list[bytes] = []
        self.drained = asyncio.Event()
        self.native = 0  # file bytes ``send_file`` writes itself, at most
        self.files: list[tuple[int, int]] = []  # (offset, count) offered to ``send_file``

    def send_events(self, *events: OutboundEvent) -> None:
        self.sent.append(events)

    async def drain(self, stream_id: int | None = None) -> None:
        if self.write_paused:
            await self.drained.wait()

    async def send_file(self, stream_id: int, fd: int, offset: int, count: int) -> int:
        self.files.append((offset, count))
        return min(self.native, count)

    def set_receive_paused(self, stream_id: int, paused: bool) -> None:
        self.receive_paused.append(paused)

    def stream_finished(self, stream_id: int) -> None:
        self.finished.append(stream_id)

    def stream_blocked(self, stream_id: int) -> bool:
        return False

    def body_consumed(self, stream_id: int, size: int) -> None:
        """Nothing to give back: no flow control here."""

    def push(self, stream_id: int, path: bytes, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        self.pushed.append(path)

    def flat(self) -> list[OutboundEvent]:
        return [event for batch in self.sent for event in batch]


async def _noop_app(scope: Any, receive: Any, send: Any) -> None:
    pass


def make_stream(
    *, method: str = "GET", target: bytes = b"/", expects_continue: bool = False, **settings: Any
) -> tuple[HTTPStream, RecordingHost, WorkerContext]:
    settings.setdefault("include_date_header", False)
    config = Config.from_mapping(settings)
    ctx = WorkerContext(_noop_app, config, asyncio.get_running_loop(), {"k": "v"})
    host = RecordingHost()
    request = RequestReceived(1, method, target, ((b"host", b"h"),), "1.1", expects_continue)
    return HTTPStream(ctx, host, INFO, request, 0.0), host, ctx


def _scope(target: bytes) -> dict[str, Any]:
    request = RequestReceived(1, "GET", target, (), "1.1")
    return dict(build_scope(request, INFO, "/root", {"a": 1}))


async def test_scope_decodes_the_path_and_keeps_the_raw_parts() -> None:
    scope = _scope(b"/caf%C3%A9/%FF?x=%20&y")
    assert scope["path"] == "/caf\u00e9/\ufffd"
    assert scope["raw_path"] == b"/caf%C3%A9/%FF" and scope["query_string"] == b"x=%20&y"
    assert scope["root_path"] == "/root" and scope["state"] == {"a": 1}
    assert scope["client"] == ("10.0.0.1", 5000) and scope["server"] == ("10.0.0.2", 80)


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [(b"http://h:80/p?q=1", "/p", b"q=1"), (b"https://h", "/", b""), (b"*", "*", b"")],
)
async def test_scope_of_absolute_and_asterisk_forms(target: bytes, path: str, query: bytes) -> None:
    scope = _scope(target)
    assert (scope["path"], scope["query_string"]) == (path, query)


async def test_a_complete_body_gets_a_content_length_and_one_write() -> None:
    stream, host, _ = make_stream()
    await stream.send({"type": "http.response.start", "status": 200, "headers": [(b"x", b"1")]})
    assert host.sent == []  # held until the body
    await stream.send({"type": "http.response.body", "body": b"hello"})
    [batch] = host.sent
    start, data, end = batch
    assert isinstance(start, ResponseStarted) and isinstance(data, ResponseData)
    assert isinstance(end, ResponseEnded)
    assert start.headers == (
        (b"server", b"hypercorn-h11"),
        (b"x", b"1"),
        (b"content-length", b"5"),
    )
    assert stream.state is ResponseState.COMPLETE and host.finished == [1]


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
async def test_no_content_length_is_invented_where_it_would_be_wrong(
    method: str, status: int
) -> None:
    stream, host, _ = make_stream(method=method)
    await stream.send({"type": "http.response.start", "status": status})
    await stream.send({"type": "http.response.body"})
    start = host.flat()[0]
    assert isinstance(start, ResponseStarted)
    assert all(name != b"content-length" for name, _ in start.headers)


async def test_app_headers_override_defaults_and_transfer_encoding_is_dropped() -> None:
    stream, host, ctx = make_stream()
    ctx.draining = True
    headers = [(b"Server", b"mine"), (b"transfer-encoding", b"chunked")]
    await stream.send({"type": "http.response.start", "status": 200, "headers": headers})
    await stream.send({"type": "http.response.body", "body": b"x", "more_body": True})
    start = host.flat()[0]
    assert isinstance(start, ResponseStarted)
    assert start.headers == ((b"server", b"mine"), (b"connection", b"close"))


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "http.response.body"}],
        [{"type": "http.response.start", "status": 200}] * 2,
        [{"type": "http.response.trailers"}],
        [{"type": "websocket.send"}],
    ],
)
async def test_out_of_order_and_unknown_messages_raise(messages: list[dict[str, Any]]) -> None:
    stream, _, _ = make_stream()
    with pytest.raises(UnexpectedMessageError):
        for message in messages:
            await stream.send(message)  # type: ignore[arg-type]


_TO_STATE: dict[ResponseState, list[dict[str, Any]]] = {
    ResponseState.WAITING: [],
    ResponseState.STARTED: [{"type": "http.response.start", "status": 200, "trailers": True}],
    ResponseState.BODY: [
        {"type": "http.response.start", "status": 200, "trailers": True},
        {"type": "http.response.body", "body": b"a", "more_body": True},
    ],
    ResponseState.TRAILERS: [
        {"type": "http.response.start", "status": 200, "trailers": True},
        {"type": "http.response.body", "body": b"a"},
    ],
    ResponseState.COMPLETE: [
        {"type": "http.response.start", "status": 200},
        {"type": "http.response.body", "body": b"a"},
    ],
}
_MESSAGES = {
    "http.response.start": {"type": "http.response.start", "status": 200},
    "http.response.early_hint": {"type": "http.response.early_hint", "links": [b"</a>"]},
    "http.response.body": {"type": "http.response.body", "body": b"b", "more_body": True},
    "http.response.trailers": {"type": "http.response.trailers", "headers": []},
    "http.response.push": {"type": "http.response.push", "path": "/p", "headers": []},
    "http.response.pathsend": {"type": "http.response.pathsend", "path": __file__},
    "http.response.zerocopysend": {"type": "http.response.zerocopysend", "more_body": True},
    "http.response.debug": {"type": "http.response.debug", "info": {}},  # not offered
}
_ACCEPTED = {
    (ResponseState.WAITING, "http.response.start"),
    (ResponseState.WAITING, "http.response.early_hint"),
    (ResponseState.STARTED, "http.response.body"),
    (ResponseState.BODY, "http.response.body"),
    (ResponseState.TRAILERS, "http.response.trailers"),
    (ResponseState.STARTED, "http.response.pathsend"),
    (ResponseState.STARTED, "http.response.zerocopysend"),
    (ResponseState.BODY, "http.response.zerocopysend"),
}


@pytest.mark.parametrize("http2", [False, True], ids=["http/1.1", "http/2"])
@pytest.mark.parametrize("kind", list(_MESSAGES))
@pytest.mark.parametrize("state", list(ResponseState))
async def test_every_message_in_every_state(state: ResponseState, kind: str, http2: bool) -> None:
    """The send table: taken, ignored once complete, or out of order."""
    stream, host, ctx = make_stream()
    if http2:
        request = RequestReceived(1, "GET", b"/", ((b"te", b"trailers"),), "2")
        stream = HTTPStream(ctx, host, INFO, request, 0.0)
    if state is ResponseState.TRAILERS and not http2:
        return  # trailers are offered over HTTP/2 and HTTP/3 only
    for message in _TO_STATE[state]:
        await stream.send(message)  # type: ignore[arg-type]
    assert stream.state is state
    pushed = kind == "http.response.push" and http2
    with open(__file__, "rb") as own:  # the file a zerocopysend names
        message: Any = {**_MESSAGES[kind], "file": own}
        if (state, kind) in _ACCEPTED or (pushed and state is not ResponseState.COMPLETE):
            await stream.send(message)
        elif state is ResponseState.COMPLETE and (kind in _ACCEPTED_KINDS or pushed):
            before = host.flat()
            await stream.send(message)
            assert host.flat() == before  # ignored, as the spec says
        else:
            with pytest.raises(UnexpectedMessageError) as error:
                await stream.send(message)
            assert (error.value.state, error.value.message_type) == (state, kind)


_ACCEPTED_KINDS = {kind for _, kind in _ACCEPTED}


async def test_invalid_fields_raise() -> None:
    stream, _, _ = make_stream()
    with pytest.raises(ValueError):
        await stream.send({"type": "http.response.start", "status": 99, "headers": []})
    await stream.send({"type": "http.response.start", "status": 200, "headers": []})
    with pytest.raises(TypeError):
        await stream.send({"type": "http.response.body", "body": "text"})  # type: ignore[typeddict-item]


async def test_messages_after_completion_are_ignored() -> None:
    stream, host, _ = make_stream()
    await stream.send({"type": "http.response.start", "status": 200, "headers": []})
    await stream.send({"type": "http.response.body", "body": b"", "more_body": False})
    await stream.send({"type": "http.response.body", "body": b"late", "more_body": False})
    assert len(host.sent) == 1


async def test_send_waits_for_drain_while_writing_is_paused() -> None:
    stream, host, _ = make_stream()
    await stream.send({"type": "http.response.start", "status": 200, "headers": []})
    host.write_paused = True
    message: Any = {"type": "http.response.body", "body": b"x", "more_body": True}
    sending = asyncio.create_task(stream.send(message))
    await asyncio.sleep(0)
    assert not sending.done()
    host.drained.set()
    await asyncio.wait_for(sending, 5)


async def test_body_is_buffered_with_backpressure_and_handed_out_whole() -> None:
    stream, host, _ = make_stream(method="POST")
    stream.body_received(b"a" * BODY_HIGH_WATER)
    assert host.receive_paused == [True]
    stream.body_received(b"b")
    stream.body_ended()
    message = await stream.receive()
    assert message == {
        "type": "http.request",
        "body": b"a" * BODY_HIGH_WATER + b"b",
        "more_body": False,
    }
    assert host.receive_paused == [True, False]


async def test_too_many_small_chunks_also_pause_reading() -> None:
    stream, host, _ = make_stream(method="POST", max_app_queue_size=3)
    for _ in range(3):
        stream.body_received(b"x")
    assert host.receive_paused == [True]


async def test_100_continue_once_on_the_first_receive() -> None:
    stream, host, _ = make_stream(method="POST", expects_continue=True)
    receiving = asyncio.create_task(stream.receive())
    await asyncio.sleep(0)
    assert host.flat() == [InformationalResponse(1, 100)]
    stream.body_received(b"data")
    stream.body_ended()
    assert await asyncio.wait_for(receiving, 5) == {
        "type": "http.request",
        "body": b"data",
        "more_body": False,
    }
    assert len(host.sent) == 1


async def test_receive_after_the_body_waits_for_the_response_then_disconnects() -> None:
    stream, _, _ = make_stream()
    stream.body_ended()
    assert (await stream.receive())["type"] == "http.request"
    waiting = asyncio.create_task(stream.receive())
    await asyncio.sleep(0)
    assert not waiting.done()
    await stream.send({"type": "http.response.start", "status": 200, "headers": []})
    await stream.send({"type": "http.response.body", "body": b""})
    assert await asyncio.wait_for(waiting, 5) == {"type": "http.disconnect"}


async def test_disconnect_wakes_receive_and_send_raises_an_oserror() -> None:
    stream, host, _ = make_stream()
    waiting = asyncio.create_task(stream.receive())
    await asyncio.sleep(0)
    stream.closed()
    assert await asyncio.wait_for(waiting, 5) == {"type": "http.disconnect"}
    with pytest.raises(ClientDisconnectedError) as caught:
        await stream.send({"type": "http.response.start", "status": 200, "headers": []})
    assert isinstance(caught.value, OSError)
    assert host.finished == [1]
