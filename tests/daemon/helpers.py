"""Running ``hypercorn`` as a daemon under test: commands, listeners, clean-up.

The test owns each listener (``fd://N`` passed to the launcher, inherited by
the daemon): no port race. ``Daemons`` remembers every PID file a test used
and, at the end, stops whatever master still runs on one (SIGKILL after a
deadline) so that no daemon outlives its test.
"""

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

from tests.supervisor.harness import APP, scaled, wait_for

__all__ = ["APP", "Daemons", "launch", "listener", "run_hypercorn", "scaled", "wait_for"]


@contextlib.contextmanager
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    try:
        yield sock
    finally:
        sock.close()


def run_hypercorn(
    *args: str,
    cwd: Path,
    pass_fds: tuple[int, ...] = (),
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``python -m hypercorn ARGS``, waited for (bounded); output captured."""
    return subprocess.run(
        [sys.executable, "-m", "hypercorn", *args],
        cwd=cwd,
        pass_fds=pass_fds,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=scaled(timeout),
        check=False,
    )


def launch(
    *args: str, cwd: Path, app: str = "app:app"
) -> tuple[subprocess.CompletedProcess[str], int]:
    """``hypercorn -D -p hc.pid ARGS -b fd://N APP`` on a listener the test owns (the
    daemon keeps it); returns the launcher's outcome and the port."""
    with listener() as sock:
        port = int(sock.getsockname()[1])
        done = run_hypercorn(
            "-D", "-p", "hc.pid", *args, "-b", f"fd://{sock.fileno()}", app,
            cwd=cwd, pass_fds=(sock.fileno(),),
        )  # fmt: skip
    return done, port


def pid_in(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Daemons:
    """Every master started by a test, stopped for sure at its end."""

    def __init__(self) -> None:
        self.pids: set[int] = set()
        self.pid_files: list[Path] = []

    def track(self, pid_file: Path) -> int:
        pid = pid_in(pid_file)
        assert pid is not None, f"no PID in {pid_file}"
        self.pids.add(pid)
        if pid_file not in self.pid_files:
            self.pid_files.append(pid_file)
        return pid

    def family(self) -> set[int]:
        pids = set(self.pids)
        for path in self.pid_files:
            if (pid := pid_in(path)) is not None:
                pids.add(pid)
        everyone = set()
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                everyone.add(pid)
                everyone |= {child.pid for child in process.children(recursive=True)}
        return {pid for pid in everyone if alive(pid)}

    def close(self) -> None:
        masters = self.pids | {pid_in(path) or 0 for path in self.pid_files}
        for pid in self.family() & masters:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not self.family(), 15, "the daemons to stop")
        stubborn = self.family()
        for pid in stubborn:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        assert not stubborn, f"processes {stubborn} outlived their test"
