"""The application wrappers as ASGI callables, driven by real receive/send.

Also home of the small ASGI harness that ``test_wsgi`` uses.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hypercorn.shared import errors, wsgi
from hypercorn.shared.wrappers import (
    DEFAULT_WSGI_THREADS,
    ASGIWrapper,
    WSGIClientGoneError,
    WSGIThreadPool,
    WSGIWrapper,
)
from hypercorn.shared.wsgi import STREAM_BUFFER

TIMEOUT = 10.0


def http_scope(**overrides: Any) -> Any:
    """An ASGI ``http`` scope as the server builds it."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.com")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    scope.update(overrides)
    return scope


class Channel:
    """Real ``receive``/``send`` callables: queued messages in, recorded messages out."""

    def __init__(self, *incoming: dict[str, Any]) -> None:
        self.incoming = list(incoming) or [
            {"type": "http.request", "body": b"", "more_body": False}
        ]
        self.received = 0
        self.sent: list[dict[str, Any]] = []
        self.more = asyncio.Event()

    async def receive(self) -> dict[str, Any]:
        while not self.incoming:
            self.more.clear()
            await self.more.wait()
        self.received += 1
        return self.incoming.pop(0)

    def push(self, message: dict[str, Any]) -> None:
        self.incoming.append(message)
        self.more.set()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.sent[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.sent if m["type"] == "http.response.body")

    @property
    def complete(self) -> bool:
        last = self.sent[-1] if self.sent else {}
        return last.get("type") == "http.response.body" and not last.get("more_body", False)


@pytest.fixture
def wrapper_factory() -> Iterator[Any]:
    """Make ``WSGIWrapper``s whose thread pools are shut down after the test."""
    made: list[WSGIWrapper] = []

    def make(app: Any, max_body_size: int = 1024, **kwargs: Any) -> WSGIWrapper:
        wrapper = WSGIWrapper(app, max_body_size, **kwargs)
        made.append(wrapper)
        return wrapper

    yield make
    for wrapper in made:
        wrapper.close()


async def call(wrapper: Any, channel: Channel, scope: dict[str, Any] | None = None) -> None:
    await asyncio.wait_for(wrapper(scope or http_scope(), channel.receive, channel.send), TIMEOUT)


def hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"got:", body]


