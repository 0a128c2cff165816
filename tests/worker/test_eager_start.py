"""Eager request starts (Python 3.12+): an app that answers without suspending
is served inside the ``data_received`` that brought its request.

Deterministic: the real ``HTTPConnection``, streams and apps on the virtual
clock loop over an in-memory transport (see ``test_io``). On 3.11 the same
requests are served one loop turn later, as before.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from tests.worker.test_io import GET, Client, run

EAGER = sys.version_info >= (3, 12)


async def instant(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers without awaiting anything that suspends."""
    if scope["type"] != "http":
        return
    body = scope["path"].encode()
    headers = [(b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.skipif(not EAGER, reason="eager task starts need Python 3.12")
def test_a_request_is_answered_within_data_received() -> None:
    async def test() -> None:
        client = Client(instant)
        client.send(GET)  # no await: the loop does not turn
        answer = client.transport.take()
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n/")
        assert not client.ctx.tasks  # done already: never tracked
        assert client.ctx.requests_served == 1

    run(test)


@pytest.mark.skipif(EAGER, reason="3.11 starts tasks on the next loop turn")
def test_without_eager_starts_the_answer_takes_a_loop_turn() -> None:
    async def test() -> None:
        client = Client(instant)
        client.send(GET)
        assert client.transport.take() == b""
        assert len(client.ctx.tasks) == 1
        assert (await client.response()).startswith(b"HTTP/1.1 200 ")
        assert not client.ctx.tasks

    run(test)


def test_a_pipelined_burst_leaves_in_order_without_recursion() -> None:
    """Each answer ends a response, which lets the protocol parse the next
    request: eagerly, that is an app run inside the step that dispatched the
    one before. The step loops instead of nesting."""
    count = 2 * sys.getrecursionlimit()

    async def test() -> None:
        client = Client(instant, keep_alive_max_requests=10 * count)
        client.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % n for n in range(count)))
        data = b""
        for _ in range(count):  # 3.11: a loop turn or two per request
            data += await client.response()
            if data.endswith(b"/%d" % (count - 1)):
                break
        bodies = [part.rsplit(b"\r\n\r\n", 1)[-1] for part in data.split(b"HTTP/1.1 ")[1:]]
        assert bodies == [b"/%d" % n for n in range(count)]

    run(test)


def test_what_an_app_sends_in_its_first_step_is_written_as_it_sends() -> None:
    """Not held until the step ends: the transport's buffer must see it, or an
    app sending in a loop would never meet back-pressure."""
    written: list[int] = []
    clients: list[Client] = []

    async def streams(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
            written.append(len(clients[0].transport.written))
        await send({"type": "http.response.body"})

    async def test() -> None:
        clients.append(Client(streams))
        clients[0].send(GET)
        await clients[0].response()
        assert written == [1, 2, 3]

    run(test)


def test_an_app_that_suspends_goes_on_as_a_task() -> None:
    gate: list[asyncio.Event] = []

    async def waits(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        gate.append(asyncio.Event())
        await gate[0].wait()
        await instant(scope, receive, send)

    async def test() -> None:
        client = Client(waits)
        client.send(GET)
        await client.settle()
        assert client.transport.take() == b"" and len(client.ctx.tasks) == 1
        gate[0].set()
        assert (await client.response()).endswith(b"\r\n\r\n/")
        assert not client.ctx.tasks

    run(test)


def test_current_task_is_the_requests_own_in_its_first_step() -> None:
    seen: list[tuple[asyncio.Task[Any] | None, asyncio.Task[Any] | None]] = []

    async def records(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        first = asyncio.current_task()
        await asyncio.sleep(0)  # from here on a scheduled step of the same task
        seen.append((first, asyncio.current_task()))
        await instant(scope, receive, send)

    async def test() -> None:
        own = asyncio.current_task()
        client = Client(records)
        client.send(GET + GET)
        await client.response()
        assert len(seen) == 2
        for first, later in seen:
            assert first is not None and first is later and first is not own
        assert seen[0][0] is not seen[1][0]  # a task per request

    run(test)
