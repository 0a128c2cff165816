"""``--health-bind`` and ``drain_delay`` on a real master: /livez, /readyz, ctl drain, TERM."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from tests.supervisor.harness import APP, master, scaled, wait_for


def probe(sock_path: Path, target: str) -> tuple[int, str]:
    """GET ``target`` from the master's endpoint on a unix socket; (status, body)."""
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(scaled(10))
        client.connect(str(sock_path))
        client.sendall(f"GET {target} HTTP/1.1\r\nHost: health\r\n\r\n".encode())
        data = b""
        while chunk := client.recv(65536):  # the endpoint closes after its response
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def ctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hypercorn", "ctl", *args],
                          capture_output=True, text=True, timeout=scaled(60))  # fmt: skip


@pytest.mark.parametrize("worker_class", ["asyncio", "trio"])
def test_ready_drained_reloaded_and_drained_again_before_the_stop(
    tmp_path: Path, worker_class: str
) -> None:
    health = tmp_path / "health.sock"
    pid = str(tmp_path / "hc.pid")
    args = ("--health-bind", f"unix:{health}", "--drain-delay", "2", "--pid", pid)
    args += ("-k", worker_class)
    with master(tmp_path, *args, workers=2) as server:
        assert probe(health, "/readyz") == (200, "ready: 2 of 2 worker(s) serving\n")
        assert probe(health, "/livez") == (200, "alive: 2 worker process(es)\n")
        assert "ready, 2/2 workers ready" in ctl("status", "--pid", pid).stdout

        started = time.monotonic()
        drained = ctl("drain", "--pid", pid)
        assert drained.returncode == 0, drained.stdout
        assert time.monotonic() - started >= 2  # it waited the drain_delay
        status, text = probe(health, "/readyz")
        assert (status, text.split(":")[0]) == (503, "draining")
        assert server.get()[1].startswith("v1")  # still serving
        assert "drained, 2/2 workers ready" in ctl("status", "--pid", pid).stdout

        # A completed reload ends the drain: the host is back with the new code.
        (tmp_path / "app.py").write_text(APP.replace('"v1"', '"v2"'))
        server.kill(signal.SIGHUP)
        wait_for(lambda: probe(health, "/readyz")[0] == 200, 20, "ready after the reload")
        assert server.get()[1].startswith("v2")

        server.kill(signal.SIGTERM)
        termed = time.monotonic()
        wait_for(lambda: probe(health, "/readyz")[0] == 503, 2, "not ready after TERM")
        assert server.get()[1].startswith("v2")  # still serving while drained
        assert server.process.wait(scaled(20)) == 0
        assert 2 <= time.monotonic() - termed < scaled(2 + 5)
        assert "Draining for 2.0 s before stopping (TERM)" in server.log()
    assert not health.exists()


def test_a_second_term_skips_the_rest_of_the_drain(tmp_path: Path) -> None:
    health = tmp_path / "health.sock"
    with master(tmp_path, "--health-bind", f"unix:{health}", "--drain-delay", "60") as server:
        server.kill(signal.SIGTERM)
        wait_for(lambda: probe(health, "/readyz")[0] == 503, 2, "not ready after TERM")
        termed = time.monotonic()
        server.kill(signal.SIGTERM)
        assert server.process.wait(scaled(20)) == 0
        assert time.monotonic() - termed < scaled(6)


# Code that cannot be deployed: the template cannot import it, or it imports and
# its first worker's lifespan startup fails.
BROKEN = {
    "import": APP.replace('VERSION = "v1"', "VERSION = = 'v2'"),
    "lifespan": APP.replace(
        '            await send({"type": message["type"] + ".complete"})',
        '            await send({"type": message["type"] + ".failed", "message": "no db"})',
    ),
}


