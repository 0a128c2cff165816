"""WSGI (PEP 3333) over ASGI: a call in a worker thread, and its response's way back.

Theory of operation
-------------------
``WSGIWrapper`` (in ``wrappers``) awaits ``serve``, which reads the whole
request body on the event loop, builds the environ (``wsgi_environ``), and
gives a ``WSGIResponder`` to a worker thread. The responder calls the
application and implements ``start_response`` and ``write``; it is also its
own ``Exchange``, the one hand-off between that thread and the request's
coroutine on the loop: it posts the response's ASGI messages, which ``relay``
sends to the server's ``send``. This module is compiled with the serving core
(a call is then one native object and native calls; ``WSGIClientGoneError``
lives in ``errors``, since a compiled class cannot derive from ``OSError``).

A hand-off between threads is what a WSGI request costs beyond an ASGI one,
so there are as few as the semantics allow:

* The thread does not wait for its messages to be sent: ``Exchange.post``
  queues them and wakes the loop, which transmits while the application makes
  its next block (PEP 3333, "Buffering and Streaming"). Only once more than
  ``STREAM_BUFFER`` bytes are posted and not yet sent does the thread wait,
  so a slow client still holds the thread (the back-pressure WSGI expects)
  instead of filling memory.
* A list or tuple is complete when the application returns it: it goes out
  with the head in the thread's last post, which also carries the outcome of
  the call, so ``return [body]`` costs one hand-off each way. Any other
  iterable is posted chunk by chunk: its next chunk may be slow to come
  (server-sent events, long polls) and must not hold back the ones before.
* Posts reach the loop through its ``Inbox``: a post queues its ``Exchange``
  there and schedules one drain unless one is already scheduled, so the calls
  a thread finishes back to back wake the loop once (``call_soon_threadsafe``
  is a ``Handle`` and, on asyncio, a write to the loop's self-pipe each).
  ``WSGIWrapper`` keeps the running asyncio loop's inbox per thread, which
  also spares a ``get_running_loop()`` (a ``getpid()`` system call on 3.11)
  per request.

Invariants:

* ``http.response.start`` is posted with the first non-empty body chunk, or
  when the iterable is exhausted (PEP 3333, "Buffering and Streaming"), so a
  status replaced through ``start_response(..., exc_info)`` before then wins.
* The iterable's ``close()`` is called exactly once whatever happens: success,
  application error, or the client gone.
* An error before the head was posted becomes a 500 response, then propagates
  so the server logs it; an error after it propagates as is, and the server
  aborts the stream (a complete-looking truncated response would be a lie).
* Once the client is gone (the request's coroutine was cancelled, or ``send``
  raised), the thread stops at its next post or while it waits for the loop:
  ``WSGIClientGoneError`` is raised into the application.
* The coroutine returns or raises only after the thread's last post, except
  when it is cancelled: then it leaves at once and the thread stops by itself.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Final

from hypercorn.shared.errors import WSGIClientGoneError
from hypercorn.shared.eventloop import EventLoop, Future
from hypercorn.shared.header_rules import validate_headers
from hypercorn.shared.wsgi_environ import build_environ
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, ASGISendEvent, HTTPScope

__all__ = [
    "STREAM_BUFFER",
    "Exchange",
    "Inbox",
    "WSGIClientGoneError",
    "WSGIResponder",
    "build_environ",
    "serve",
]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

STREAM_BUFFER: Final = 64 * 1024
"""Body bytes a WSGI thread may post ahead of what the loop has sent, before it waits."""

_POLL: Final = 0.1
"""Seconds between two checks, by a WSGI thread waiting for the loop, that the request lives."""

# A post: (messages, body bytes in them, last post?, the call's error if last).
_Post = tuple[list[ASGISendEvent], int, bool, BaseException | None]


class Inbox:
    """Where one loop's WSGI threads leave word of their posts: a wake-up per batch.

    ``notify`` (any thread) queues an ``Exchange`` and schedules ``_drain`` on
    the loop unless a drain is already scheduled; ``_drain`` clears that mark
    before it empties the queue, so a call queued while it runs is seen by it
    or schedules the next one. The quick calls a thread runs back to back thus
    reach the loop together, with one ``call_soon_threadsafe`` between them.
    """

    __slots__ = ("_ready", "_scheduled", "loop")

    def __init__(self, loop: EventLoop) -> None:
        """Make the inbox of ``loop``.

        Args:
            loop: the loop whose coroutines relay the posts.
        """
        self.loop = loop
        self._ready: list[Exchange] = []
        self._scheduled = False

    def notify(self, exchange: Exchange) -> None:
        """Have the loop look at ``exchange``'s posts (from any thread).

        Raises:
            RuntimeError: the loop is closed.
        """
        self._ready.append(exchange)
        if not self._scheduled:
            self._scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._drain)
            except BaseException:
                self._scheduled = False
                raise

    def _drain(self) -> None:
        self._scheduled = False
        ready = self._ready
        while ready:
            ready.pop(0)._arrived()


class Exchange:
    """The hand-off between one request's WSGI thread and its coroutine on the loop.

    The thread calls ``post`` and, once, ``finish``; the coroutine awaits
    ``relay``. ``_posted`` is written by the thread only and ``_sent`` by the
    loop only, so their difference, the bytes in flight, needs no lock.
    """

    __slots__ = ("_batches", "_drained", "_inbox", "_posted", "_sent", "_waiter", "gone")

    def __init__(self, inbox: Inbox) -> None:
        """Make the hand-off of one request.

        Args:
            inbox: the inbox of the loop whose coroutine calls ``relay``.
        """
        self._inbox = inbox
        self._batches: list[_Post] = []
        self._waiter: Future[None] | None = None
        self._posted = 0
        self._sent = 0
        self._drained: threading.Event | None = None
        self.gone = False
        """Set once the client is gone: the thread stops at its next post."""

    # -- the WSGI thread's side ------------------------------------------------

    def post(self, messages: list[ASGISendEvent], size: int) -> None:
        """Queue messages for the loop to send; wait while too much is unsent.

        Args:
            messages: ASGI send messages, in order.
            size: the body bytes they carry.

        Raises:
            WSGIClientGoneError: the client is gone; nothing was queued.
        """
        if self.gone:
            raise WSGIClientGoneError("the request was cancelled")
        if self._inbox.loop.is_closed():
            self.gone = True
            raise WSGIClientGoneError("the event loop is closed")
        self._posted += size
        self._batches.append((messages, size, False, None))
        try:
            self._inbox.notify(self)
        except RuntimeError:  # the loop closed meanwhile
            self.gone = True
            raise WSGIClientGoneError("the event loop is closed") from None
        if self._posted - self._sent > STREAM_BUFFER:
            self._wait_for_the_loop()

    def finish(self, messages: list[ASGISendEvent], error: BaseException | None) -> None:
        """Queue the last messages and the outcome of the call; never raises.

        Args:
            messages: the last ASGI send messages, in order.
            error: what the call raised, to be raised by ``relay``; or None.
        """
        self._batches.append((messages, 0, True, error))
        try:
            self._inbox.notify(self)
        except RuntimeError:
            return  # a closed loop has no one to tell

    def _wait_for_the_loop(self) -> None:
        drained = self._drained
        if drained is None:
            drained = self._drained = threading.Event()
        while True:
            drained.clear()
            # Checked after clear(): a send completed since then sets it again.
            if self._posted - self._sent <= STREAM_BUFFER:
                return
            if self.gone or self._inbox.loop.is_closed():
                raise WSGIClientGoneError("the request was cancelled")
            drained.wait(_POLL)

    # -- the loop's side ---------------------------------------------------------

    def _arrived(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _next(self) -> _Post:
        batches = self._batches
        while not batches:
            # The thread appends before it notifies, and the notice is handled on
            # this loop, so a batch appended after this check still wakes us.
            waiter = self._waiter = self._inbox.loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return batches.pop(0)

    def cancelled(self, future: concurrent.futures.Future[Any]) -> None:
        """The done callback of an executor's future: a call cancelled before it ran
        (the executor was shut down) will not finish by itself, so finish it."""
        if future.cancelled():
            self.finish([], RuntimeError("the executor cancelled the WSGI call"))

    def _abandon(self) -> None:
        self.gone = True
        drained = self._drained
        if drained is not None:
            drained.set()

    async def relay(self, send: ASGISendCallable) -> None:
        """Send what the thread posts, in order, until its last post.

        Args:
            send: the ASGI send callable.

        Raises:
            Exception: what the call raised (after its 500 response, if any);
                or what ``send`` raised, once the thread has stopped.
            BaseException: cancelled: at once; the thread stops by itself.
        """
        batches = self._batches
        try:
            while True:
                while not batches:  # as in ``_next``, without a coroutine of its own
                    waiter = self._waiter = self._inbox.loop.create_future()
                    try:
                        await waiter
                    finally:
                        self._waiter = None
                messages, size, last, error = batches.pop(0)
                try:
                    for message in messages:
                        await send(message)
                except Exception:
                    self._abandon()
                    while not last:  # the thread stops at its next post
                        _, _, last, _ = await self._next()
                    raise
                if size:
                    self._sent += size
                    drained = self._drained
                    if drained is not None:
                        drained.set()
                if last:
                    if error is not None:
                        raise error
                    return
        except BaseException:  # cancelled (asyncio's or trio's)
            self._abandon()
            raise


_HEADER_PAIRS: Final[dict[tuple[str, str], tuple[bytes, bytes]]] = {}
"""``(name, value)`` pairs of ``str`` found valid, with what ``validate_headers``
made of them: apps send the same few (``Content-Type``, ``Cache-Control``...)."""

_HEADER_PAIRS_MAX: Final = 512
"""Pairs in ``_HEADER_PAIRS``; when it is full it starts again (values such as
cookies and ETags change per response and would otherwise fill it for good)."""

_HEADER_VALUE_CACHED_MAX: Final = 256
"""The longest value remembered in ``_HEADER_PAIRS``."""


def _wsgi_headers(headers: object) -> list[tuple[bytes, bytes]]:
    """``validate_headers(headers)``, with the pairs it already validated remembered.

    A pair is looked up only when it is a tuple of two exact ``str`` (what a
    WSGI application sends, and hashable for sure); any other item, and a pair
    not seen yet, goes through ``validate_headers``, so a bad one raises its
    error, and only a valid pair is remembered.
    """
    if type(headers) is not list:
        return validate_headers(headers)
    known = _HEADER_PAIRS
    validated: list[tuple[bytes, bytes]] = []
    for pair in headers:
        plain = (
            type(pair) is tuple and len(pair) == 2 and type(pair[0]) is str and type(pair[1]) is str
        )
        hit = known.get(pair) if plain else None
        if hit is None:
            hit = validate_headers((pair,))[0]
            if plain and len(pair[1]) <= _HEADER_VALUE_CACHED_MAX:
                if len(known) >= _HEADER_PAIRS_MAX:
                    known.clear()
                known[pair] = hit
        validated.append(hit)
    return validated


_STATUS_CODES: Final[dict[str, int]] = {}
"""Status lines found valid, with their code (apps repeat a few)."""

_STATUS_CODES_MAX: Final = 256


def _status_code(status: object) -> int:
    if type(status) is str:
        known = _STATUS_CODES.get(status)
        if known is not None:
            return known
    elif not isinstance(status, str):
        raise TypeError(f"the WSGI status must be a str, not {type(status).__name__}")
    code, _, _ = status.partition(" ")
    number = int(code) if len(code) == 3 and code.isdigit() else 0
    if number < 100:
        raise ValueError(f"invalid WSGI status {status!r}: expected e.g. '200 OK'")
    if type(status) is str and len(_STATUS_CODES) < _STATUS_CODES_MAX:
        _STATUS_CODES[status] = number
    return number


_NO_HEADERS: Final[list[tuple[bytes, bytes]]] = []
_NO_MESSAGES: Final[list[ASGISendEvent]] = []
"""What a responder holds until ``start_response`` and the call's end replace
them (with lists of their own; these two are never changed): two lists less per call."""


class WSGIResponder(Exchange):
    """One WSGI call, run in a worker thread, and its hand-off (see the module docstring)."""

    __slots__ = ("_last", "app", "environ", "headers", "headers_sent", "status")

    def __init__(self, app: WSGIApp, environ: dict[str, Any], inbox: Inbox) -> None:
        """Prepare the call.

        Args:
            app: the WSGI application.
            environ: the request's environ.
            inbox: the inbox of the loop whose coroutine calls ``relay``.
        """
        super().__init__(inbox)  # one object per call: the responder is its own hand-off
        self.app = app
        self.environ = environ
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = _NO_HEADERS
        self.headers_sent = False
        self._last: list[ASGISendEvent] = _NO_MESSAGES

    def run(self) -> None:
        """Run the application and post its response, then the outcome.

        Never raises: what the application (or a post) raised travels with the
        last post, for ``Exchange.relay`` to raise on the loop.
        """
        error: BaseException | None = None
        try:
            self._run()
        except BaseException as exc:  # handed to the loop, which raises it
            error = exc
            if not self.headers_sent and not self.gone:
                self.headers_sent = True
                self._last = [
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-length", b"0")],
                    },
                    {"type": "http.response.body", "body": b"", "more_body": False},
                ]
        self.finish(self._last, error)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """The ``start_response`` callable of PEP 3333.

        Args:
            status: e.g. ``"200 OK"``.
            headers: ``(name, value)`` pairs of ``str``.
            exc_info: ``sys.exc_info()`` when called from an error handler.

        Returns:
            The ``write`` callable.

        Raises:
            RuntimeError: a second call without ``exc_info``.
            BaseException: the ``exc_info`` error, when the head was already sent.
            TypeError, ValueError: an invalid status or header.
        """
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the frame <-> traceback cycle
        elif self.status is not None:
            raise RuntimeError("start_response() was already called (pass exc_info to retry)")
        code = _status_code(status)
        # One pass: str pairs are encoded and checked together (the errors name the
        # bad item); the stream checks the bytes again on the loop, on its fast path.
        validated = _wsgi_headers(headers)
        self.status, self.headers = code, validated
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write`` callable of PEP 3333: post ``data`` for sending now.

        Args:
            data: body bytes.

        Raises:
            RuntimeError: ``start_response`` was not called yet.
            TypeError: ``data`` is not bytes.
            WSGIClientGoneError: the client is gone.
        """
        if self.status is None:
            raise RuntimeError("write() was called before start_response()")
        if data:
            self._post(_as_bytes(data))

    def _run(self) -> None:
        """Call the application; keep the messages of the last post in ``_last``."""
        result = self.app(self.environ, self.start_response)
        try:
            if type(result) is list and len(result) == 1:
                # What most applications return: ``[body]``, in one post with the head.
                chunk = result[0]
                body = _as_bytes(chunk) if chunk else b""  # before the head, as below
                last = self._head()
            elif isinstance(result, (list, tuple)):
                # Complete already: its last chunk ends the body, all in one post.
                chunks = [_as_bytes(chunk) for chunk in result if chunk]
                last = self._head()
                for chunk in chunks[:-1]:
                    last.append({"type": "http.response.body", "body": chunk, "more_body": True})
                body = chunks[-1] if chunks else b""
            else:
                for chunk in result:
                    if chunk:
                        self._post(_as_bytes(chunk))
                last = self._head()
                body = b""
            last.append({"type": "http.response.body", "body": body, "more_body": False})
            # Kept before close(): if close() raises, the complete response still goes.
            self._last = last
        finally:
            # A plain list or tuple has no close(), and a failed look-up would
            # build an AttributeError (with its message) to drop it.
            if type(result) is not list and type(result) is not tuple:
                close = getattr(result, "close", None)
                if close is not None:
                    close()

    def _head(self) -> list[ASGISendEvent]:
        """``[http.response.start]`` the first time, then ``[]``."""
        if self.headers_sent:
            return []
        if self.status is None:
            raise RuntimeError("the WSGI application did not call start_response()")
        self.headers_sent = True
        return [{"type": "http.response.start", "status": self.status, "headers": self.headers}]

    def _post(self, body: bytes) -> None:
        messages = self._head()
        messages.append({"type": "http.response.body", "body": body, "more_body": True})
        self.post(messages, len(body))


