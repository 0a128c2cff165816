"""HUP: the rolling reload, under load, and a broken deploy."""

from __future__ import annotations

import re
import signal
import socket
import time
from pathlib import Path

import psutil
import pytest

from tests.supervisor.harness import APP, Load, master, scaled, wait_for


@pytest.mark.slow
@pytest.mark.parametrize(
    ("worker_class", "run"), [("asyncio", 0), ("asyncio", 1), ("asyncio", 2), ("trio", 0)]
)
def test_hup_under_load_fails_no_request(tmp_path: Path, worker_class: str, run: int) -> None:
    with master(tmp_path, "-p", "hc.pid", "-k", worker_class, workers=4) as server:
        old = server.workers()
        with Load(server.port, rate=300, max_seconds=60) as load:
            load.wait_sent(600)
            (tmp_path / "app.py").write_text(APP.replace('"v1"', '"v2"'))
            hup_at = time.monotonic()
            server.kill(signal.SIGHUP)
            wait_for(lambda: not (old & server.workers()), 30, "every old worker gone")
            gone = time.monotonic() - hup_at
            new = server.wait_ready(4)
            sent_at_swap = load.result.sent
            load.wait_sent(sent_at_swap + 600)
            result = load.stop()
        assert result.failures == [], result.failures[:10]
        # A retiring worker serves a request that meets its idle keep-alive
        # connection, so no client needs to retry either.
        assert result.stale_retries == 0
        assert result.rate >= 200, result.rate
        assert result.bodies["v2"] >= 500
        assert not (old & new)
        assert (tmp_path / "hc.pid").read_text() == f"{server.pid}\n"
        assert psutil.Process(server.pid).is_running()
        print(
            f"\nHUP under load ({worker_class}): sent {result.sent} in {result.seconds:.1f} s "
            f"({result.rate:.0f} req/s), failed {len(result.failures)}, "
            f"keep-alive retries {result.stale_retries}; last old worker gone "
            f"{gone:.2f} s after HUP; responses {dict(result.bodies)}"
        )


def test_broken_deploy_keeps_the_old_workers(tmp_path: Path) -> None:
    with master(tmp_path, workers=2) as server:
        old = server.workers()
        (tmp_path / "app.py").write_text(APP.replace('VERSION = "v1"', "VERSION = = 'v2'"))
        server.kill(signal.SIGHUP)
        wait_for(lambda: "Reload refused" in server.log(), 20, "the reload to be refused")
        log = server.log()
        assert "SyntaxError" in log and "Traceback" in log
        assert server.process.poll() is None
        assert server.workers() == old
        assert all(server.get()[1].startswith("v1") for _ in range(10))

        (tmp_path / "app.py").write_text(APP.replace('"v1"', '"v3"'))
        server.kill(signal.SIGHUP)
        wait_for(lambda: not (old & server.workers()), 20, "the old workers replaced")
        server.wait_ready(2)
        assert all(server.get()[1].startswith("v3") for _ in range(10))
        assert len(re.findall("Reload complete", server.log())) == 1


def test_a_refused_reload_tells_systemd_the_old_workers_serve(tmp_path: Path) -> None:
    inbox = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    inbox.bind(str(tmp_path / "notify"))
    inbox.settimeout(scaled(10))
    messages: list[str] = []

    def receive_until(needle: str, start: int = 0) -> None:
        while not any(needle in message for message in messages[start:]):
            messages.append(inbox.recv(4096).decode())

    with (
        inbox,
        master(tmp_path, workers=2, env={"NOTIFY_SOCKET": str(tmp_path / "notify")}) as server,
    ):
        receive_until("READY=1")
        (tmp_path / "app.py").write_text(APP.replace('VERSION = "v1"', "VERSION = = 'v2'"))
        server.kill(signal.SIGHUP)
        receive_until("RELOADING=1")
        refused = len(messages)
        receive_until("READY=1", refused)
        after = messages[refused:]
        assert any("READY=1" in m and
                   "STATUS=Reload refused; 2 worker(s) of the previous code serving" in m
                   for m in after), after  # fmt: skip
        assert not any("STATUS=0 of 2" in m for m in messages), messages
