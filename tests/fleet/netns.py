"""Simulated hosts: network namespaces joined to a balancer namespace by veth pairs.

Every namespace this module makes is named ``hcf<pid>-<role>``, after the test
process that made it, so a sweep (``sweep``) can find what an earlier run left
behind (a run killed before its cleanup) and remove it: the processes inside
first, then the namespace. No namespace has a default route: each host reaches
only the balancer's end of its own veth pair, and the balancer reaches only the
hosts, with addresses from 198.18.0.0/15 (set aside for network tests, RFC 2544)
that exist only inside these namespaces.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PREFIX", "Network", "available", "sweep"]

PREFIX = "hcf"
_OURS = re.compile(rf"^{PREFIX}(\d+)-")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _kill_inside(name: str) -> None:
    """SIGKILL every process in namespace ``name``, and wait until none is left."""
    end = time.monotonic() + 10
    while time.monotonic() < end:
        pids = [int(p) for p in _ip("netns", "pids", name, check=False).stdout.split()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _remove(name: str) -> None:
    _kill_inside(name)
    _ip("netns", "del", name, check=False)


def sweep(own: bool = False) -> list[str]:
    """Remove the namespaces of runs whose process is gone (and ours, if ``own``)."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        match = _OURS.match(name)
        if match is None:
            continue
        creator = int(match.group(1))
        if creator == os.getpid() and not own:
            continue
        if creator != os.getpid() and _alive(creator):
            continue  # another run, still going
        _remove(name)
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Host:
    name: str  # h1, h2, ...
    netns: str
    address: str  # the host's own address
    gateway: str  # the balancer's end of the pair


class Network:
    """A balancer namespace and ``count`` host namespaces, each on its own veth pair."""

    def __init__(self, count: int) -> None:
        self.balancer = f"{PREFIX}{os.getpid()}-lb"
        self.hosts = [
            Host(f"h{n}", f"{PREFIX}{os.getpid()}-h{n}", f"198.18.{n}.2", f"198.18.{n}.1")
            for n in range(1, count + 1)
        ]
        self._made: list[str] = []

    def create(self) -> None:
        """Make the namespaces and links (``remove`` undoes what was made, even halfway)."""
        for name in [self.balancer, *(host.netns for host in self.hosts)]:
            _ip("netns", "add", name)
            self._made.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        for host in self.hosts:
            outer = f"v{host.name}"
            _ip("-n", self.balancer, "link", "add", outer, "type", "veth",
                "peer", "name", "eth0", "netns", host.netns)  # fmt: skip
            _ip("-n", self.balancer, "addr", "add", f"{host.gateway}/30", "dev", outer)
            _ip("-n", self.balancer, "link", "set", outer, "up")
            _ip("-n", host.netns, "addr", "add", f"{host.address}/30", "dev", "eth0")
            _ip("-n", host.netns, "link", "set", "eth0", "up")

    def remove(self) -> None:
        for name in reversed(self._made):
            _remove(name)
        self._made.clear()

    @staticmethod
    def command(netns: str, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside ``netns`` (``ip netns exec`` execs it: same pid)."""
        return ["ip", "netns", "exec", netns, *argv]