# -- ASGIWrapper ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_asgi_wrapper_forwards_the_call() -> None:
    calls: list[tuple[Any, Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append((scope, receive, send))
        await send({"type": "http.response.start", "status": 204, "headers": []})

    channel = Channel()
    scope = http_scope()
    wrapper = ASGIWrapper(app)
    assert wrapper.app is app
    await call(wrapper, channel, scope)
    assert calls == [(scope, channel.receive, channel.send)]
    assert channel.status == 204


@pytest.mark.asyncio
async def test_asgi_wrapper_propagates_errors() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise LookupError("boom")

    with pytest.raises(LookupError, match="boom"):
        await call(ASGIWrapper(app), Channel())


# -- WSGIWrapper: scopes other than http -----------------------------------------


@pytest.mark.asyncio
async def test_wsgi_lifespan_is_answered(wrapper_factory: Any) -> None:
    wrapper = wrapper_factory(hello)
    channel = Channel({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
    await call(wrapper, channel, scope)
    assert channel.sent == [
        {"type": "lifespan.startup.complete"},
        {"type": "lifespan.shutdown.complete"},
    ]


@pytest.mark.asyncio
async def test_wsgi_pool_is_released_at_lifespan_shutdown_and_remade(
    wrapper_factory: Any,
) -> None:
    wrapper = wrapper_factory(hello)
    await call(wrapper, Channel())
    threads = {t for t in threading.enumerate() if t.name.startswith("hypercorn-wsgi")}
    assert threads
    lifespan = Channel({"type": "lifespan.startup"}, {"type": "lifespan.shutdown"})
    await call(wrapper, lifespan, {"type": "lifespan", "asgi": {"version": "3.0"}})
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    channel = Channel()
    await call(wrapper, channel)
    assert channel.status == 200


@pytest.mark.asyncio
async def test_wsgi_closes_websockets(wrapper_factory: Any) -> None:
    channel = Channel({"type": "websocket.connect"})
    await call(wrapper_factory(hello), channel, http_scope(type="websocket", subprotocols=[]))
    assert channel.sent == [{"type": "websocket.close", "code": 1000, "reason": None}]


@pytest.mark.asyncio
async def test_wsgi_unknown_scope(wrapper_factory: Any) -> None:
    with pytest.raises(ValueError, match="'smtp'"):
        await call(wrapper_factory(hello), Channel(), {"type": "smtp"})


# -- WSGIWrapper: the request body -------------------------------------------------


@pytest.mark.asyncio
async def test_body_chunks_are_joined(wrapper_factory: Any) -> None:
    channel = Channel(
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"cd", "more_body": False},
    )
    await call(wrapper_factory(hello), channel, http_scope(method="POST"))
    assert (channel.status, channel.body) == (200, b"got:abcd")
    assert channel.headers == [(b"content-type", b"text/plain")]
    assert channel.complete


@pytest.mark.asyncio
async def test_body_at_the_limit_is_served(wrapper_factory: Any) -> None:
    channel = Channel({"type": "http.request", "body": b"x" * 8, "more_body": False})
    await call(wrapper_factory(hello, 8), channel)
    assert channel.body == b"got:" + b"x" * 8


@pytest.mark.asyncio
async def test_body_over_the_limit_is_413_without_calling_the_app(wrapper_factory: Any) -> None:
    called = threading.Event()

    def app(environ: Any, start_response: Any) -> list[bytes]:
        called.set()
        return hello(environ, start_response)

    channel = Channel(
        {"type": "http.request", "body": b"x" * 6, "more_body": True},
        {"type": "http.request", "body": b"x" * 6, "more_body": True},
        {"type": "http.request", "body": b"x" * 6, "more_body": False},
    )
    await call(wrapper_factory(app, 10), channel)
    assert channel.status == 413 and channel.body == b"" and channel.complete
    assert channel.received == 2  # stopped reading once over the limit
    assert not called.is_set()


@pytest.mark.asyncio
async def test_disconnect_before_the_body_ends_skips_the_app(wrapper_factory: Any) -> None:
    called = threading.Event()

    def app(environ: Any, start_response: Any) -> list[bytes]:
        called.set()
        return []

    channel = Channel(
        {"type": "http.request", "body": b"x", "more_body": True}, {"type": "http.disconnect"}
    )
    await call(wrapper_factory(app), channel)
    assert channel.sent == [] and not called.is_set()


# -- WSGIWrapper: threads ------------------------------------------------------------


@pytest.mark.asyncio
async def test_app_runs_in_the_wrappers_named_pool(wrapper_factory: Any) -> None:
    names: list[str] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        names.append(threading.current_thread().name)
        start_response("200 OK", [])
        return []

    await call(wrapper_factory(app), Channel())
    assert names[0].startswith("hypercorn-wsgi")
    assert names[0] != threading.main_thread().name


@pytest.mark.asyncio
async def test_a_given_executor_is_used_and_not_shut_down(wrapper_factory: Any) -> None:
    names: list[str] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        names.append(threading.current_thread().name)
        start_response("200 OK", [])
        return []

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mine") as executor:
        wrapper = wrapper_factory(app, executor=executor)
        await call(wrapper, Channel())
        wrapper.close()
        assert executor.submit(lambda: 1).result(TIMEOUT) == 1  # still usable
    assert names[0].startswith("mine")


class CountingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A thread pool that counts the calls submitted to it."""

    submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        future = super().submit(fn, *args, **kwargs)
        self.submitted += 1
        return future


@pytest.mark.asyncio
async def test_a_call_the_executor_cancels_is_an_error(wrapper_factory: Any) -> None:
    release = threading.Event()
    with CountingExecutor(1) as executor:
        executor.submit(release.wait, TIMEOUT)  # the only thread is busy
        task = asyncio.create_task(call(wrapper_factory(hello, executor=executor), Channel()))
        deadline = time.monotonic() + TIMEOUT
        while executor.submitted < 2:  # until the WSGI call waits in the executor's queue
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.001)
        executor.shutdown(wait=False, cancel_futures=True)
        with pytest.raises(RuntimeError, match="cancelled the WSGI call"):
            await task
        release.set()


@pytest.mark.asyncio
async def test_requests_run_concurrently_up_to_the_pool_size(wrapper_factory: Any) -> None:
    barrier = threading.Barrier(DEFAULT_WSGI_THREADS, timeout=TIMEOUT)

    def app(environ: Any, start_response: Any) -> list[bytes]:
        barrier.wait()  # passes only if all requests run at the same time
        start_response("200 OK", [])
        return [b"ok"]

    wrapper = wrapper_factory(app)
    channels = [Channel() for _ in range(DEFAULT_WSGI_THREADS)]
    await asyncio.gather(*(call(wrapper, channel) for channel in channels))
    assert all(channel.body == b"ok" for channel in channels)


class BlockingSend(Channel):
    """A client that takes nothing until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.blocked = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message["body"]:
            self.blocked.set()
            await self.release.wait()
        await super().send(message)


@pytest.mark.asyncio
async def test_a_slow_client_holds_the_wsgi_thread(wrapper_factory: Any) -> None:
    produced: list[int] = []
    closed = threading.Event()
    chunk = b"x" * (STREAM_BUFFER + 1)

    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            for index in range(3):
                produced.append(index)
                yield chunk
        finally:
            closed.set()

    channel = BlockingSend()
    task = asyncio.create_task(call(wrapper_factory(app), channel))
    await asyncio.wait_for(channel.blocked.wait(), TIMEOUT)
    # Not a wait for a condition: a bounded look for something that must not
    # happen (an unthrottled thread produces the next chunk within microseconds).
    await asyncio.sleep(0.2)
    assert produced == [0]  # past STREAM_BUFFER unsent, the thread waits for the client
    channel.release.set()
    await asyncio.wait_for(task, TIMEOUT)
    assert produced == [0, 1, 2] and closed.is_set()
    assert channel.body == chunk * 3 and channel.complete


@pytest.mark.asyncio
async def test_small_chunks_are_not_held_back_by_a_slow_client(wrapper_factory: Any) -> None:
    finished = threading.Event()

    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        for index in range(3):
            yield b"chunk%d" % index
        finished.set()

    channel = BlockingSend()
    task = asyncio.create_task(call(wrapper_factory(app), channel))
    await asyncio.wait_for(channel.blocked.wait(), TIMEOUT)
    # The first chunk is still being sent; the thread went on without waiting.
    assert await asyncio.to_thread(finished.wait, TIMEOUT)
    channel.release.set()
    await asyncio.wait_for(task, TIMEOUT)
    assert channel.body == b"chunk0chunk1chunk2" and channel.complete


@pytest.mark.asyncio
async def test_cancelling_the_request_stops_the_thread_and_closes(wrapper_factory: Any) -> None:
    closed = threading.Event()
    errors: list[BaseException] = []
    produced: list[int] = []

    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        write = start_response("200 OK", [])
        try:
            while True:  # endless: only the client leaving stops it
                produced.append(1)
                write(b"x" * 1024)
        except BaseException as error:
            errors.append(error)
            raise
        finally:
            closed.set()
        yield b""  # a generator, though write() does all the work

    channel = BlockingSend()
    task = asyncio.create_task(call(wrapper_factory(app), channel))
    await asyncio.wait_for(channel.blocked.wait(), TIMEOUT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(closed.wait, TIMEOUT)
    assert isinstance(errors[0], WSGIClientGoneError)
    assert len(produced) <= STREAM_BUFFER // 1024 + 2  # it waited, then stopped


def test_client_gone_error_is_an_oserror_under_every_import_name() -> None:
    assert issubclass(WSGIClientGoneError, OSError)
    # Its home is ``errors`` (a compiled class cannot derive from OSError).
    assert wsgi.WSGIClientGoneError is errors.WSGIClientGoneError is WSGIClientGoneError


def test_close_is_idempotent_and_before_use(wrapper_factory: Any) -> None:
    wrapper = wrapper_factory(hello)
    wrapper.close()
    wrapper.close(wait=False)


# -- WSGIThreadPool --------------------------------------------------------------------


def test_pool_starts_threads_only_when_none_is_idle() -> None:
    pool = WSGIThreadPool(4, "pool-test")
    try:
        for _ in range(5):
            done = threading.Event()
            pool.submit(done.set)
            assert done.wait(TIMEOUT)
        names = {t.name for t in threading.enumerate() if t.name.startswith("pool-test")}
        assert len(names) <= 2  # one thread, or two if the first was not idle yet
    finally:
        pool.shutdown()


def test_pool_shutdown_runs_the_jobs_already_submitted() -> None:
    pool = WSGIThreadPool(1, "pool-test")
    release = threading.Event()
    ran: list[int] = []
    pool.submit(lambda: release.wait(TIMEOUT) and None)
    pool.submit(lambda: ran.append(1))
    release.set()
    pool.shutdown(wait=True)
    assert ran == [1]
    assert not any(t.name.startswith("pool-test") for t in threading.enumerate())
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: None)


def test_a_job_that_raises_is_reported_and_the_thread_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reported: list[BaseException] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, error, tb: reported.append(error))
    pool = WSGIThreadPool(1, "pool-test")
    done = threading.Event()

    def bad() -> None:
        raise LookupError("job bug")

    pool.submit(bad)
    pool.submit(done.set)
    try:
        assert done.wait(TIMEOUT)
    finally:
        pool.shutdown()
    assert isinstance(reported[0], LookupError)
