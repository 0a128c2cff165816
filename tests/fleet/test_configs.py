"""The shipped balancer examples are the configurations the fleet scenarios run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fleet.balancers import shipped


@pytest.mark.parametrize("path", list(shipped()), ids=lambda p: p.name)
def test_shipped_example_is_the_generated_one(path: Path) -> None:
    assert path.read_text() == shipped()[path], "regenerate: python -m tests.fleet.balancers"


def test_shipped_haproxy_example_is_valid() -> None:
    haproxy = shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")
    if haproxy is None:
        pytest.skip("haproxy is not installed (make tools installs it)")
    [path] = [p for p in shipped() if p.suffix == ".cfg"]
    checked = subprocess.run([haproxy, "-c", "-f", str(path)], capture_output=True, text=True,
                             timeout=30)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
