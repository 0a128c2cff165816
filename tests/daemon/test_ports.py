"""One server per port: a second master on a held ``--bind`` fails with "address
already in use" (exit 5) and the first keeps every connection; ``--reuse-port``
is the explicit way to share."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil

from tests.cli_server import stop
from tests.daemon.helpers import APP, alive, scaled, wait_for
from tests.supervisor.harness import request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def started(cwd: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``python -m hypercorn ARGS`` in the foreground; stopped (and its workers) at the end."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hypercorn", "--graceful-timeout", "5", *args],
        cwd=cwd, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    family: set[int] = set()
    try:
        yield process
    finally:
        with contextlib.suppress(psutil.Error):
            family = {child.pid for child in psutil.Process(process.pid).children()}
        stop(process)
        assert process.stdout is not None
        process.stdout.close()
        for pid in family:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def workers_of(process: subprocess.Popen[str], count: int) -> set[int]:
    def ready() -> set[int] | None:
        assert process.poll() is None, f"exited {process.returncode}"
        children = [  # not the template
            c for c in psutil.Process(process.pid).children()
            if c.cmdline()[0].startswith("hypercorn: worker")
        ]  # fmt: skip
        return {c.pid for c in children} if len(children) == count else None

    return wait_for(ready, 20, f"{count} workers")


def serving(port: int, workers: set[int]) -> bool:
    """Every one of 20 new connections is answered by one of ``workers``."""
    for _ in range(20):
        status, body = request(port, "/", timeout=5)
        if status != 200 or int(body.split()[1]) not in workers:
            return False
    return True


def test_a_second_master_on_a_held_port_exits_5_and_the_first_serves(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    bind = f"127.0.0.1:{port}"
    with started(tmp_path, "-b", bind, "-w", "2", "-p", "first.pid", "app:app") as first:
        wait_for(lambda: _answers(port), 20, "the first master to serve")
        workers = workers_of(first, 2)
        with started(tmp_path, "-b", bind, "-w", "2", "-p", "second.pid", "app:app") as second:
            try:
                code = second.wait(scaled(20))
            except subprocess.TimeoutExpired:
                code = None
            assert second.stdout is not None
            output = second.stdout.read() if code is not None else ""
            # Before it exits (or is stopped), it must not have taken any traffic.
            assert serving(port, workers), "a connection went to the second master"
        assert code == 5, f"the second master still ran after {scaled(20):.0f} s"
        last = output.strip().splitlines()[-1]
        assert last.endswith(f"cannot listen on {bind}: address already in use"), output
        assert not (tmp_path / "second.pid").exists()
        assert first.poll() is None and serving(port, workers)
        assert psutil.Process(first.pid).children() and workers_of(first, 2) == workers


def test_reuse_port_is_the_explicit_way_to_share(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    port = free_port()
    bind = f"127.0.0.1:{port}"
    with started(tmp_path, "-b", bind, "--reuse-port", "-w", "1", "app:app") as first:
        wait_for(lambda: _answers(port), 20, "the first master to serve")
        with started(tmp_path, "-b", bind, "--reuse-port", "-w", "1", "app:app") as second:
            ours = workers_of(first, 1) | workers_of(second, 1)
            answered: set[int] = set()

            def both_answer() -> bool:
                answered.add(int(request(port, "/", timeout=5)[1].split()[1]))
                return answered == ours

            wait_for(both_answer, 20, "both servers to take connections")


def _answers(port: int) -> bool:
    try:
        return request(port, "/", timeout=2)[0] == 200
    except OSError:
        return False
