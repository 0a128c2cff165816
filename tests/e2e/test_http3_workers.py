"""HTTP/3 with a real master and four workers, each on its own SO_REUSEPORT
UDP socket: concurrency, hostile datagrams, and a rolling reload (HUP).

The app answers ``v1 <worker pid>``, so each response says which worker
served it.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.e2e.conftest import write_server_cert
from tests.e2e.h3client import h3_connect
from tests.supervisor.harness import Master, master, scaled, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

WORKERS = 4


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def quic_master(tmp_path: Path) -> Iterator[tuple[Master, int]]:
    write_server_cert(trustme.CA(), tmp_path)  # cert.pem and key.pem, named below
    port = _free_udp_port()
    args = ("--certfile", "cert.pem", "--keyfile", "key.pem", "--quic-bind", f"127.0.0.1:{port}")
    with master(tmp_path, *args, workers=WORKERS) as server:
        yield server, port


async def _get(port: int, path: str = "/", connections: int = 1, per: int = 1) -> list[str]:
    """``per`` concurrent GETs on each of ``connections`` concurrent connections."""

    async def one_connection() -> list[str]:
        async with h3_connect(port) as client:
            responses = await asyncio.gather(*(client.request("GET", path) for _ in range(per)))
        assert all(r.status == 200 for r in responses)
        return [r.body.decode() for r in responses]

    results = await asyncio.gather(*(one_connection() for _ in range(connections)))
    return [body for bodies in results for body in bodies]


def _pid(body: str) -> int:
    match = re.fullmatch(r"v1 (\d+)", body)
    assert match, body
    return int(match.group(1))


async def test_concurrent_requests_over_four_workers(quic_master: tuple[Master, int]) -> None:
    server, port = quic_master
    started = time.monotonic()
    bodies = await _get(port, connections=20, per=10)
    elapsed = time.monotonic() - started
    pids = {_pid(body) for body in bodies}
    assert len(bodies) == 200
    assert pids <= server.workers()
    print(f"HTTP/3: 200 requests over 20 connections in {elapsed:.2f} s, {len(pids)} workers")


async def test_hostile_datagrams_do_not_stop_workers(quic_master: tuple[Master, int]) -> None:
    server, port = quic_master
    workers = server.workers()
    version_negotiation = []
    for _ in range(20):  # several source ports: several workers
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.settimeout(1)
            probe.connect(("127.0.0.1", port))
            probe.send(b"")  # empty
            probe.send(b"\xc3" + os.urandom(30))  # truncated long header
            probe.send(b"\x45" + os.urandom(60))  # short header, unknown connection
            initial = b"\xc3\x00\x00\x00\x01\x08" + os.urandom(8) + b"\x08" + os.urandom(8)
            probe.send(initial + b"\x00" * 300)  # an Initial below 1200 bytes
            probe.send(initial + os.urandom(1200))  # a large Initial with no valid crypto
            unknown = b"\xc0\x0a\x0a\x0a\x0a\x08" + b"d" * 8 + b"\x08" + b"s" * 8
            probe.send(unknown + b"\x00" * 1200)  # an unknown version
            reply = probe.recv(2000)  # the only answer: version negotiation
            version_negotiation.append(reply[1:5] == b"\x00\x00\x00\x00")
    assert version_negotiation == [True] * 20
    bodies = await _get(port, connections=8)
    assert len(bodies) == 8
    assert server.workers() == workers  # none crashed
    assert "Traceback" not in server.log()


async def _until_exists(path: Path, seconds: float) -> None:
    """Wait, without blocking the loop (the QUIC clients need it), for ``path``."""
    end = time.monotonic() + scaled(seconds)
    while not path.exists():
        assert time.monotonic() < end, f"{path.name} did not appear"
        await asyncio.sleep(0.01)


async def test_hup_with_http3_clients_connected(
    quic_master: tuple[Master, int], tmp_path: Path
) -> None:
    server, port = quic_master
    old = server.workers()
    async with h3_connect(port) as first, h3_connect(port) as second:
        assert _pid((await first.request("GET", "/")).body.decode()) in old
        streams = []
        flag = tmp_path / "slow-started"  # the app creates it when /slow starts
        for client in (first, second):  # one at a time, so each is seen in its app
            flag.unlink(missing_ok=True)
            streams.append(client.open("GET", "/slow"))
            await _until_exists(flag, 10)
        server.kill(signal.SIGHUP)
        responses = await asyncio.gather(
            first.response(streams[0], timeout=20), second.response(streams[1], timeout=20)
        )
    for response in responses:  # in flight across the reload: served by the old workers
        assert response.status == 200 and _pid(response.body.decode()) in old
    wait_for(lambda: "Reload complete" in server.log(), 30, "the reload to complete")
    new = server.workers()
    assert not new & old
    bodies = await _get(port, connections=8)
    assert {_pid(body) for body in bodies} <= new
