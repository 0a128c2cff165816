"""The two application wrappers: both are ASGI 3 callables.

The server calls every application the same way, ``await wrapper(scope,
receive, send)``. ``ASGIWrapper`` forwards the call. ``WSGIWrapper`` serves
``http`` scopes by reading the request body on the loop (up to its limit),
then running the WSGI application in a thread pool (see ``wsgi``); it answers
``lifespan`` on the application's behalf and closes every ``websocket``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from hypercorn.shared.wsgi import WSGIApp, WSGIResponder, build_environ
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    HTTPScope,
    Scope,
)

__all__ = [
    "DEFAULT_WSGI_THREADS",
    "ASGIApp",
    "ASGIWrapper",
    "AppWrapper",
    "WSGIClientGoneError",
    "WSGIWrapper",
]

ASGIApp: TypeAlias = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]

DEFAULT_WSGI_THREADS = 10
"""Threads in a ``WSGIWrapper``'s own pool: WSGI requests it serves at once."""

_SEND_POLL = 0.1
"""Seconds between two checks, by a WSGI thread waiting on ``send``, that the request lives."""


class WSGIClientGoneError(OSError):
    """Raised in a WSGI thread once its request was cancelled (the client left)."""


class ASGIWrapper:
    """An ASGI application, called as is."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap ``app``.

        Args:
            app: the ASGI 3 application.
        """
        self.app = app

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Run the application on one connection scope.

        Args:
            scope: the ASGI connection scope.
            receive: the ASGI receive callable.
            send: the ASGI send callable.

        Raises:
            Exception: whatever the application raises.
        """
        await self.app(scope, receive, send)

    def __repr__(self) -> str:
        return f"ASGIWrapper({self.app!r})"


class WSGIWrapper:
    """A WSGI application, served as an ASGI one (see the module docstring)."""

    def __init__(
        self,
        app: WSGIApp,
        max_body_size: int,
        *,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        """Wrap ``app``.

        Args:
            app: the WSGI (PEP 3333) application.
            max_body_size: the largest request body, in bytes, passed to the app;
                a larger one is answered 413 without calling it.
            executor: where the app runs; by default a pool of
                ``DEFAULT_WSGI_THREADS`` threads, made on first use and shut
                down by ``close()`` or at lifespan shutdown.
        """
        self.app = app
        self.max_body_size = max_body_size
        self._executor = executor
        self._owns_executor = executor is None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"WSGIWrapper({self.app!r}, max_body_size={self.max_body_size})"

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Serve one connection scope.

        Args:
            scope: the ASGI connection scope.
            receive: the ASGI receive callable.
            send: the ASGI send callable.

        Raises:
            ValueError: an unknown scope type.
            Exception: what the WSGI application raised (after a 500 response
                when no response head had been sent), or what ``send`` raised.
        """
        if scope["type"] == "http":
            await self._handle_http(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000, "reason": None})
        elif scope["type"] == "lifespan":
            await self._handle_lifespan(receive, send)
        else:
            raise ValueError(f"unknown ASGI scope type {scope['type']!r}")

    def close(self, *, wait: bool = True) -> None:
        """Shut down the wrapper's own thread pool (a later request makes a new one).

        Args:
            wait: wait for the running WSGI calls to finish.
        """
        with self._lock:
            executor, owned = self._executor, self._owns_executor
            if owned:
                self._executor = None
        if owned and executor is not None:
            executor.shutdown(wait=wait)

    def _get_executor(self) -> concurrent.futures.Executor:
        with self._lock:
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=DEFAULT_WSGI_THREADS, thread_name_prefix="hypercorn-wsgi"
                )
            return self._executor

    async def _handle_lifespan(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Requests are over: the pool's threads can go.
                self.close(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, receive: ASGIReceiveCallable) -> bytes | None:
        """The whole body; None if the client left; ``b"..."`` past the limit, see caller."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            if message["type"] == "http.request":
                body += message.get("body", b"")
                if len(body) > self.max_body_size or not message.get("more_body", False):
                    return bytes(body)

    async def _handle_http(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        body = await self._read_body(receive)
        if body is None:
            return
        if len(body) > self.max_body_size:
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        loop = asyncio.get_running_loop()
        gone = threading.Event()

        async def send_all(messages: list[ASGISendEvent]) -> None:
            for message in messages:
                await send(message)

        def send_messages(messages: list[ASGISendEvent]) -> None:
            # Runs in the WSGI thread and waits: a slow client holds the thread.
            if gone.is_set():
                raise WSGIClientGoneError("the request was cancelled")
            future = asyncio.run_coroutine_threadsafe(send_all(messages), loop)
            while True:
                try:
                    future.result(timeout=_SEND_POLL)
                    return
                except concurrent.futures.TimeoutError:
                    if future.done():
                        raise  # send itself raised TimeoutError
                    if gone.is_set() or loop.is_closed():
                        future.cancel()
                        raise WSGIClientGoneError("the request was cancelled") from None

        responder = WSGIResponder(self.app, build_environ(scope, body), send_messages)
        try:
            await loop.run_in_executor(self._get_executor(), responder)
        except asyncio.CancelledError:
            gone.set()
            raise


AppWrapper: TypeAlias = ASGIWrapper | WSGIWrapper
"""What ``wrap_app`` returns: an ASGI 3 callable either way."""
