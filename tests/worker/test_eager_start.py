"""Eager request starts (Python 3.12+): an app that answers without suspending
is served inside the ``data_received`` that brought its request. What it, the
protocol, or an app's later task sends leaves at the end of the loop's pass.

Deterministic: the real ``HTTPConnection``, streams and apps on the virtual
clock loop over an in-memory transport (see ``test_io``). On 3.11 the same
requests are served one loop turn later, as before.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest

from hypercorn.worker.io import HOLD_LIMIT
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
    """The app is done before ``data_received`` returns; its answer leaves at
    the end of the loop's pass over ready sockets (``io.py`` holds it)."""

    async def test() -> None:
        client = Client(instant)
        client.send(GET)  # no await: the loop does not turn
        assert not client.ctx.tasks  # done already: never tracked
        assert client.ctx.requests_served == 1
        assert client.transport.take() == b""  # held for the pass's end
        await asyncio.sleep(0)  # one loop turn
        answer = client.transport.take()
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n/")

    run(test)


@pytest.mark.skipif(not EAGER, reason="eager task starts need Python 3.12")
def test_an_answer_held_for_the_pass_leaves_before_the_close() -> None:
    async def test() -> None:
        client = Client(instant)
        client.send(b"GET /bye HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert client.transport.closed  # closed inside data_received, after writing
        answer = client.transport.take()
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n/bye")

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


def test_a_loop_with_a_task_factory_of_its_own_keeps_it() -> None:
    """A task factory set on the loop (by the app or a tool) makes every
    request's task, with no eager start around it: the request is served
    from the loop's next turn, by a task the factory made."""
    made: list[asyncio.Task[Any]] = []

    def factory(loop: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    async def test() -> None:
        asyncio.get_running_loop().set_task_factory(factory)
        client = Client(instant)
        client.send(GET)
        assert len(made) == 1 and not made[0].done()  # not started inside the read
        assert client.transport.take() == b""
        assert list(client.ctx.tasks.values()) == made
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


def test_an_app_sending_much_in_its_first_step_meets_the_transport_as_it_sends() -> None:
    """At most ``HOLD_LIMIT`` bytes wait for the end of the pass: beyond that,
    what an app sends reaches the transport's buffer as it sends, or an app
    sending in a loop would never meet back-pressure."""
    chunk = b"x" * (HOLD_LIMIT // 3)
    unwritten: list[int] = []
    clients: list[Client] = []

    async def streams(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        sent = 0
        for _ in range(12):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent += len(chunk)
            written = sum(len(piece) for piece in clients[0].transport.written)
            unwritten.append(sent - written)
        await send({"type": "http.response.body"})

    async def test() -> None:
        clients.append(Client(streams))
        clients[0].send(GET)
        answer = await clients[0].response()
        assert answer.count(b"x") == 12 * len(chunk)
        assert len(unwritten) == 12 and max(unwritten) <= HOLD_LIMIT

    run(test)


def test_output_made_while_reading_leaves_at_the_end_of_the_pass() -> None:
    """Not only an app's answer: what the protocol itself answers to a read
    (here HTTP/2's SETTINGS and PING acknowledgements) waits for the pass's
    end too, so two connections read in one pass are answered together."""

    async def test() -> None:
        clients = [Client(instant), Client(instant)]
        peers = [h2.connection.H2Connection(h2.config.H2Configuration()) for _ in clients]
        for client, peer in zip(clients, peers, strict=True):
            peer.initiate_connection()
            peer.ping(b"12345678")
            client.send(peer.data_to_send())
        assert [client.transport.take() for client in clients] == [b"", b""]
        await asyncio.sleep(0)  # one loop turn: the pass's end
        for client, peer in zip(clients, peers, strict=True):
            events = peer.receive_data(client.transport.take())
            kinds = {type(event) for event in events}
            assert {h2.events.RemoteSettingsChanged, h2.events.PingAckReceived} <= kinds

    run(test)


def test_answers_sent_from_tasks_leave_together_at_the_end_of_the_pass() -> None:
    """An app that suspended answers from its task (on every interpreter):
    what two connections' tasks send in one pass is held, and both answers
    are written at the pass's end."""
    gates: list[asyncio.Event] = []

    async def waits(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        gate = asyncio.Event()
        gates.append(gate)
        await gate.wait()
        await instant(scope, receive, send)

    async def test() -> None:
        clients = [Client(waits), Client(waits)]
        for client in clients:
            client.send(GET)
        for client in clients:
            await client.settle()
        assert len(gates) == 2
        for gate in gates:
            gate.set()  # both tasks run in the next pass
        await asyncio.sleep(0)  # that pass: both answer, and hold what they send
        assert [client.transport.take() for client in clients] == [b"", b""]
        await asyncio.sleep(0)  # the pass's end
        for client in clients:
            assert client.transport.take().endswith(b"\r\n\r\n/")

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
