"""The receiving end of sd_notify as systemd runs it, for a ``Type=notify`` service
with ``NotifyAccess=main`` and a watchdog.

systemd learns each datagram's sender from its credentials (``SO_PASSCRED``)
and heeds only the service's main process; ``MAINPID=`` from the main process
names another one. ``WATCHDOG=1`` from the main process resets the watchdog;
systemd kills the service when none comes for ``WatchdogSec``. ``Manager``
does the same bookkeeping from a thread, with the time each message arrived,
so a test can tell what systemd would have done.
"""

from __future__ import annotations

import itertools
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


@dataclass(frozen=True)
class Message:
    at: float  # time.monotonic() on arrival
    sender: int
    fields: dict[str, str]
    heeded: bool  # from the main process at the time


class Manager:
    """Listens on ``path`` until ``close``.

    Args:
        path: the socket to bind (the service's ``NOTIFY_SOCKET``).
        main: the service's main PID at start (the process systemd started).
    """

    def __init__(self, path: Path, main: int = 0) -> None:
        self.path = str(path)
        self.main = main
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self._sock.settimeout(0.1)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)
        self._sock.close()

    def heeded(
        self, key: str, value: str | None = None, sender: int | None = None
    ) -> list[Message]:
        """The messages systemd acted on that carry ``key`` (``=value``), by ``sender``."""
        with self._lock:
            return [
                m
                for m in self.messages
                if m.heeded
                and key in m.fields
                and (value is None or m.fields[key] == value)
                and (sender is None or m.sender == sender)
            ]

    def longest_watchdog_gap(self, since: float, until: float) -> float:
        """The longest time without a heeded ``WATCHDOG=1`` between ``since`` and ``until``."""
        times = [since, *(m.at for m in self.heeded("WATCHDOG", "1") if since < m.at < until)]
        times.append(until)
        return max(later - earlier for earlier, later in itertools.pairwise(times))

    def _run(self) -> None:
        size = socket.CMSG_SPACE(CREDENTIALS.size)
        while not self._closing.is_set():
            try:
                data, ancillary, _, _ = self._sock.recvmsg(4096, size)
            except TimeoutError:
                continue
            at = time.monotonic()
            sender = 0
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    sender = CREDENTIALS.unpack(payload[: CREDENTIALS.size])[0]
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                heeded = sender == self.main
                self.messages.append(Message(at, sender, fields, heeded))
                if heeded and fields.get("MAINPID", "").isdigit():
                    self.main = int(fields["MAINPID"])
