"""sd_notify to a real datagram socket: READY=1 only once requests are served,
RELOADING=1/READY=1 around a HUP (a refused one too), STOPPING=1 on TERM,
STATUS=, WATCHDOG=1."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from hypercorn.supervisor.notify import Notifier, monotonic_usec
from tests.daemon.helpers import APP, listener, scaled, wait_for
from tests.supervisor.harness import request

# Lifespan startup says it began, then waits for the test's go-ahead.
GATED_APP = APP.replace(
    "            message = await receive()\n",
    "            message = await receive()\n"
    "            if message['type'] == 'lifespan.startup':\n"
    "                open('starting-' + str(os.getpid()), 'w').close()\n"
    "                while not os.path.exists('go'):\n"
    "                    await asyncio.sleep(0.01)\n",
)


class Inbox:
    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def wait(self, needle: str, seconds: float = 20) -> int:
        """Index of the first message (after those seen) containing ``needle``."""

        def found() -> int | None:
            for index, message in enumerate(self.drain()):
                if index >= self._seen and needle in message.splitlines():
                    return index
            return None

        index = wait_for(lambda: found() is not None, seconds, needle) and found()
        assert index is not None
        self._seen = index + 1
        return index

    _seen = 0


def test_notifications_follow_the_workers(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(GATED_APP)
    inbox = Inbox(tmp_path / "notify")
    with listener() as sock:
        port = sock.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, "-m", "hypercorn", "-w", "2", "-b", f"fd://{sock.fileno()}",
             "--graceful-timeout", "5", "app:app"],
            cwd=tmp_path, pass_fds=(sock.fileno(),),
            env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"),
                 "WATCHDOG_USEC": "400000"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        wait_for(lambda: len(list(tmp_path.glob("starting-*"))) == 2, 20, "both workers starting")
        inbox.wait("WATCHDOG=1")  # the master is alive and talking, yet:
        assert not any("READY=1" in m for m in inbox.drain())
        (tmp_path / "go").touch()
        inbox.wait("READY=1")
        assert request(port, "/", timeout=2)[0] == 200  # serving at once
        ready = next(m for m in inbox.messages if "READY=1" in m.splitlines())
        assert "STATUS=2 of 2 worker(s) ready" in ready

        before = monotonic_usec()
        process.send_signal(signal.SIGHUP)
        reloading = inbox.messages[inbox.wait("RELOADING=1")]
        stamp = int(re.search(r"MONOTONIC_USEC=(\d+)", reloading).group(1))  # type: ignore[union-attr]
        assert before <= stamp <= monotonic_usec()
        inbox.wait("READY=1")

        # A refused reload: READY=1 again, counting the workers that still serve.
        (tmp_path / "app.py").write_text("raise RuntimeError('broken deploy')\n")
        process.send_signal(signal.SIGHUP)
        inbox.wait("RELOADING=1")
        refused = inbox.messages[inbox.wait("READY=1")]
        assert "STATUS=Reload refused; 2 worker(s) of the previous code serving" in (
            refused.splitlines()
        ), refused
        assert request(port, "/", timeout=2)[0] == 200

        process.send_signal(signal.SIGTERM)
        inbox.wait("STOPPING=1")
        assert process.wait(scaled(15)) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        inbox.drain()
        inbox.sock.close()
    significant = [m.strip().replace("\n", " ") for m in inbox.messages if "WATCHDOG" not in m]
    print("\n".join(significant))  # the order, for the record (pytest -s)
    kinds = [m.split()[0] for m in significant]
    assert kinds.index("STOPPING=1") > kinds.index("RELOADING=1") > kinds.index("READY=1")
    assert kinds.count("READY=1") == 3 and kinds[-1] == "STOPPING=1"


def test_notifier_speaks_the_abstract_namespace_and_times_the_watchdog() -> None:
    name = f"hypercorn-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as inbox:
        inbox.bind("\0" + name)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "2000000"})
        assert notifier.enabled and notifier.watchdog_interval == 1.0
        assert notifier.send(READY=1, STATUS="serving")
        assert inbox.recv(100) == b"READY=1\nSTATUS=serving\n"
        assert notifier.watchdog(100.0) == 101.0
        assert inbox.recv(100) == b"WATCHDOG=1\n"
        assert notifier.watchdog(100.5) == 101.0  # not due: nothing sent
        notifier.close()
    other = Notifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "10", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None  # meant for another process
    other.close()
    assert not Notifier({}).send(READY=1)
