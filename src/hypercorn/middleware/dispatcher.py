"""``DispatcherMiddleware``: several ASGI applications mounted by path prefix.

Theory of operation
-------------------
``http`` and ``websocket`` scopes go to the first mount, in the mapping's
order, whose prefix starts the request's path; the application sees the
prefix appended to its ``root_path`` (its ``path`` is left whole, as
Hypercorn does). Order the mapping from the longest prefix to the shortest,
with ``""`` last as the catch-all. A path no mount takes is answered 404 (a
WebSocket with a 404 denial response where the server offers the extension,
else with a close).

The ``lifespan`` scope is fanned out: every mounted application runs its own
lifespan task, with its own queue of the server's messages. The dispatcher
reports ``startup.complete`` (or ``shutdown.complete``) once every
application has answered that phase; if any answered ``failed``, it reports
``failed`` with their messages. An application whose lifespan task ends
before it answered startup (it does not speak lifespan, as many raise on an
unknown scope type) takes no further part, as the server itself would treat
it; the mounted applications share the scope's ``state``. A message that
does not answer the current phase raises ``UnexpectedMessageError`` inside
the application's ``send``. The fan-out runs on asyncio and on trio alike
(``shared/eventloop.py``), so ``AsyncioDispatcherMiddleware`` and
``TrioDispatcherMiddleware``, Hypercorn's two names, are this one class.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hypercorn.shared.errors import UnexpectedMessageError
from hypercorn.shared.eventloop import EventLoop, Future, Task, next_turn, settle, task_loop

if TYPE_CHECKING:
    from hypercorn.typing import (
        ASGIFramework,
        ASGIReceiveCallable,
        ASGIReceiveEvent,
        ASGISendCallable,
        ASGISendEvent,
        LifespanScope,
        Scope,
        WWWScope,
    )

__all__ = ["AsyncioDispatcherMiddleware", "DispatcherMiddleware", "TrioDispatcherMiddleware"]


class DispatcherMiddleware:
    """Route each request to the application mounted at its path prefix."""

    def __init__(self, mounts: Mapping[str, ASGIFramework]) -> None:
        """Mount applications.

        Args:
            mounts: path prefix (``"/api"``, or ``""`` for everything) to ASGI
                application; the first prefix that matches wins.
        """
        self.mounts = dict(mounts)

    def __repr__(self) -> str:
        return f"DispatcherMiddleware({self.mounts!r})"

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Serve one ASGI scope (see the module docstring)."""
        if scope["type"] == "lifespan":
            await _Lifespan(self.mounts, scope, receive, send).run()
            return
        path = scope["path"]
        for prefix, app in self.mounts.items():
            if path.startswith(prefix):
                local: WWWScope = {**scope}  # type: ignore[assignment]
                local["root_path"] = scope.get("root_path", "") + prefix
                await app(local, receive, send)
                return
        await _not_found(scope, send)


async def _not_found(scope: WWWScope, send: ASGISendCallable) -> None:
    headers = [(b"content-length", b"0")]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        # Empty and last by the spec's defaults, the message as Hypercorn sends it.
        empty_last: Any = {"type": "http.response.body"}
        await send(empty_last)
    elif "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": 404, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"", "more_body": False})
    else:
        await send({"type": "websocket.close", "code": 1000, "reason": None})


