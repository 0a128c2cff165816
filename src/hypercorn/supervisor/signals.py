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

Forking. A child forked by the master starts with the master's handlers and
wake-up descriptor. A signal delivered to it before it replaces them would
run the master's handler and write to a pipe the child is about to close
("Exception ignored ... Bad file descriptor"). So ``fork`` blocks the
master's signals across ``os.fork``; the child installs its own dispositions
(``child_dispositions``) and only then unblocks them, so whatever arrived
meanwhile is delivered to the child's handlers. The parent unblocks at once.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import sys
from collections.abc import Iterable
from types import FrameType
from typing import Any

__all__ = ["MASTER_SIGNALS", "SignalQueue", "child_dispositions", "fork"]

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
    signal.SIGWINCH,
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


def child_dispositions() -> None:
    """A child's signal dispositions: the defaults, SIGINT as KeyboardInterrupt,
    QUIT as an immediate exit (the master's quick stop expects no draining) and
    USR1 ignored until the worker installs its own handler (log reopening)."""
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2,
                   signal.SIGCHLD, signal.SIGTERM):  # fmt: skip
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGQUIT, lambda signum, frame: os._exit(0))
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


def fork() -> int:
    """``os.fork()`` with the master's signals blocked until the child has its own
    dispositions (see the module docstring).

    Returns:
        0 in the child, the child's pid in the parent.

    Raises:
        OSError: the fork failed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNALS)
    try:
        pid = os.fork()
        if pid == 0:
            child_dispositions()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return pid
