"""QUIC: each worker slot has its own SO_REUSEPORT UDP socket."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import psutil
import pytest

from tests.supervisor.harness import Master, master, wait_for

trustme = pytest.importorskip("trustme")


def _udp(pid: int) -> dict[str, int]:
    """The UDP sockets of a process: ``{"socket:[inode]": port}``."""
    sockets = {}
    for conn in psutil.Process(pid).net_connections(kind="udp"):
        sockets[os.readlink(f"/proc/{pid}/fd/{conn.fd}")] = conn.laddr.port
    return sockets


def _one_each(server: Master, count: int) -> dict[int, str]:
    """Wait until each of ``count`` workers holds exactly one UDP socket, all distinct."""

    def check() -> dict[int, str] | None:
        workers = server.workers()
        if len(workers) != count:
            return None
        held = {pid: _udp(pid) for pid in workers}
        if any(len(sockets) != 1 for sockets in held.values()):
            return None
        return {pid: next(iter(sockets)) for pid, sockets in held.items()}

    owned = wait_for(check, 20, f"{count} workers with one UDP socket each")
    assert len(set(owned.values())) == count, owned
    return owned


def test_each_worker_slot_has_its_own_quic_socket(tmp_path: Path) -> None:
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    tls = ("--certfile", "cert.pem", "--keyfile", "key.pem")
    with master(tmp_path, *tls, "--quic-bind", "127.0.0.1:0", workers=2) as server:
        owned = _one_each(server, 2)
        master_sockets = _udp(server.pid)
        assert set(owned.values()) <= master_sockets.keys()
        (port,) = set(master_sockets.values())  # port 0: every slot on the first's port
        # Bound with SO_REUSEPORT: the kernel lets one more socket join the
        # group only if every socket bound to the port has it.
        joiner = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        joiner.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        joiner.bind(("127.0.0.1", port))
        joiner.close()

        # A reload: the successors take over the slots' sockets, one each.
        server.kill(signal.SIGHUP)
        wait_for(lambda: not (owned.keys() & server.workers()), 30, "the old workers gone")
        after_reload = _one_each(server, 2)
        assert set(after_reload.values()) == set(owned.values())

        # One more worker gets a new slot (a new socket on the same port); one
        # fewer gives it back and the master closes it.
        server.kill(signal.SIGTTIN)
        three = _one_each(server, 3)
        assert set(owned.values()) < set(three.values())
        assert set(_udp(server.pid).values()) == {port}
        server.kill(signal.SIGTTOU)
        two = _one_each(server, 2)
        assert set(two.values()) == set(owned.values())
        wait_for(lambda: len(_udp(server.pid)) == 2, 10, "the third slot's socket closed")
