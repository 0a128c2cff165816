"""The master's signal queue: handlers only enqueue, the loop dispatches.

Theory of operation
-------------------
A Python signal handler runs between two bytecodes of the main thread, at any
point of the master's loop, so it must not touch the loop's state. Ours only
appends the signal number to a deque; ``signal.set_wakeup_fd`` makes the
interpreter write a byte to a non-blocking pipe on every signal, and that pipe
sits in the master's selector, so a signal arriving just before ``select``
still wakes it. The loop then drains the pipe and pops the deque in arrival
order. The deque, not the pipe bytes, is the record: a full pipe may drop a
byte, never a signal (each delivery still runs the handler).
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
from collections.abc import Iterable
from types import FrameType
from typing import Any

__all__ = ["MASTER_SIGNALS", "SignalQueue"]

MASTER_SIGNALS: tuple[signal.Signals, ...] = (
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCHLD,
)


class SignalQueue:
    """Queues the master's signals; ``fileno()`` is readable when one arrived."""

    def __init__(self, signals: Iterable[signal.Signals] = MASTER_SIGNALS) -> None:
        self._signals = tuple(signals)
        self._queue: collections.deque[signal.Signals] = collections.deque()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._previous: dict[signal.Signals, Any] = {}
        self._previous_wakeup = -1

    def fileno(self) -> int:
        return self._read_fd

    @property
    def fds(self) -> tuple[int, int]:
        """Both ends of the wake-up pipe (a forked worker closes them)."""
        return self._read_fd, self._write_fd

    def _enqueue(self, signum: int, frame: FrameType | None) -> None:
        self._queue.append(signal.Signals(signum))

    def install(self) -> None:
        """Install the handlers and the wake-up descriptor (main thread only)."""
        self._previous_wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in self._signals:
            self._previous[signum] = signal.signal(signum, self._enqueue)
            # A signal must not interrupt a system call half-way (PEP 475 retries
            # most, but not every library does).
            signal.siginterrupt(signum, False)

    def restore(self) -> None:
        """Put back the handlers found by ``install``."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        signal.set_wakeup_fd(self._previous_wakeup)

    def pop_all(self) -> list[signal.Signals]:
        """Drain the wake-up pipe; returns the queued signals in arrival order."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 4096):
                pass
        signals = []
        while self._queue:
            signals.append(self._queue.popleft())
        return signals

    def close(self) -> None:
        os.close(self._read_fd)
        os.close(self._write_fd)
