"""``StatsdLogger`` without a server: host parsing, prefixes, caller metrics, bad hosts."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from hypercorn.config import Config
from hypercorn.shared.statsd import StatsdLogger, parse_statsd_host


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("localhost:9125", ("localhost", 9125)),
        ("localhost", ("localhost", 8125)),
        ("[::1]:9125", ("::1", 9125)),
        ("[::1]", ("::1", 8125)),
    ],
)
def test_parse_statsd_host(value: str, expected: tuple[str, int]) -> None:
    assert parse_statsd_host(value) == expected


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def _logger(sock: socket.socket, **settings: object) -> StatsdLogger:
    port = sock.getsockname()[1]
    config = Config.from_mapping({"errorlog": None, "statsd_host": f"127.0.0.1:{port}", **settings})
    logger = StatsdLogger(config)
    return logger


@pytest.mark.asyncio
async def test_caller_metrics_and_levels_carry_the_prefix(udp: socket.socket) -> None:
    logger = _logger(udp, statsd_prefix="app.")
    try:
        await logger.log(logging.INFO, "", extra={"metric": "queue", "value": 3, "mtype": "gauge"})
        await logger.log(logging.ERROR, "disk %s", "full")
        await logger.warning("slow")
        await logger.info("not counted")
        await logger.decrement("jobs", 2)
        await logger.histogram("step", 1.5)
        lines = [udp.recv(1024).decode() for _ in range(5)]
    finally:
        logger.close()
    assert lines == [
        "app.queue:3|g",
        "app.hypercorn.log.error:1|c|@1.0",
        "app.hypercorn.log.warning:1|c|@1.0",
        "app.jobs:-2|c|@1.0",
        "app.step:1.5|ms",
    ]


@pytest.mark.parametrize("host", ["127.0.0.1:port", "no-such-host.invalid:8125"])
def test_an_unusable_host_disables_metrics_with_a_warning(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    target = logging.getLogger("tests.statsd")
    logger = StatsdLogger(Config.from_mapping({"errorlog": target, "statsd_host": host}))
    try:
        logger.increment_sync("x", 1)  # does nothing, raises nothing
    finally:
        logger.close()
    assert [r.getMessage() for r in caplog.records if "statsd disabled" in r.getMessage()]
