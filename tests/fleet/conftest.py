"""One fleet for the whole session: three host namespaces, haproxy and nginx beside each other.

Skipped, with the reason, where network namespaces cannot be made (not root,
no iproute2) or a balancer is not installed. Whatever happens, every process
the fleet started is killed and every namespace it made is removed; a sweep
first removes what an earlier run that was killed may have left.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.fleet import Fleet
from tests.fleet.netns import Network, available, sweep
from tests.supervisor.harness import wait_for


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    why = available()
    if why is not None:
        pytest.skip(f"fleet tests need network namespaces: {why}")
    programs = {name: shutil.which(name) or shutil.which(f"/usr/sbin/{name}")
                for name in ("haproxy", "nginx")}  # fmt: skip
    missing = [name for name, path in programs.items() if path is None]
    if missing:
        pytest.skip(f"fleet tests need {' and '.join(missing)} (make tools installs them)")
    sweep()
    network = Network(3)
    base: Path = tmp_path_factory.mktemp("fleet")
    fleet = Fleet(network, base)
    try:
        network.create()
        for host in network.hosts:
            fleet.start_master(host.name)
        for host in network.hosts:
            fleet.wait_health(host.name, "ready", 30)
        fleet.start_haproxy(str(programs["haproxy"]))
        fleet.start_nginx(str(programs["nginx"]))
        fleet.start_watching()
        wait_for(lambda: len(fleet.in_rotation()) == 3, 10, "haproxy to put all 3 hosts in")
        yield fleet
    finally:
        try:
            fleet.close()
        finally:
            network.remove()
