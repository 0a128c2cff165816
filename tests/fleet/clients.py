"""Clients that run inside the balancer's namespace: a bounded load and held WebSockets.

Run as ``ip netns exec <balancer> python -m tests.fleet.clients load|ws ...``
from the repository's root. Each writes a progress file while it runs (so the
test can wait on conditions) and its result as JSON when it ends: on SIGTERM,
or when its bound in time or count is reached.

``load``: ``tests.supervisor.harness.Load`` (paced GETs over keep-alive and new
connections, every failure kept with its reason) through the balancer, with
each response's time (``time.monotonic``, the same clock as the test's),
outcome, and the code version and host that answered it.

``ws``: opens N WebSockets through the balancer, notes the host each landed
on (the server's first message), and records each one's close code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import threading
import time
from pathlib import Path

from tests.supervisor.harness import Load


class TimedLoad(Load):
    """``Load`` that also keeps (time, outcome, version, host) for every request."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.timeline: list[tuple[float, str, str, str]] = []

    def _record(self, outcome: str | None, body: str = "", retried: bool = False) -> bool:
        version, _pid, host = body.split() if outcome is None else ("", "", "")
        self.timeline.append((time.monotonic(), outcome or "", version, host))
        return super()._record(outcome, body, retried)


def _write(path: Path, data: object) -> None:
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(data))
    temp.replace(path)


def run_load(args: argparse.Namespace) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    load = TimedLoad(args.port, rate=args.rate, keep_alive=args.keep_alive, fresh=args.fresh,
                     max_seconds=args.max_seconds, max_requests=args.max_requests)  # fmt: skip
    end = time.monotonic() + args.max_seconds
    with load:
        while not stop.wait(0.05) and time.monotonic() < end:
            r = load.result
            if r.sent >= args.max_requests:
                break
            _write(args.progress, {"sent": r.sent, "failed": len(r.failures)})
        result = load.stop()
    _write(args.out, {
        "sent": result.sent, "ok": result.ok, "failures": result.failures,
        "stale_retries": result.stale_retries, "seconds": result.seconds,
        "bodies": dict(result.bodies), "timeline": load.timeline,
    })  # fmt: skip


async def _hold(args: argparse.Namespace) -> None:
    import websockets
    from websockets.exceptions import ConnectionClosed

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    connections = []
    for _ in range(args.count):
        ws = await websockets.connect(f"ws://127.0.0.1:{args.port}/ws", open_timeout=10)
        first = str(await asyncio.wait_for(ws.recv(), 10))
        connections.append((ws, first.split()[2]))
    records: list[dict[str, object]] = [{"host": host, "code": None} for _, host in connections]

    async def watch(index: int, ws: websockets.ClientConnection) -> None:
        try:
            await ws.recv()
        except ConnectionClosed as closed:
            records[index]["code"] = closed.rcvd.code if closed.rcvd else 1006
        _write(args.progress, records)

    watchers = [asyncio.create_task(watch(i, ws)) for i, (ws, _) in enumerate(connections)]
    _write(args.progress, records)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    for task in watchers:
        task.cancel()
    for ws, _ in connections:
        await ws.close()
    _write(args.out, records)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fleet.clients")
    parser.add_argument("kind", choices=["load", "ws"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--progress", type=Path, required=True)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--rate", type=float, default=400)
    parser.add_argument("--keep-alive", type=int, default=12)
    parser.add_argument("--fresh", type=int, default=2)
    parser.add_argument("--max-requests", type=int, default=60_000)
    parser.add_argument("--count", type=int, default=6)
    args = parser.parse_args()
    if args.kind == "load":
        run_load(args)
    else:
        asyncio.run(_hold(args))


if __name__ == "__main__":
    main()
