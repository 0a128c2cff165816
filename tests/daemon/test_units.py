"""The systemd units: ``systemd-analyze verify`` where available, and the keys
this product relies on."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hypercorn.config import Config
from hypercorn.shared.cli import ExitCode

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "systemd"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(CONTRIB / name)
    return parser


def test_service_keys() -> None:
    service = _unit("hypercorn.service")["Service"]
    assert service["Type"] == "notify"
    assert service["ExecReload"] == "/bin/kill -s HUP $MAINPID"
    assert service["KillMode"] == "mixed"
    assert service["Restart"] == "on-failure"
    assert "--graceful-timeout 30" in service["ExecStart"]
    assert int(service["TimeoutStopSec"]) > 30  # above graceful_timeout
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    # systemd never restarts what a restart cannot fix: a bad configuration, an
    # application that cannot be imported (at once, or still failing after the
    # first boot's retries), a PID file owned by a live master. Workers that
    # kept crashing (3) or a lifespan startup that kept failing (6) are retried.
    prevent = {int(code) for code in service["RestartPreventExitStatus"].split()}
    assert prevent == {ExitCode.USAGE, ExitCode.APP_LOAD, ExitCode.ALREADY_RUNNING}
    # The first boot's retries end (exit 4) before systemd's start timeout.
    assert Config().boot_retry_window < int(service["TimeoutStartSec"])
    socket_unit = _unit("hypercorn.socket")
    assert socket_unit["Socket"]["ListenStream"]
    assert socket_unit["Install"]["WantedBy"] == "sockets.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify wants ExecStart to exist: point it at this interpreter's hypercorn.
    hypercorn = Path(sys.executable).with_name("hypercorn")
    if not hypercorn.exists():
        pytest.skip("no hypercorn script next to the interpreter")
    text = (CONTRIB / "hypercorn.service").read_text()
    (tmp_path / "hypercorn.service").write_text(
        text.replace("/usr/local/bin/hypercorn", str(hypercorn))
    )
    shutil.copy(CONTRIB / "hypercorn.socket", tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", "hypercorn.service", "hypercorn.socket"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "hypercorn" not in done.stderr, done.stderr
