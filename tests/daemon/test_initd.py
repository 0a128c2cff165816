"""``contrib/init.d/hypercorn`` driven for real, with its settings file pointing at
a test app and PID file: every action, and a PID file that names a live process
that is not ours."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.daemon.helpers import APP, Daemons, alive, pid_in, scaled, wait_for
from tests.supervisor.harness import request

SCRIPT = Path(__file__).resolve().parents[2] / "contrib" / "init.d" / "hypercorn"

pytestmark = pytest.mark.slow

Action = Callable[..., tuple[int, str]]


@pytest.fixture
def init_script(tmp_path: Path, daemons: Daemons) -> Iterator[tuple[Action, Path, int]]:
    """``action(name)`` runs the script (its settings: a test app, PID file and port)
    and returns its exit status and output; the transcript is printed at the end."""
    (tmp_path / "app.py").write_text(APP)
    pid_file = tmp_path / "hc.pid"
    launcher = tmp_path / "hypercorn"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m hypercorn "$@"\n')
    launcher.chmod(0o755)
    port = free_port()
    (tmp_path / "default").write_text(
        f"HYPERCORN={launcher}\nAPP=app:app\nDIRECTORY={tmp_path}\nPIDFILE={pid_file}\n"
        f'HYPERCORN_OPTS="--bind 127.0.0.1:{port} --workers 2 --graceful-timeout 5 '
        f'--error-logfile {tmp_path}/error.log"\nSTOP_TIMEOUT=15\nRELOAD_TIMEOUT=30\n'
    )
    env = {**os.environ, "HYPERCORN_DEFAULTS": str(tmp_path / "default")}
    transcript: list[str] = []

    def action(name: str, shell: str = "") -> tuple[int, str]:
        command = [shell, str(SCRIPT), name] if shell else [str(SCRIPT), name]
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=scaled(60), check=False)  # fmt: skip
        output = done.stdout + done.stderr
        transcript.append(f"$ {' '.join(command[-2:])}\n{output}[exit {done.returncode}]")
        if (pid := pid_in(pid_file)) is not None and "hypercorn" in " ".join(_cmdline(pid)):
            daemons.track(pid_file)
        return done.returncode, output

    try:
        yield action, pid_file, port
    finally:
        print("\n".join(transcript))  # for the record (pytest -s)


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")
    except OSError:
        return []


def test_init_script_actions(init_script: tuple[Action, Path, int]) -> None:
    run, pid_file, port = init_script

    def action(name: str) -> int:
        return run(name)[0]

    assert action("start") == 0
    first = pid_in(pid_file)
    assert first is not None and request(port)[0] == 200
    assert action("start") == 0
    assert pid_in(pid_file) == first
    assert action("status") == 0
    assert action("reload") == 0
    assert pid_in(pid_file) == first and request(port)[0] == 200
    # The server's own command line is what USR2 executes again: it must upgrade.
    assert action("upgrade") == 0
    upgraded = pid_in(pid_file)
    assert upgraded is not None and upgraded != first and not alive(first)
    assert action("status") == 0 and request(port)[0] == 200
    assert action("restart") == 0
    second = pid_in(pid_file)
    assert second is not None and second != upgraded and not alive(upgraded)
    assert request(port)[0] == 200
    assert action("rotate") == 0
    assert action("stop") == 0
    assert not alive(second) and not pid_file.exists()
    assert action("stop") == 0
    assert action("status") == 3
    assert action("reload") == 7
    assert action("bogus") == 2


def test_a_pid_file_naming_another_process_is_never_signalled(
    init_script: tuple[Action, Path, int],
) -> None:
    """As after a crash and a reboot: the PID in the file is some live process now."""
    run, pid_file, port = init_script
    other = subprocess.Popen(["sleep", "600"])  # dies of TERM, HUP, USR1 and USR2 alike
    try:
        pid_file.write_text(f"{other.pid}\n")
        code, output = run("status", "bash")
        assert code == 1, output  # LSB: not running, the PID file exists
        assert f"pid {other.pid} is not a hypercorn master (sleep 600)" in output
        for verb, expected in [("reload", 7), ("rotate", 7), ("upgrade", 7), ("stop", 0)]:
            pid_file.write_text(f"{other.pid}\n")
            assert run(verb, "bash")[0] == expected, verb
            assert other.poll() is None, f"{verb} signalled pid {other.pid}"
        pid_file.write_text(f"{other.pid}\n")
        code, output = run("start", "bash")
        assert code == 0, output
        assert f"replacing stale PID file {pid_file} (pid {other.pid} is not a hypercorn" in output
        master = pid_in(pid_file)
        assert master is not None and master != other.pid and request(port)[0] == 200
        assert run("status", "bash")[0] == 0
        assert run("stop", "bash")[0] == 0
        wait_for(lambda: not alive(master), 15, "the master to stop")
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def free_port() -> int:
    """A free loopback port: the script binds by address, as deployments do."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