async def serve(
    app: WSGIApp,
    max_body_size: int,
    scope: HTTPScope,
    receive: ASGIReceiveCallable,
    send: ASGISendCallable,
    inbox: Inbox,
    submit: Callable[[Callable[[], None]], object],
) -> None:
    """Serve one ``http`` scope: read the body, run ``app`` through ``submit``, relay.

    Args:
        app: the WSGI application.
        max_body_size: the largest body given to ``app``; past it, 413.
        scope: the request's ASGI scope.
        receive: the ASGI receive callable.
        send: the ASGI send callable.
        inbox: the running loop's inbox.
        submit: runs a job in a worker thread: ``WSGIThreadPool.submit``, trio's
            ``run_in_thread``, or an executor's ``submit`` (whose future, if
            cancelled before the job ran, ends the call with an error).

    Raises:
        Exception: what the call or ``send`` raised (see ``Exchange.relay``).
    """
    collected = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if not message.get("more_body", False):
                if collected:
                    collected += chunk
                    body = bytes(collected)
                else:
                    body = bytes(chunk)  # no copy of a bytes body: the common case
                break
            collected += chunk
            if len(collected) > max_body_size:
                body = bytes(collected)
                break
        elif message["type"] == "http.disconnect":
            return
    if len(body) > max_body_size:
        # New messages each time: an ASGI middleware around us may change them.
        await send(
            {"type": "http.response.start", "status": 413, "headers": [(b"content-length", b"0")]}
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    responder = WSGIResponder(app, build_environ(scope, body), inbox)
    future = submit(responder.run)
    # ``WSGIThreadPool.submit`` returns None: no look-up of the Future class then.
    if future is not None and isinstance(future, concurrent.futures.Future):
        future.add_done_callback(responder.cancelled)
    await responder.relay(send)


def _as_bytes(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    raise TypeError(f"a WSGI body chunk must be bytes, not {type(chunk).__name__}")
