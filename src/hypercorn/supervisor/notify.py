"""systemd's notification protocol, without libsystemd.

Theory of operation
-------------------
A service of ``Type=notify`` finds a unix datagram socket's address in
``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace) and
sends it newline-separated ``KEY=value`` assignments, one datagram per
message (sd_notify(3)). Sending never blocks the master and never fails it:
a service manager that is gone or slow loses a status line, not the server.

``$WATCHDOG_USEC`` (with ``$WATCHDOG_PID``, when set, naming this process)
asks for ``WATCHDOG=1`` at least that often; ``Notifier`` sends it every half
period, and says when the next one is due so the master's loop wakes for it.

The variables stay in the environment: a master re-executed by a USR2
upgrade talks to the same service manager. It inherits ``$WATCHDOG_PID``
naming the old master, whose successor it is: it keeps the watchdog too
(``successor_of``), and once it is the main process it names itself there, so
that its own successor after the next upgrade does the same. Until then its
``WATCHDOG=1`` go unheeded under ``NotifyAccess=main`` and the old master's
count; after ``MAINPID=`` only its own.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import MutableMapping

__all__ = ["Notifier", "monotonic_usec"]


def monotonic_usec() -> int:
    """``CLOCK_MONOTONIC`` in microseconds, as ``RELOADING=1`` wants it."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """Sends notifications to ``$NOTIFY_SOCKET``; does nothing without it.

    Args:
        environ: where to find the variables (default ``os.environ``).
        successor_of: the PID of the master this one replaces (USR2), whose
            watchdog it takes over.
    """

    def __init__(
        self, environ: MutableMapping[str, str] | None = None, successor_of: int | None = None
    ) -> None:
        env = os.environ if environ is None else environ
        self._env = env
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        if self._address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._socket.setblocking(False)
        self.watchdog_interval: float | None = None
        usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
        mine = pid in ("", str(os.getpid()), str(successor_of))
        if self._socket is not None and usec.isdigit() and int(usec) > 0 and mine:
            self.watchdog_interval = int(usec) / 2_000_000
        self._next_watchdog = 0.0  # the first one is due at once

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def send(self, **fields: str | int) -> bool:
        """Send one message, e.g. ``send(READY=1, STATUS="2 workers")``.

        Returns:
            Whether the datagram was sent.
        """
        if self._socket is None:
            return False
        text = "".join(f"{key}={value}\n" for key, value in fields.items())
        try:
            self._socket.sendto(text.encode(), self._address)
        except OSError:
            return False
        return True

    def hand_over(self, pid: int, **fields: str | int) -> bool:
        """Name ``pid`` the main process, resetting the watchdog for it (if on)."""
        if self.watchdog_interval is not None:
            fields["WATCHDOG"] = 1
        return self.send(MAINPID=pid, **fields)

    def main_process(self) -> None:
        """This process is now the service's main one (``MAINPID=`` was sent for it):
        its successors must know the watchdog is theirs, and it pings at once."""
        if "WATCHDOG_PID" in self._env:
            self._env["WATCHDOG_PID"] = str(os.getpid())
        self._next_watchdog = 0.0

    def watchdog(self, now: float) -> float | None:
        """Send ``WATCHDOG=1`` when due; returns when the next one is due (monotonic)."""
        if self.watchdog_interval is None:
            return None
        if now >= self._next_watchdog:
            self.send(WATCHDOG=1)
            self._next_watchdog = now + self.watchdog_interval
        return self._next_watchdog

    def close(self) -> None:
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.close()
            self._socket = None
