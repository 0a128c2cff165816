"""Start, stop and die: the master's life with real processes and signals."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.supervisor.harness import APP, master, request, scaled, wait_for


def test_forks_workers_that_serve_and_carry_titles(tmp_path: Path) -> None:
    with master(tmp_path, "-p", "hc.pid", workers=3) as server:
        workers = server.workers()
        assert len(workers) == 3
        assert (tmp_path / "hc.pid").read_text() == f"{server.pid}\n"
        assert psutil.Process(server.pid).cmdline()[0] == "hypercorn: master [app:app]"
        for pid in workers:
            assert psutil.Process(pid).cmdline()[0] == "hypercorn: worker [app:app]"
        seen = {int(server.get()[1].split()[1]) for _ in range(30)}
        assert seen <= workers


def test_term_finishes_in_flight_requests_then_refuses_and_exits_0(tmp_path: Path) -> None:
    with master(tmp_path, "-p", "hc.pid", "--graceful-timeout", "10", workers=2) as server:
        results: list[tuple[int, str]] = []
        slow = threading.Thread(target=lambda: results.append(request(server.port, "/slow?3", 20)))
        slow.start()
        wait_for((tmp_path / "slow-started").exists, 5, "the slow request")
        started = time.monotonic()
        server.kill(signal.SIGTERM)
        wait_for(lambda: _refused(server.port), 5, "new connections refused")
        code = server.process.wait(scaled(10))
        elapsed = time.monotonic() - started
        slow.join(scaled(5))
        assert code == 0, server.log()
        assert results and results[0][0] == 200
        assert elapsed < 8, elapsed  # well within graceful_timeout
        assert not (tmp_path / "hc.pid").exists()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT])
def test_int_and_quit_stop_quickly(tmp_path: Path, sig: signal.Signals) -> None:
    with master(tmp_path, "--graceful-timeout", "30", workers=2) as server:
        threading.Thread(target=_ignore_errors(server.port, "/slow?20"), daemon=True).start()
        wait_for(lambda: server.get()[0] == 200, 5, "serving")
        started = time.monotonic()
        server.kill(sig)
        server.process.wait(scaled(10))
        assert time.monotonic() - started < 5


def _ignore_errors(port: int, path: str) -> Callable[[], None]:
    def run() -> None:
        with contextlib.suppress(OSError):
            request(port, path, 30)

    return run


def test_workers_die_with_the_master(tmp_path: Path) -> None:
    with master(tmp_path, workers=3) as server:
        workers = server.workers()
        server.kill(signal.SIGKILL)
        server.process.wait(scaled(5))
        started = time.monotonic()
        wait_for(lambda: not any(_alive(pid) for pid in workers), 2, "workers to exit")
        assert time.monotonic() - started < scaled(2)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_pid_file_unchanged_when_not_ours(tmp_path: Path) -> None:
    with master(tmp_path, "-p", "hc.pid", workers=1) as server:
        (tmp_path / "hc.pid").write_text(f"{os.getpid()}\n")  # another owner took it
        server.kill(signal.SIGTERM)
        assert server.process.wait(scaled(10)) == 0
    assert (tmp_path / "hc.pid").read_text() == f"{os.getpid()}\n"


def test_systemd_socket_activation(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(APP)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    # As systemd does: the listener at descriptor 3, LISTEN_PID naming the server
    # (bash: dash takes one-digit descriptors only).
    script = (
        f'exec 3<&{fd}; LISTEN_FDS=1 LISTEN_PID=$$ exec "{sys.executable}" -m hypercorn '
        "-w 2 -b 127.0.0.1:1 app:app"
    )
    process = subprocess.Popen(
        ["bash", "-c", script], cwd=tmp_path, pass_fds=[fd],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    listener.close()
    try:
        status, _ = request(port, "/", timeout=20)  # queued until a worker accepts
        assert status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(scaled(10)) == 0
