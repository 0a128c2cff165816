"""How long the master takes to reload and to replace a worker (not a test).

    .venv/bin/python benchmarks/supervisor_times.py [--runs 7] [--import-seconds 0.3]

For each application (the supervisor tests' small app, and the same app made
to spend ``--import-seconds`` at import, as a large framework does) it starts a
real master with 4 workers and measures, ``--runs`` times each:

- HUP: from ``kill -HUP`` until the last old worker has exited (and 4 new
  workers are READY);
- respawn: from ``kill -9`` of one worker until its replacement logs READY
  (kills are ``CRASH_WINDOW`` apart, so the master's crash backoff, which is
  policy and not speed, plays no part).

Prints the median, min and max of each. Figures depend on the machine and its
load: compare them only within one run of the same machine.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil
from tests.supervisor.harness import APP, Master, master

POLL = 0.002
CRASH_WINDOW = 10.5  # the master backs off crashes closer together than 10 s


def _workers(server: Master) -> set[int]:
    """Live children titled as workers (a template, if any, is not one)."""
    found = set()
    for child in psutil.Process(server.pid).children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and child.cmdline()[0].startswith(
                "hypercorn: worker"
            ):
                found.add(child.pid)
        except (psutil.Error, IndexError):
            continue
    return found


def _ready(server: Master) -> set[int]:
    return {int(pid) for pid in re.findall(r"Worker (\d+) ready", server.log())}


def _until(condition: Callable[[], bool], limit: float = 60.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > limit:
            raise TimeoutError("no progress in 60 s")
        time.sleep(POLL)
    return time.monotonic() - started


def _settled(server: Master, count: int) -> None:
    _until(lambda: len(_workers(server) & _ready(server)) == count == len(_workers(server)))


def measure(app_source: str, runs: int) -> tuple[list[float], list[float]]:
    hups: list[float] = []
    respawns: list[float] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        master(Path(tmp), workers=4, app_source=app_source, wait=False) as server,
    ):
        _settled(server, 4)
        for _ in range(runs):
            old = _workers(server)
            server.kill(signal.SIGHUP)
            hups.append(_until(lambda old=old: not (old & _workers(server))))
            _settled(server, 4)
        for _ in range(runs):
            time.sleep(CRASH_WINDOW)
            seen = _ready(server)
            os.kill(min(_workers(server)), signal.SIGKILL)
            respawns.append(_until(lambda seen=seen: bool(_ready(server) - seen)))
            _settled(server, 4)
    return hups, respawns


def _summary(name: str, figures: list[float]) -> str:
    return (
        f"{name}: median {statistics.median(figures) * 1000:.0f} ms "
        f"(min {min(figures) * 1000:.0f}, max {max(figures) * 1000:.0f}, n={len(figures)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--import-seconds", type=float, default=0.3)
    args = parser.parse_args()
    heavy = f"import time\ntime.sleep({args.import_seconds})\n" + APP
    for label, source in (("small app", APP), (f"{args.import_seconds} s import", heavy)):
        hups, respawns = measure(source, args.runs)
        print(f"{label}: {_summary('HUP, 4 workers', hups)}; "
              f"{_summary('respawn after kill -9', respawns)}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