@pytest.mark.parametrize(
    ("broken", "worker_class"), [("import", "asyncio"), ("lifespan", "asyncio"), ("import", "trio")]
)
def test_degraded_after_a_refused_reload_until_a_good_one(
    tmp_path: Path, broken: str, worker_class: str
) -> None:
    health = tmp_path / "health.sock"
    pid = str(tmp_path / "hc.pid")
    args = ("--health-bind", f"unix:{health}", "--pid", pid, "-k", worker_class)
    with master(tmp_path, *args) as server:
        (tmp_path / "app.py").write_text(BROKEN[broken])
        server.kill(signal.SIGHUP)
        wait_for(lambda: probe(health, "/readyz")[0] == 503, 20, "degraded")
        wait_for(lambda: "Reload refused" in server.log(), 20, "the reload refused")
        server.wait_ready(2)
        text = probe(health, "/readyz")[1]
        full = "; 2 of 2 worker(s) serving the last good code\n"
        assert text.startswith("degraded: a reload was refused (") and text.endswith(full), text
        assert probe(health, "/livez")[0] == 200
        assert "degraded, 2/2 workers ready" in ctl("status", "--pid", pid).stdout
        assert server.get()[1].startswith("v1")

        # A worker lost now is replaced from the last good code: still degraded
        # (never "starting", never ready), back to 2 of 2 serving.
        lost = min(server.workers())
        answers = []
        os.kill(lost, signal.SIGKILL)

        def replaced() -> bool:
            answers.append(probe(health, "/readyz")[1])
            return lost not in server.workers() and answers[-1].endswith(full)

        wait_for(replaced, 20, "the lost worker replaced with the last good code")
        assert {a.split(":")[0] for a in answers} == {"degraded"}, answers
        assert server.get()[1].startswith("v1")

        (tmp_path / "app.py").write_text(APP.replace('"v1"', '"v3"'))
        server.kill(signal.SIGHUP)
        wait_for(lambda: probe(health, "/readyz")[0] == 200, 20, "ready after a good reload")
        assert server.get()[1].startswith("v3")


# An import that waits (a slow module, a database) until the test creates "imported".
SLOW_IMPORT = APP.replace(
    'VERSION = "v1"',
    'VERSION = "v1"\nuntil = time.monotonic() + 60  # bounded\n'
    'while not os.path.exists("imported") and time.monotonic() < until:\n'
    "    time.sleep(0.02)",
)


def test_alive_while_the_application_imports(tmp_path: Path) -> None:
    health = tmp_path / "health.sock"
    args = ("--health-bind", f"unix:{health}")
    with master(tmp_path, *args, workers=2, app_source=SLOW_IMPORT, wait=False) as server:
        wait_for(server.templates, 10, "the template importing the application")
        wait_for(health.exists, 10, "the health endpoint")
        # The only process is the template importing for the workers: alive, not ready.
        assert server.workers() == set()
        assert probe(health, "/livez") == (200, "alive: 1 worker process(es)\n")
        assert probe(health, "/readyz") == (503, "starting: 0 of 2 worker(s) ready\n")
        (tmp_path / "imported").touch()
        server.wait_ready(2)
        assert probe(health, "/livez") == (200, "alive: 2 worker process(es)\n")
        wait_for(lambda: probe(health, "/readyz")[0] == 200, 5, "ready")


def test_health_and_metrics_share_one_address(tmp_path: Path) -> None:
    both = tmp_path / "ops.sock"
    args = ("--health-bind", f"unix:{both}", "--metrics-bind", f"unix:{both}")
    with master(tmp_path, *args, workers=1):
        assert probe(both, "/readyz")[0] == 200
        assert probe(both, "/livez?verbose")[0] == 200
        status, text = probe(both, "/metrics")
        assert status == 200 and "hypercorn_workers 1" in text
        assert probe(both, "/other") == (404, "not found; try /metrics, /livez, /readyz\n")


SLOW_START = APP.replace(
    '            await send({"type": message["type"] + ".complete"})',
    '            while message["type"] == "lifespan.startup" and not os.path.exists("go"):\n'
    "                await asyncio.sleep(0.02)  # the test creates it; bounded below\n"
    '            await send({"type": message["type"] + ".complete"})',
)
# Workers whose lifespan startup waits until the time written in the file "go".
TIMED_START = SLOW_START.replace(
    'not os.path.exists("go")', "time.time() < float(open('go').read())"
)