class _Mounted:
    """One mounted application's lifespan task and its answers."""

    def __init__(self, prefix: str, loop: EventLoop) -> None:
        self.prefix = prefix
        self.loop = loop
        self.inbox: collections.deque[ASGIReceiveEvent] = collections.deque()
        self._inbox_waiter: Future[None] | None = None
        self.answer: Future[ASGISendEvent | None] = loop.create_future()
        self.ended: Future[None] = loop.create_future()  # set as its task ends
        self.task: Task | None = None
        self.taking_part = True
        self.phase: str | None = None  # "lifespan.startup." while that phase awaits an answer

    async def run(self, app: ASGIFramework, scope: LifespanScope) -> None:
        try:
            await app(scope, self.receive, self.send)
        except Exception:
            pass  # it does not speak lifespan (or failed after): it takes no further part
        finally:
            settle(self.ended)
            settle(self.answer, None)  # ended before it answered

    def put(self, message: ASGIReceiveEvent) -> None:
        self.inbox.append(message)
        if self._inbox_waiter is not None:
            settle(self._inbox_waiter)

    async def receive(self) -> ASGIReceiveEvent:
        while not self.inbox:
            waiter = self._inbox_waiter = self.loop.create_future()
            try:
                await waiter
            finally:
                self._inbox_waiter = None
        return self.inbox.popleft()

    async def send(self, message: ASGISendEvent) -> None:
        kind = message["type"]
        if self.phase is None or self.answer.done() or not kind.startswith(self.phase):
            raise UnexpectedMessageError("lifespan", kind)
        self.answer.set_result(message)

    async def wait_answer(self) -> ASGISendEvent | None:
        """The application's answer to the current phase; None if its task ended first."""
        answer = await self.answer
        self.answer = self.loop.create_future()
        if self.ended.done():
            settle(self.answer, None)
        self.phase = None
        return answer


class _Lifespan:
    def __init__(
        self,
        mounts: Mapping[str, ASGIFramework],
        scope: LifespanScope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
    ) -> None:
        self.apps = mounts
        self.scope = scope
        self.receive = receive
        self.send = send

    async def run(self) -> None:
        async with task_loop() as loop:
            mounted = [_Mounted(prefix, loop) for prefix in self.apps]
            for entry in mounted:
                entry.task = loop.create_task(entry.run(self.apps[entry.prefix], {**self.scope}))
            try:
                while True:
                    message = await self.receive()
                    phase = message["type"].removeprefix("lifespan.")
                    if phase not in {"startup", "shutdown"}:
                        continue
                    failures = await self._phase(mounted, message, phase)
                    await self.send(_outcome(phase, failures))
                    if failures or phase == "shutdown":
                        return
            finally:
                await _finish(loop, mounted)

    async def _phase(
        self, mounted: list[_Mounted], message: ASGIReceiveEvent, phase: str
    ) -> list[str]:
        """Hand ``message`` to every taking part and wait for all; the failure messages."""
        active = [entry for entry in mounted if entry.taking_part]
        for entry in active:
            entry.phase = f"lifespan.{phase}."
            entry.put(message)
        answers = [await entry.wait_answer() for entry in active]
        failures: list[str] = []
        for entry, answer in zip(active, answers, strict=True):
            if answer is None:
                entry.taking_part = False
                if phase == "startup":
                    continue  # does not speak lifespan
                failures.append(f"{entry.prefix or '/'}: lifespan ended before {phase} completed")
            elif answer["type"] == f"lifespan.{phase}.failed":
                reason = str(answer.get("message", "")) or f"{phase} failed"
                failures.append(f"{entry.prefix or '/'}: {reason}")
        return failures


def _outcome(phase: str, failures: list[str]) -> ASGISendEvent:
    """The message that reports a phase to the server."""
    reason = "; ".join(failures)
    if phase == "startup":
        if failures:
            return {"type": "lifespan.startup.failed", "message": reason}
        return {"type": "lifespan.startup.complete"}
    if failures:
        return {"type": "lifespan.shutdown.failed", "message": reason}
    return {"type": "lifespan.shutdown.complete"}


async def _finish(loop: EventLoop, mounted: list[_Mounted]) -> None:
    """End the lifespan tasks: those done are collected, the others cancelled."""
    # One pass of the loop lets an application return after its last answer.
    await next_turn(loop)
    for entry in mounted:
        if entry.task is not None and not entry.ended.done():
            entry.task.cancel()
    for entry in mounted:
        if entry.task is not None:
            await entry.ended


# Hypercorn's names for its asyncio and trio flavours: one class serves both.
AsyncioDispatcherMiddleware = DispatcherMiddleware
TrioDispatcherMiddleware = DispatcherMiddleware
