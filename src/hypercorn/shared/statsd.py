"""``StatsdLogger``: the server's logger, also sending metrics to statsd over UDP.

Theory of operation
-------------------
Every finished request (or WebSocket session) adds to the counters
``hypercorn.requests`` and ``hypercorn.request.status.<status>`` and to the
timer ``hypercorn.request.duration`` (milliseconds); every error-log record at
WARNING or above adds to ``hypercorn.log.<level>`` (``exception`` counts on
its own). ``log(level, message, extra={"metric": ..., "value": ...,
"mtype": "gauge" | "counter" | "histogram"})`` sends a metric of the caller's.
Names carry ``statsd_prefix`` (a ``.`` is added), and lines the DogStatsD
tags ``|#tag1,tag2`` when ``dogstatsd_tags`` is set.

A metric never blocks or fails a request: the UDP socket is connected once,
non-blocking, when the logger is built (that is where the host is resolved),
and each metric is one ``send`` whose errors (a full buffer, a refused port)
drop the datagram. A host that cannot be resolved disables the metrics with
one warning, not the server.
"""

from __future__ import annotations

import logging
import socket
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hypercorn.shared.logging import Logger

if TYPE_CHECKING:
    from hypercorn.shared.config import Config

__all__ = ["DEFAULT_STATSD_PORT", "StatsdLogger", "parse_statsd_host"]

DEFAULT_STATSD_PORT = 8125

METRIC_VAR = "metric"
VALUE_VAR = "value"
MTYPE_VAR = "mtype"
GAUGE_TYPE = "gauge"
COUNTER_TYPE = "counter"
HISTOGRAM_TYPE = "histogram"


def parse_statsd_host(value: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``host`` (port 8125) as ``(host, port)``.

    Raises:
        ValueError: the port is not a number.
    """
    host, port = value, str(DEFAULT_STATSD_PORT)
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest.startswith(":"):
            port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    return host, int(port)


def _connect(address: str) -> socket.socket:
    host, port = parse_statsd_host(address)
    family, kind, proto, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.connect(sockaddr)
    except BaseException:
        sock.close()
        raise
    return sock


class StatsdLogger(Logger):
    """``Logger`` that also counts requests and log records in statsd.

    Args:
        config: the server's config; ``statsd_host``, ``statsd_prefix`` and
            ``dogstatsd_tags`` are read besides the logging settings.

    Attributes:
        prefix: what every metric name starts with (ends with ``.`` when set).
        dogstatsd_tags: the tags appended to every line, or ``""``.
    """

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.dogstatsd_tags: str = config.dogstatsd_tags
        self.prefix: str = config.statsd_prefix
        if self.prefix and not self.prefix.endswith("."):
            self.prefix += "."
        self._socket: socket.socket | None = None
        if config.statsd_host:
            try:
                self._socket = _connect(config.statsd_host)
            except (OSError, ValueError) as error:
                self.error_logger.warning(
                    "statsd disabled: cannot use statsd_host %r: %s", config.statsd_host, error
                )
            else:
                # A config replaces its logger without closing it: the socket
                # then goes with the logger.
                self._closer = weakref.finalize(self, self._socket.close)

    # ----------------------------------------------------------- log records

    async def critical(self, message: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 3)
        await super().critical(message, *args, **kwargs)
        self.increment_sync("hypercorn.log.critical", 1)

    async def error(self, message: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 3)
        await super().error(message, *args, **kwargs)
        self.increment_sync("hypercorn.log.error", 1)

    async def warning(self, message: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 3)
        await super().warning(message, *args, **kwargs)
        self.increment_sync("hypercorn.log.warning", 1)

    async def exception(self, message: str, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 3)
        await super().exception(message, *args, **kwargs)
        self.increment_sync("hypercorn.log.exception", 1)

    async def log(self, level: int, message: str, *args: Any, **kwargs: Any) -> None:
        """Log ``message % args`` at ``level``; an ``extra`` metric is sent too."""
        extra = kwargs.get("extra")
        if isinstance(extra, Mapping):
            self._extra_metric(extra)
        if message:
            kwargs.setdefault("stacklevel", 3)
            await super().log(level, message, *args, **kwargs)
            if level >= logging.WARNING:
                name = logging.getLevelName(level).lower()
                self.increment_sync(f"hypercorn.log.{name}", 1)

    def _extra_metric(self, extra: Mapping[str, Any]) -> None:
        metric, value, kind = extra.get(METRIC_VAR), extra.get(VALUE_VAR), extra.get(MTYPE_VAR)
        if not metric or value is None:
            return
        if kind == GAUGE_TYPE:
            self._send(f"{metric}:{value}|g")
        elif kind == COUNTER_TYPE:
            self._send(f"{metric}:{value}|c|@1.0")
        elif kind == HISTOGRAM_TYPE:
            self._send(f"{metric}:{value}|ms")

    # --------------------------------------------------------------- access

    async def access(
        self, request: Mapping[str, Any], response: Mapping[str, Any] | None, request_time: float
    ) -> None:
        """Log the request and count it: requests, status, duration in milliseconds."""
        await super().access(request, response, request_time)
        self._count_request(response, request_time)

    def access_sync(
        self, request: Mapping[str, Any], response: Mapping[str, Any] | None, request_time: float
    ) -> None:
        super().access_sync(request, response, request_time)
        self._count_request(response, request_time)

    def _count_request(self, response: Mapping[str, Any] | None, request_time: float) -> None:
        self._send(f"hypercorn.request.duration:{request_time * 1_000:.3f}|ms")
        self._send("hypercorn.requests:1|c|@1.0")
        if response is not None:
            self._send(f"hypercorn.request.status.{response['status']}:1|c|@1.0")

    # --------------------------------------------------------------- metrics

    async def gauge(self, name: str, value: int) -> None:
        """Set the gauge ``name``."""
        self._send(f"{name}:{value}|g")

    async def increment(self, name: str, value: int, sampling_rate: float = 1.0) -> None:
        """Add ``value`` to the counter ``name``."""
        self.increment_sync(name, value, sampling_rate)

    async def decrement(self, name: str, value: int, sampling_rate: float = 1.0) -> None:
        """Subtract ``value`` from the counter ``name``."""
        self._send(f"{name}:-{value}|c|@{sampling_rate}")

    async def histogram(self, name: str, value: float) -> None:
        """Record ``value`` (milliseconds) in the timer ``name``."""
        self._send(f"{name}:{value}|ms")

    def increment_sync(self, name: str, value: int, sampling_rate: float = 1.0) -> None:
        """``increment`` without the coroutine, for callers outside an event loop."""
        self._send(f"{name}:{value}|c|@{sampling_rate}")

    def _send(self, line: str) -> None:
        if self._socket is None:
            return
        line = self.prefix + line
        if self.dogstatsd_tags:
            line += f"|#{self.dogstatsd_tags}"
        try:  # noqa: SIM105  (per request: cheaper than contextlib.suppress)
            self._socket.send(line.encode("utf-8"))
        except OSError:
            pass  # metrics are best effort: a full buffer or a refused port drops the line

    def close(self) -> None:
        """Close the statsd socket and the log handlers."""
        if self._socket is not None:
            self._closer()
            self._socket = None
        super().close()