def test_starting_until_every_worker_is_ready(tmp_path: Path) -> None:
    health = tmp_path / "health.sock"
    with master(
        tmp_path, "--health-bind", f"unix:{health}", workers=2, app_source=SLOW_START, wait=False
    ) as server:
        wait_for(health.exists, 10, "the health endpoint")
        assert probe(health, "/readyz") == (503, "starting: 0 of 2 worker(s) ready\n")
        assert probe(health, "/livez")[0] == 200  # the workers exist, booting
        (tmp_path / "go").touch()
        server.wait_ready(2)
        wait_for(lambda: probe(health, "/readyz")[0] == 200, 5, "ready")


def _kill_successor(pid_file: Path, old: int) -> None:
    """Kill the master that USR2 started (named by the PID file) and its children."""
    text = pid_file.read_text().strip() if pid_file.exists() else ""
    if not text.isdigit() or int(text) == old:
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        successor = psutil.Process(int(text))
        for each in [*successor.children(recursive=True), successor]:
            with contextlib.suppress(psutil.NoSuchProcess):
                each.kill()


def test_usr2_hands_over_readiness_without_a_starting_answer(tmp_path: Path) -> None:
    health = tmp_path / "health.sock"
    pid_file = tmp_path / "hc.pid"
    args = ("--health-bind", f"unix:{health}", "--drain-delay", "30", "--pid", str(pid_file))
    (tmp_path / "go").write_text("0")  # the first master boots at once
    with master(tmp_path, *args, workers=2, app_source=TIMED_START) as server:
        old = server.pid
        answers: list[str] = []
        done = threading.Event()

        def ask() -> None:  # several at once: some reach the old master in its last turn
            end = time.monotonic() + scaled(30)
            while not done.is_set() and time.monotonic() < end:
                try:
                    answers.append(probe(health, "/readyz")[1].split(":")[0])
                except (OSError, IndexError) as error:  # closed, reset or cut short
                    answers.append(type(error).__name__)

        try:
            (tmp_path / "go").write_text(str(time.time() + 1.0))  # the new master boots in 1 s
            askers = [threading.Thread(target=ask) for _ in range(4)]
            for each in askers:
                each.start()
            server.kill(signal.SIGUSR2)

            def handed_over() -> bool:
                new = pid_file.read_text().strip() if pid_file.exists() else ""
                return new.isdigit() and int(new) != old and server.process.poll() is not None

            try:
                wait_for(handed_over, 30, "the new master to take over and the old one to go")
                before = len(answers)  # then a few answers from the new master alone
                wait_for(lambda: len(answers) >= before + 8, 5, "answers from the new master")
            finally:
                done.set()
                for each in askers:
                    each.join()
            # The listener is handed over: never closed, never "starting" or "stopping",
            # every request the old master accepted answered; and a hand-over does not
            # drain (drain_delay is 30 s here).
            assert set(answers) == {"ready"}, Counter(answers)
            assert len(answers) > 20
            assert probe(health, "/readyz")[0] == 200  # the new master's endpoint
            new = int(pid_file.read_text())
            os.kill(new, signal.SIGTERM)  # drains for 30 s; a second TERM stops at once
            wait_for(lambda: probe(health, "/readyz")[0] == 503, 5, "the new master draining")
            os.kill(new, signal.SIGTERM)
            wait_for(lambda: not pid_file.exists(), 10, "the new master to stop")
        finally:  # a successor is not in the fixture's process group: never leave it
            _kill_successor(pid_file, old)


def test_a_rolling_reload_keeps_the_host_ready(tmp_path: Path) -> None:
    health = tmp_path / "health.sock"
    (tmp_path / "go").write_text("0")
    with master(tmp_path, "--health-bind", f"unix:{health}", app_source=TIMED_START) as server:
        (tmp_path / "go").write_text(str(time.time() + 1.0))  # each new worker boots in 1 s
        server.kill(signal.SIGHUP)
        answers = []

        def reloaded() -> bool:
            answers.append(probe(health, "/readyz")[1].split(":")[0])
            return "Reload complete" in server.log()

        wait_for(reloaded, 20, "the reload to complete")
        assert set(answers) == {"ready"}, answers  # the old workers serve until replaced
        assert len(answers) > 10
