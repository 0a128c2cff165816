"""The two application wrappers: both are ASGI 3 callables.

The server calls every application the same way, ``await wrapper(scope,
receive, send)``. ``ASGIWrapper`` forwards the call. ``WSGIWrapper`` serves
``http`` scopes by reading the request body on the loop (up to its limit),
then running the WSGI application in a thread (its own ``WSGIThreadPool``, or
a given executor; under trio, ``trio.to_thread``) and relaying the response
the thread posts (see ``wsgi``); it answers ``lifespan`` on the application's
behalf and closes every ``websocket``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from hypercorn.shared.errors import WSGIClientGoneError
from hypercorn.shared.eventloop import current_loop
from hypercorn.shared.wsgi import Inbox, WSGIApp, serve
from hypercorn.typing import (
    ASGIReceiveCallable,
    ASGISendCallable,
    Scope,
)

__all__ = [
    "DEFAULT_WSGI_THREADS",
    "ASGIApp",
    "ASGIWrapper",
    "AppWrapper",
    "WSGIClientGoneError",
    "WSGIThreadPool",
    "WSGIWrapper",
]

ASGIApp: TypeAlias = Callable[[Scope, ASGIReceiveCallable, ASGISendCallable], Awaitable[None]]

DEFAULT_WSGI_THREADS = 10
"""Threads in a ``WSGIWrapper``'s own pool: WSGI requests it serves at once."""


