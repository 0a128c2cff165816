"""``--daemon``: detached for real, and the launcher's verdict (issue tests 1 to 3)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil

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
from tests.supervisor.harness import request

# Lifespan startup marks the moment the application is up.
SLOW_START_APP = APP.replace(
    "            message = await receive()\n",
    "            message = await receive()\n"
    "            if message['type'] == 'lifespan.startup':\n"
    "                await asyncio.sleep(0.5)\n"
    "                open('started-' + str(os.getpid()), 'w').close()\n",
)

# Every worker dies in its lifespan startup: the master gives up (exit 3) once
# the first boot's retries are over.
CRASHING_APP = APP.replace(
    "            message = await receive()\n",
    "            message = await receive()\n"
    "            if message['type'] == 'lifespan.startup':\n"
    "                os._exit(9)\n",
)


def test_daemon_detaches_serves_and_stops(tmp_path: Path, daemons: Daemons) -> None:
    (tmp_path / "app.py").write_text(SLOW_START_APP)
    pid_file = tmp_path / "hc.pid"
    launched, port = launch("-w", "2", cwd=tmp_path)
    assert launched.returncode == 0, launched.stderr
    master = daemons.track(pid_file)
    # The launcher returned only once both workers had started their application.
    assert len(list(tmp_path.glob("started-*"))) == 2
    assert request(port, "/", timeout=5)[0] == 200
    process = psutil.Process(master)
    assert process.terminal() is None
    assert os.getsid(master) == master or os.getsid(master) != os.getsid(0)
    assert os.getsid(master) != master, "the daemon must not be a session leader"
    assert os.getsid(master) != os.getsid(0), "the daemon must leave the test's session"
    assert process.ppid() not in (os.getpid(), 0)
    assert os.getpid() not in {p.pid for p in process.parents()}

    status = run_hypercorn("ctl", "status", "--pid", "hc.pid", cwd=tmp_path)
    assert status.returncode == 0, status.stdout
    assert f"running (pid {master}" in status.stdout
    stop = run_hypercorn("ctl", "stop", "--pid", "hc.pid", cwd=tmp_path)
    assert stop.returncode == 0, stop.stdout
    assert not alive(master)  # stop waited for it
    status = run_hypercorn("ctl", "status", "--pid", "hc.pid", cwd=tmp_path)
    assert status.returncode == 3, status.stdout
    assert not pid_file.exists()
    again = run_hypercorn("ctl", "stop", "--pid", "hc.pid", cwd=tmp_path)
    assert again.returncode == 0 and "not running" in again.stdout


def test_second_start_is_refused_and_a_stale_pid_file_replaced(
    tmp_path: Path, daemons: Daemons
) -> None:
    (tmp_path / "app.py").write_text(APP)
    pid_file = tmp_path / "hc.pid"
    dead = subprocess.Popen(["true"])
    dead.wait()
    pid_file.write_text(f"{dead.pid}\n")  # a PID that no longer runs
    first, _ = launch(cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "replacing stale PID file" in first.stderr
    master = daemons.track(pid_file)
    assert master != dead.pid
    second, _ = launch(cwd=tmp_path)
    assert second.returncode == 7, second.stderr
    assert second.stderr.strip().endswith(f"already running (pid {master}, PID file {pid_file})")
    assert pid_in(pid_file) == master
    assert alive(master)
    os.kill(master, signal.SIGTERM)
    wait_for(lambda: not alive(master), 15, "the master to stop")
    assert not pid_file.exists()


def test_daemon_whose_app_fails_to_import_reports_it(tmp_path: Path, daemons: Daemons) -> None:
    (tmp_path / "broken.py").write_text("import no_such_dependency_here\n")
    launched, _ = launch(cwd=tmp_path, app="broken:app")
    assert launched.returncode == 4, launched.stderr
    assert "No module named 'no_such_dependency_here'" in launched.stderr
    assert "cannot import application 'broken:app'" in launched.stderr
    assert not (tmp_path / "hc.pid").exists()


def test_daemon_writes_its_output_to_the_error_log_file(tmp_path: Path, daemons: Daemons) -> None:
    (tmp_path / "app.py").write_text(APP + "\nprint('printed by the app', flush=True)\n")
    launched, port = launch("--error-logfile", "error.log", cwd=tmp_path)
    assert launched.returncode == 0, launched.stderr
    master = daemons.track(tmp_path / "hc.pid")
    assert request(port)[0] == 200
    log = tmp_path / "error.log"
    wait_for(lambda: "printed by the app" in log.read_text(), 10, "the app's print in the log")
    assert "Worker" in log.read_text()
    os.kill(master, signal.SIGTERM)
    wait_for(lambda: not alive(master), scaled(15), "the master to stop")


def test_daemon_that_halts_ends_with_the_masters_last_words(
    tmp_path: Path, daemons: Daemons
) -> None:
    """Workers that die while they boot: the launcher says what a foreground run says
    last, and exits with the master's code."""
    (tmp_path / "app.py").write_text(CRASHING_APP)
    runs = {}
    for mode in ("foreground", "daemon"):
        with listener() as sock:
            runs[mode] = run_hypercorn(
                *(["-D", "-p", "hc.pid"] if mode == "daemon" else []),
                "-w", "2", "--boot-retry-window", "1", "-b", f"fd://{sock.fileno()}",
                "app:app", cwd=tmp_path, pass_fds=(sock.fileno(),),
            )  # fmt: skip
    foreground, daemon = runs["foreground"], runs["daemon"]
    halt = foreground.stderr.strip().splitlines()[-1]
    assert foreground.returncode == 3 and halt.startswith("hypercorn: error: "), foreground.stderr
    assert daemon.returncode == foreground.returncode, daemon.stderr
    assert daemon.stderr.strip().splitlines()[-1] == halt, daemon.stderr
    assert not (tmp_path / "hc.pid").exists()


def test_stale_pid_file_of_a_live_stranger_says_so(tmp_path: Path, daemons: Daemons) -> None:
    (tmp_path / "app.py").write_text(APP)
    stranger = subprocess.Popen(["sleep", "600"])
    try:
        (tmp_path / "hc.pid").write_text(f"{stranger.pid}\n")
        launched, _ = launch(cwd=tmp_path)
        assert launched.returncode == 0, launched.stderr
        daemons.track(tmp_path / "hc.pid")
        assert (
            f"replacing stale PID file {tmp_path / 'hc.pid'} "
            f"(pid {stranger.pid} is not a hypercorn master (sleep 600))"
        ) in launched.stderr
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
