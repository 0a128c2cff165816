"""USR2 binary upgrade: under a constant load (a new master on the same
listeners, zero failed requests, the PID file handed over, the old master gone),
as systemd's watchdog sees it, and as ``hypercorn ctl reload`` sees it after."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.daemon.helpers import (
    APP,
    Daemons,
    alive,
    launch,
    listener,
    pid_in,
    run_hypercorn,
    scaled,
    wait_for,
)
from tests.daemon.systemd import Manager
from tests.supervisor.harness import Load, master, request

STARTUP_SECONDS = 1.0
# Lifespan startup takes a while: a rolling reload of two workers takes twice that.
SLOW_START_APP = APP.replace(
    "            message = await receive()\n",
    "            message = await receive()\n"
    "            if message['type'] == 'lifespan.startup':\n"
    f"                await asyncio.sleep({STARTUP_SECONDS})\n",
)


@pytest.mark.slow
def test_usr2_upgrade_under_load_fails_no_request(tmp_path: Path, daemons: Daemons) -> None:
    pid_file = tmp_path / "hc.pid"
    with master(tmp_path, "-p", "hc.pid", workers=2) as server:
        old = server.pid
        old_workers = server.workers()
        with Load(server.port, rate=200, keep_alive=2, fresh=2, max_seconds=60) as load:
            load.wait_sent(100)
            seen_second: list[int | None] = []

            def taken_over() -> bool:
                seen_second.append(pid_in(tmp_path / "hc.pid.2"))
                new = pid_in(pid_file)
                return new is not None and new != old

            server.kill(signal.SIGUSR2)
            wait_for(taken_over, 30, "the new master to take the PID file")
            new = daemons.track(pid_file)
            assert new in seen_second  # it held <pidfile>.2 while booting
            assert server.process.wait(30) == 0  # the old master drained and left
            wait_for(lambda: not (tmp_path / "hc.pid.2").exists(), 10, "<pidfile>.2 removed")
            sent = load.result.sent
            load.wait_sent(sent + 100)
        result = load.stop()
        assert not any(alive(pid) for pid in old_workers)
        new_workers = {
            child.pid
            for child in psutil.Process(new).children()
            if child.cmdline()[0].startswith("hypercorn: worker")  # not its template
        }
        assert len(new_workers) == 2
        assert result.failures == [], result.failures[:5]
        assert set(result.pids) & new_workers, "the new workers served"
        assert f"USR2: started new master {new}" in server.log()
        status = run_hypercorn("ctl", "status", "--pid", "hc.pid", cwd=tmp_path)
        assert status.returncode == 0 and f"pid {new}" in status.stdout
        assert run_hypercorn("ctl", "stop", "--pid", "hc.pid", cwd=tmp_path).returncode == 0
        assert not pid_file.exists()


@pytest.mark.slow
def test_the_new_master_takes_over_the_watchdog(tmp_path: Path, daemons: Daemons) -> None:
    """Twice in a row, as systemd sees it: MAINPID= moves to the new master, and
    WATCHDOG=1 never stops for as long as WatchdogSec, then comes from it."""
    (tmp_path / "app.py").write_text(APP)
    pid_file = tmp_path / "hc.pid"
    period = scaled(2.0)  # WatchdogSec
    with listener() as sock, open(tmp_path / "master.log", "wb") as log:
        # As systemd starts a service: WATCHDOG_PID names the process it starts.
        process = subprocess.Popen(
            ["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" "$@"', sys.executable, "-m", "hypercorn",
             "-w", "2", "-b", f"fd://{sock.fileno()}", "-p", "hc.pid",
             "--graceful-timeout", "5", "app:app"],
            cwd=tmp_path, pass_fds=(sock.fileno(),), stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"),
                 "WATCHDOG_USEC": str(int(period * 1_000_000))},
        )  # fmt: skip
    systemd = Manager(tmp_path / "notify", main=process.pid)
    try:
        wait_for(lambda: systemd.heeded("READY", "1"), 20, "READY=1")
        started = time.monotonic()
        masters = [process.pid]
        for _ in range(2):
            old = masters[-1]
            os.kill(old, signal.SIGUSR2)
            wait_for(lambda: pid_in(pid_file) not in (None, old), 30, "a new master")  # noqa: B023
            new = daemons.track(pid_file)
            masters.append(new)
            wait_for(lambda: not alive(old), 20, "the old master to leave")  # noqa: B023
            assert systemd.main == new, "MAINPID= must name the new master"
            gone = time.monotonic()
            # Beyond the old master's last word, the new one feeds the watchdog.
            wait_for(
                lambda: [m for m in systemd.heeded("WATCHDOG", "1", new) if m.at > gone][1:],  # noqa: B023
                3 * period,
                "WATCHDOG=1 from the new master",
            )
        gap = systemd.longest_watchdog_gap(started, time.monotonic())
        assert gap < period, f"{gap:.2f} s without WATCHDOG=1: systemd would kill the service"
    finally:
        systemd.close()
        if process.poll() is None:
            process.kill()
        process.wait()
    print(f"watchdog: longest gap {gap:.2f} s over two upgrades, WatchdogSec {period:.1f} s")


@pytest.mark.slow
def test_ctl_reload_after_an_upgrade_waits_and_reports_a_refusal(
    tmp_path: Path, daemons: Daemons
) -> None:
    (tmp_path / "app.py").write_text(SLOW_START_APP)
    started, port = launch("-w", "2", "--graceful-timeout", "5", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    first = daemons.track(tmp_path / "hc.pid")
    # A reload before the upgrade: the old master's counters differ from the new one's.
    before = run_hypercorn("ctl", "reload", "-p", "hc.pid", "--timeout", "60", cwd=tmp_path)
    assert before.returncode == 0, before.stdout
    upgrade = run_hypercorn("ctl", "upgrade", "-p", "hc.pid", "--timeout", "60", cwd=tmp_path)
    assert upgrade.returncode == 0, upgrade.stdout
    new = daemons.track(tmp_path / "hc.pid")
    assert new != first and not alive(first)

    # A broken deploy: refused, and said so; the v1 workers keep serving.
    (tmp_path / "app.py").write_text("raise RuntimeError('broken deploy')\n")
    refused = run_hypercorn("ctl", "reload", "-p", "hc.pid", "--timeout", "60", cwd=tmp_path)
    assert refused.returncode == 1, refused.stdout
    assert "reload failed" in refused.stdout
    assert {request(port)[1].split()[0] for _ in range(10)} == {"v1"}

    # A good deploy: two workers, each a second to start, replaced one after the other.
    (tmp_path / "app.py").write_text(SLOW_START_APP.replace('"v1"', '"v2"'))
    began = time.monotonic()
    reload = run_hypercorn("ctl", "reload", "-p", "hc.pid", "--timeout", "60", cwd=tmp_path)
    took = time.monotonic() - began
    assert reload.returncode == 0, reload.stdout
    assert took >= 2 * STARTUP_SECONDS, f"returned after {took:.2f} s: before the reload ended"
    assert {request(port)[1].split()[0] for _ in range(10)} == {"v2"}
    assert "2/2 workers ready" in reload.stdout
    print(refused.stdout + reload.stdout, end="")
    state = (tmp_path / "hc.pid.state").read_text()
    assert f"pid={new} " in state, state


def _joinable(port: int) -> bool:
    """Whether another socket asking for SO_REUSEPORT can bind the port (it must not)."""
    with socket.socket() as joiner:
        joiner.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            joiner.bind(("127.0.0.1", port))
        except OSError as error:
            assert error.errno == errno.EADDRINUSE
            return False
        return True


def _scrape(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=scaled(10)) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@pytest.mark.slow
def test_usr2_hands_the_metrics_listener_on(tmp_path: Path, daemons: Daemons) -> None:
    """The master's own listener passes to the new master like the others: never bound
    twice, so never in a SO_REUSEPORT group that a stranger could join."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        metrics_port = probe.getsockname()[1]
    pid_file = tmp_path / "hc.pid"
    with master(tmp_path, "-p", "hc.pid", "--metrics-bind", f"127.0.0.1:{metrics_port}",
                workers=1) as server:  # fmt: skip
        assert _scrape(metrics_port).startswith(b"HTTP/1.1 200 ")
        assert not _joinable(metrics_port)
        server.kill(signal.SIGUSR2)
        wait_for(lambda: pid_in(pid_file) not in (None, server.pid), 30, "the new master")
        new = daemons.track(pid_file)
        assert server.process.wait(scaled(30)) == 0
        assert _scrape(metrics_port).startswith(b"HTTP/1.1 200 ")  # from the new master
        assert not _joinable(metrics_port)
        assert f"USR2: started new master {new}" in server.log()


def test_ctl_upgrade_to_broken_code_fails_and_the_old_master_serves_on(
    tmp_path: Path, daemons: Daemons
) -> None:
    (tmp_path / "app.py").write_text(APP)
    started, port = launch(cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    old = daemons.track(tmp_path / "hc.pid")
    (tmp_path / "app.py").write_text("raise RuntimeError('broken deploy')\n")
    upgrade = run_hypercorn("ctl", "upgrade", "-p", "hc.pid", "--timeout", "60", cwd=tmp_path)
    assert upgrade.returncode == 1, upgrade.stdout
    assert f"upgrade failed: the new master did not start (see the error log); pid {old}" in (
        upgrade.stdout
    )
    assert pid_in(tmp_path / "hc.pid") == old and request(port)[0] == 200
    assert "last_upgrade=1:failed" in (tmp_path / "hc.pid.state").read_text()