class WSGIThreadPool:
    """The threads a ``WSGIWrapper`` runs WSGI calls in, when it was given no executor.

    Lighter than a ``ThreadPoolExecutor`` per call (no ``Future``, no
    ``Condition``): a job is a callable that never raises and reports its own
    outcome (``WSGIResponder`` posts it to the loop). A job given to
    ``submit`` before ``shutdown`` still runs. The threads are daemons: the
    server drains its requests before it exits, and a stuck application must
    not keep the process alive.

    Waking a sleeping thread is a system call and a context switch, dearer
    than a small WSGI call itself, so a job wakes one only when no thread is
    *spare*: awake and not inside a job (just woken, or between two jobs). A
    spare thread takes the queued jobs one after the other, so a burst of
    quick calls costs one wake-up, not one each. When a thread takes a job and
    more are queued with no spare thread left, it wakes (or starts, up to
    ``max_threads``) another first: a call that blocks (a database, a slow
    upstream) never holds back the jobs queued behind it while a thread is
    free. Sleeping threads are woken last-in first-out, so the same few stay
    warm.

    On Linux the threads run under ``SCHED_BATCH`` (``batch_scheduling``): the
    same share of the CPU as the loop's thread, but a thread woken for a job
    does not preempt the loop while it still reads and parses (holding the
    GIL, which the woken thread would wait for at once); it runs when the loop
    waits for I/O, and takes every job queued by then. Threads that an
    application starts from a call inherit the policy.
    """

    def __init__(self, max_threads: int, name: str) -> None:
        """Make an empty pool.

        Args:
            max_threads: the most threads, so the most calls at once.
            name: the threads' name prefix.
        """
        self._max_threads = max_threads
        self._name = name
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._threads: list[threading.Thread] = []
        self._sleeping: list[threading.Lock] = []  # each held until its thread is woken
        self._spare = 0  # awake threads outside a job: they will take a queued job
        self._lock = threading.Lock()
        self._shut_down = False

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` in one of the pool's threads.

        Args:
            job: a callable that never raises.

        Raises:
            RuntimeError: the pool was shut down.
        """
        if self._shut_down:
            raise RuntimeError("the WSGI thread pool was shut down")
        # No lock while a thread is spare: it sees the job (see ``_work``).
        self._jobs.append(job)
        if not self._spare:
            with self._lock:
                self._wake()

    def shutdown(self, wait: bool = True) -> None:
        """Stop the threads once the jobs already submitted are done.

        Args:
            wait: wait until the threads have stopped.
        """
        with self._lock:
            self._shut_down = True
            threads = list(self._threads)
            while self._sleeping:
                self._spare += 1
                self._sleeping.pop().release()
        if wait:
            for thread in threads:
                thread.join()

    def _wake(self) -> None:
        """Wake a sleeping thread, or start one if none sleeps (under ``_lock``)."""
        if self._sleeping:
            self._spare += 1
            self._sleeping.pop().release()
        elif len(self._threads) < self._max_threads:
            self._spare += 1
            thread = threading.Thread(
                target=self._work,
                name=f"{self._name}_{len(self._threads)}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        # Else every thread is inside a job: the first to finish takes this one.

    def _work(self) -> None:
        batch_scheduling()
        jobs, lock, sleeping = self._jobs, self._lock, self._sleeping
        alarm = threading.Lock()
        alarm.acquire()
        spare = True  # this thread was counted spare when it was started
        while True:
            with lock:
                if jobs:
                    job = jobs.popleft()
                    if spare:
                        spare = False
                        self._spare -= 1
                    if jobs and not self._spare:
                        self._wake()  # the jobs behind this one get a thread
                else:
                    if spare:
                        spare = False
                        self._spare -= 1
                    if self._shut_down:
                        return
                    sleeping.append(alarm)
                    job = None
            if job is None:
                # ``submit`` appends without the lock, then wakes a thread only if
                # none is spare: a job it appended while this thread still counted
                # as spare is seen here, and this thread stays awake for it.
                if jobs:
                    with lock:
                        if alarm in sleeping:
                            sleeping.remove(alarm)
                            self._spare += 1
                            spare = True
                            continue
                alarm.acquire()  # released by ``_wake`` (or ``shutdown``), counted spare
                spare = True
                continue
            try:
                job()
            except BaseException as error:  # a job must not raise; keep the thread
                sys.excepthook(type(error), error, error.__traceback__)
            del job


def batch_scheduling() -> None:
    """Put the calling thread under ``SCHED_BATCH`` where the system has it (Linux).

    A thread that became runnable does not then preempt the running one: on a
    busy CPU, a WSGI thread woken for a job waits for the loop's thread to
    block in its poll (releasing the GIL) instead of interrupting it and then
    waiting for the GIL (``docs/discussion/worker-serving.md`` has the figures).
    Nothing else changes: the thread's share of the CPU (its nice value) is the
    same.
    """
    policy = getattr(os, "SCHED_BATCH", None)
    if policy is None:
        return
    # Refused (a seccomp filter, a container): the default policy serves.
    with contextlib.suppress(OSError):
        os.sched_setscheduler(0, policy, os.sched_param(0))  # 0: this thread


_LOCAL = threading.local()


def _forget_loops() -> None:
    global _LOCAL  # a forked child starts without its parent's loops
    _LOCAL = threading.local()


os.register_at_fork(after_in_child=_forget_loops)


def loop_inbox() -> Inbox:
    """The ``Inbox`` of the loop running in this thread (kept per thread for asyncio).

    Raises:
        RuntimeError: no loop runs in this thread.
    """
    inbox: Inbox | None = getattr(_LOCAL, "inbox", None)
    # A loop that still runs is still this thread's: a running loop stays in its
    # thread, and a thread runs one loop at a time.
    if inbox is not None:
        kept: Any = inbox.loop  # an asyncio loop (only those are kept); no cast() call
        if kept.is_running():
            return inbox
    loop = current_loop()
    inbox = Inbox(loop)
    if isinstance(loop, asyncio.AbstractEventLoop):  # trio's TrioLoop: one per call
        _LOCAL.inbox = inbox
    return inbox


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
        self._executor: concurrent.futures.Executor | WSGIThreadPool | None = executor
        self._owns_executor = executor is None
        self._lock = threading.Lock()
        # The executor's ``submit``, kept while it is the executor: a bound method
        # less per request.
        self._submit: Callable[[Callable[[], None]], object] | None = (
            None if executor is None else executor.submit
        )

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
            # Here rather than in a method of its own: a coroutine less per request.
            inbox = loop_inbox()
            submit: Callable[[Callable[[], None]], object]
            if self._owns_executor and not isinstance(inbox.loop, asyncio.AbstractEventLoop):
                from hypercorn.shared.trio_loop import run_in_thread

                submit = run_in_thread  # trio's own worker threads
            else:
                submit = self._submit or self._get_executor().submit
            await serve(self.app, self.max_body_size, scope, receive, send, inbox, submit)
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
                self._submit = None
        if owned and executor is not None:
            executor.shutdown(wait=wait)

    def _get_executor(self) -> concurrent.futures.Executor | WSGIThreadPool:
        executor = self._executor
        if executor is not None:
            return executor
        with self._lock:
            if self._executor is None:
                self._executor = WSGIThreadPool(DEFAULT_WSGI_THREADS, "hypercorn-wsgi")
                self._submit = self._executor.submit
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


AppWrapper: TypeAlias = ASGIWrapper | WSGIWrapper
"""What ``wrap_app`` returns: an ASGI 3 callable either way."""
