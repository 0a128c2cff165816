"""``WebSocketStream`` against a recording connection: scope, message order, flow.

The recording host stands in for the connection (the ``StreamHost`` seam);
the stream, the config and the worker context are the real ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hypercorn.config import Config
from hypercorn.shared.errors import UnexpectedMessageError
from hypercorn.worker.asgi.websocket import WebSocketState, WebSocketStream
from hypercorn.worker.context import WorkerContext
from hypercorn.worker.protocol.events import (
    ConnectionInfo,
    RequestReceived,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
    StreamAborted,
    WebSocketAccept,
    WebSocketClose,
    WebSocketSend,
)
from tests.worker.asgi.test_http import RecordingHost

pytestmark = pytest.mark.asyncio

INFO = ConnectionInfo("h11", "https", ("10.0.0.1", 5000), ("10.0.0.2", 443))
HEADERS = (
    (b"host", b"h"),
    (b"connection", b"upgrade"),
    (b"upgrade", b"websocket"),
    (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-protocol", b"a, b"),
)


def make_stream(
    app: Any = None, headers: Any = HEADERS, **settings: Any
) -> tuple[WebSocketStream, RecordingHost, WorkerContext]:
    settings.setdefault("include_date_header", False)
    config = Config.from_mapping(settings)

    async def noop(scope: Any, receive: Any, send: Any) -> None:
        pass

    ctx = WorkerContext(app or noop, config, asyncio.get_running_loop(), {"k": "v"})
    host = RecordingHost()
    request = RequestReceived(1, "GET", b"/chat?x=1", headers, "1.1")
    return WebSocketStream(ctx, host, INFO, request, 0.0), host, ctx


async def settle(ctx: WorkerContext) -> None:
    if ctx.tasks:
        await asyncio.wait_for(asyncio.gather(*ctx.tasks.values()), 5)


async def test_scope() -> None:
    stream, _, _ = make_stream()
    scope = stream.scope
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "wss"
    assert (scope["path"], scope["query_string"]) == ("/chat", b"x=1")
    assert list(scope["subprotocols"]) == ["a", "b"]
    assert scope["state"] == {"k": "v"}
    assert "websocket.http.response" in scope.get("extensions", {})


async def test_connect_then_messages_then_disconnect() -> None:
    stream, host, _ = make_stream()
    assert await stream.receive() == {"type": "websocket.connect"}
    await stream.send({"type": "websocket.accept", "subprotocol": "b"})
    [accept] = host.flat()
    assert isinstance(accept, WebSocketAccept)
    assert accept.subprotocol == "b"
    assert (b"server", b"hypercorn-wsproto") in accept.headers
    stream.message_received("text")
    stream.message_received(b"bin")
    stream.closed(1000, "bye")
    assert await stream.receive() == {"type": "websocket.receive", "bytes": None, "text": "text"}
    assert await stream.receive() == {"type": "websocket.receive", "bytes": b"bin", "text": None}
    disconnect = {"type": "websocket.disconnect", "code": 1000, "reason": "bye"}
    assert await stream.receive() == disconnect
    assert await stream.receive() == disconnect
    assert host.finished == [1]


async def test_send_text_and_bytes_and_close() -> None:
    stream, host, _ = make_stream()
    await stream.receive()
    await stream.send({"type": "websocket.accept"})
    await stream.send({"type": "websocket.send", "text": "t"})
    await stream.send({"type": "websocket.send", "bytes": bytearray(b"b")})
    await stream.send({"type": "websocket.close", "code": 4000, "reason": "r"})
    await stream.send({"type": "websocket.send", "text": "ignored"})
    assert host.flat()[1:] == [
        WebSocketSend(1, "t"),
        WebSocketSend(1, b"b"),
        WebSocketClose(1, 4000, "r"),
    ]
    assert stream.state is WebSocketState.CLOSED


async def test_send_needs_text_or_bytes() -> None:
    stream, _, _ = make_stream()
    await stream.send({"type": "websocket.accept"})
    with pytest.raises(TypeError):
        await stream.send({"type": "websocket.send"})


async def test_subprotocol_header_is_refused() -> None:
    stream, _, _ = make_stream()
    with pytest.raises(ValueError):
        await stream.send(
            {"type": "websocket.accept", "headers": [(b"sec-websocket-protocol", b"a")]}
        )


async def test_close_before_accept_is_403() -> None:
    stream, host, _ = make_stream()
    await stream.send({"type": "websocket.close"})
    started, ended = host.flat()
    assert isinstance(started, ResponseStarted)
    assert started.status_code == 403
    assert isinstance(ended, ResponseEnded)
    assert stream.state is WebSocketState.CLOSED


async def test_denial_response() -> None:
    stream, host, _ = make_stream()
    await stream.send(
        {"type": "websocket.http.response.start", "status": 401, "headers": [(b"a", b"b")]}
    )
    assert host.flat() == []  # held until the body
    await stream.send({"type": "websocket.http.response.body", "body": b"x", "more_body": True})
    await stream.send({"type": "websocket.http.response.body", "body": b"y"})
    events = host.flat()
    assert isinstance(events[0], ResponseStarted)
    assert events[0].status_code == 401
    assert events[1:] == [ResponseData(1, b"x"), ResponseData(1, b"y"), ResponseEnded(1)]


@pytest.mark.parametrize(
    ("setup", "message", "state"),
    [
        ([], {"type": "websocket.send", "text": "x"}, WebSocketState.HANDSHAKE),
        ([], {"type": "websocket.http.response.body"}, WebSocketState.HANDSHAKE),
        ([], {"type": "http.response.start"}, WebSocketState.HANDSHAKE),
        ([{"type": "websocket.accept"}], {"type": "websocket.accept"}, WebSocketState.CONNECTED),
        (
            [{"type": "websocket.accept"}],
            {"type": "websocket.http.response.start", "status": 200},
            WebSocketState.CONNECTED,
        ),
        (
            [{"type": "websocket.http.response.start", "status": 200}],
            {"type": "websocket.accept"},
            WebSocketState.RESPONSE,
        ),
        (
            [{"type": "websocket.http.response.start", "status": 200}],
            {"type": "websocket.send", "text": "x"},
            WebSocketState.RESPONSE,
        ),
    ],
)
async def test_message_order(
    setup: list[dict[str, Any]], message: dict[str, Any], state: WebSocketState
) -> None:
    stream, _, _ = make_stream()
    for step in setup:
        await stream.send(step)  # type: ignore[arg-type]
    with pytest.raises(UnexpectedMessageError) as info:
        await stream.send(message)  # type: ignore[arg-type]
    assert info.value.state is state
    assert info.value.message_type == message["type"]


async def test_everything_after_close_is_ignored() -> None:
    stream, host, _ = make_stream()
    await stream.send({"type": "websocket.accept"})
    await stream.send({"type": "websocket.close"})
    for message in (
        {"type": "websocket.send", "text": "x"},
        {"type": "websocket.accept"},
        {"type": "websocket.close"},
        {"type": "anything"},
    ):
        await stream.send(message)  # type: ignore[arg-type]
    assert len(host.flat()) == 2


async def test_receive_queue_pauses_reading() -> None:
    stream, host, _ = make_stream(max_app_queue_size=3)
    await stream.receive()
    for index in range(3):
        stream.message_received(str(index))
    assert host.receive_paused == [True]
    await stream.receive()
    assert host.receive_paused == [True, False]


async def test_app_crash_after_accept_is_1011() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        raise RuntimeError("boom")

    stream, host, ctx = make_stream(app)
    stream.start()
    await settle(ctx)
    assert host.flat()[-1] == WebSocketClose(1, 1011, "")


async def test_app_return_after_accept_is_1000() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})

    stream, host, ctx = make_stream(app)
    stream.start()
    await settle(ctx)
    assert host.flat()[-1] == WebSocketClose(1, 1000, "")


async def test_app_crash_mid_denial_aborts() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.http.response.start", "status": 400})
        await send({"type": "websocket.http.response.body", "body": b"x", "more_body": True})
        raise RuntimeError("boom")

    stream, host, ctx = make_stream(app)
    stream.start()
    await settle(ctx)
    assert host.flat()[-1] == StreamAborted(1)


async def test_bad_handshake_is_answered_without_the_app() -> None:
    calls: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append(scope)

    stream, host, ctx = make_stream(app, headers=((b"host", b"h"),))
    stream.start()
    await settle(ctx)
    started = host.flat()[0]
    assert isinstance(started, ResponseStarted)
    assert started.status_code == 426
    assert calls == []


async def test_shutdown_closes_with_1001() -> None:
    stream, host, _ = make_stream()
    stream.shutdown()  # not accepted yet: nothing to close
    assert host.flat() == []
    await stream.send({"type": "websocket.accept"})
    stream.shutdown()
    assert host.flat()[-1] == WebSocketClose(1, 1001, "")
    await stream.send({"type": "websocket.send", "text": "ignored"})
    assert len(host.flat()) == 2


async def test_a_cancelled_receive_loses_no_message() -> None:
    """A receive() given up on (a timeout, a cancelled task) takes no message with it."""
    stream, _, _ = make_stream()
    await stream.receive()
    await stream.send({"type": "websocket.accept"})
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(stream.receive(), 0.05)
    stream.message_received("after a timeout")
    message = await asyncio.wait_for(stream.receive(), 5)
    assert message["text"] == "after a timeout"

    waiting = asyncio.create_task(stream.receive())
    await asyncio.sleep(0)  # the task now waits for a message
    stream.message_received("raced")
    waiting.cancel()  # cancelled after the message woke it, before it ran
    with pytest.raises(asyncio.CancelledError):
        await waiting
    message = await asyncio.wait_for(stream.receive(), 5)
    assert message["text"] == "raced"
