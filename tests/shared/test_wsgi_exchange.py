"""The hand-off between a WSGI thread and the loop (``shared.wsgi.Exchange``):
complete responses in one post, streamed ones chunk by chunk, and the client
leaving mid-stream.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hypercorn.shared.wsgi import (
    STREAM_BUFFER,
    Exchange,
    Inbox,
    WSGIClientGoneError,
    WSGIResponder,
    serve,
)
from tests.shared import test_wrappers
from tests.shared.test_wrappers import TIMEOUT, Channel, call, http_scope

pytestmark = pytest.mark.asyncio

wrapper_factory = test_wrappers.wrapper_factory


class ClosingList(list[bytes]):
    """A complete body (a list) that also has ``close()``, as some frameworks return."""

    def __init__(self, chunks: list[bytes], fail: bool = False) -> None:
        super().__init__(chunks)
        self.fail, self.closed = fail, 0

    def close(self) -> None:
        self.closed += 1
        if self.fail:
            raise OSError("close failed")


async def test_a_list_goes_out_whole_and_is_closed_once() -> None:
    body = ClosingList([b"a", b"", b"b"])
    posts: list[int] = []

    def app(environ: Any, start_response: Any) -> ClosingList:
        start_response("200 OK", [("Content-Length", "2")])
        return body

    def run_then_count(job: Callable[[], None]) -> None:
        # The call runs to its end before the loop relays anything: what it
        # queued meanwhile is every post it made.
        thread = threading.Thread(target=job)
        thread.start()
        thread.join(TIMEOUT)
        responder: WSGIResponder = getattr(job, "__self__")  # noqa: B009
        posts.extend(len(post[0]) for post in responder._batches)

    channel = Channel()
    inbox = Inbox(asyncio.get_running_loop())
    await asyncio.wait_for(
        serve(app, 1024, http_scope(), channel.receive, channel.send, inbox, run_then_count),  # type: ignore[arg-type]
        TIMEOUT,
    )
    assert posts == [3]  # head and both chunks, in the thread's one (last) post
    assert body.closed == 1
    assert channel.status == 200 and channel.body == b"ab" and channel.complete


async def test_close_failing_after_a_complete_list_still_sends_it(wrapper_factory: Any) -> None:
    body = ClosingList([b"done"], fail=True)

    def app(environ: Any, start_response: Any) -> ClosingList:
        start_response("200 OK", [])
        return body

    channel = Channel()
    with pytest.raises(OSError, match="close failed"):
        await call(wrapper_factory(app), channel)
    assert body.closed == 1
    assert channel.status == 200 and channel.body == b"done" and channel.complete


async def test_exc_info_before_the_first_chunk_of_a_stream_wins(wrapper_factory: Any) -> None:
    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b""  # an empty chunk does not send the head
        try:
            raise ValueError("late")
        except ValueError:
            start_response("502 Bad Gateway", [("X-Error", "1")], sys.exc_info())
        yield b"sorry"

    channel = Channel()
    await call(wrapper_factory(app), channel)
    assert channel.status == 502 and channel.headers == [(b"x-error", b"1")]
    assert channel.body == b"sorry" and channel.complete


async def test_a_failing_send_stops_an_endless_stream(wrapper_factory: Any) -> None:
    closed = threading.Event()
    errors: list[BaseException] = []

    class Failing(Channel):
        async def send(self, message: dict[str, Any]) -> None:
            if message.get("body"):
                raise ConnectionResetError("client gone")
            await super().send(message)

    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            while True:
                yield b"x" * 1024
        except BaseException as error:
            errors.append(error)
            raise
        finally:
            closed.set()

    channel = Failing()
    with pytest.raises(ConnectionResetError):  # send's error, not the thread's
        await call(wrapper_factory(app), channel)
    assert closed.is_set()  # the call returns once the thread has stopped
    assert errors == [] or isinstance(errors[0], GeneratorExit)
    assert [m["type"] for m in channel.sent] == ["http.response.start"]


async def test_a_write_past_the_buffer_waits_for_the_client(wrapper_factory: Any) -> None:
    written: list[int] = []
    release = asyncio.Event()
    blocked = asyncio.Event()

    class Slow(Channel):
        async def send(self, message: dict[str, Any]) -> None:
            if message.get("body"):
                blocked.set()
                await release.wait()
            await super().send(message)

    def app(environ: Any, start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [])
        for index in range(4):
            write(b"x" * (STREAM_BUFFER // 2))
            written.append(index)
        return []

    channel = Slow()
    task = asyncio.create_task(call(wrapper_factory(app), channel))
    await asyncio.wait_for(blocked.wait(), TIMEOUT)
    await asyncio.sleep(0.2)
    assert written == [0, 1]  # the third write would put the thread past the buffer
    release.set()
    await asyncio.wait_for(task, TIMEOUT)
    assert written == [0, 1, 2, 3] and len(channel.body) == 2 * STREAM_BUFFER


async def test_a_closed_loop_means_the_client_is_gone() -> None:
    loop = asyncio.new_event_loop()
    loop.close()
    exchange = Exchange(Inbox(loop))
    message: Any = {"type": "http.response.body", "body": b"x", "more_body": True}
    with pytest.raises(WSGIClientGoneError):
        exchange.post([message], 1)
    assert exchange.gone
    exchange.finish([], None)  # nobody to tell, and no error either
