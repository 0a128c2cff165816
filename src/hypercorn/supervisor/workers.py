"""Worker processes as the master sees them, and what a forked child runs.

Theory of operation
-------------------
``spawn`` forks. The master keeps a ``WorkerHandle``: the pid, the
``multiprocessing.Event`` that asks the worker to stop, the read end of
the worker's message pipe, and its *slot* (which QUIC sockets are its own).
The child closes every descriptor of the master it does not need (the other
slots' QUIC sockets among them), restores the default signal dispositions (the master's
handlers and wake-up pipe are not its own), asks the kernel to kill it when
the master dies, and then enters the worker through its one entry point,
``hypercorn.worker.serve.run_worker``, imported only in the child. It never
returns to the master's code: the child ends with ``os._exit``, so no
``finally`` or ``atexit`` of the master runs twice.

A worker's life, as the master tracks it in ``WorkerState``: BOOTING from
the fork until its READY message, READY while it serves and beats, RETIRING
once its Event is set (it drains, then exits). The exit itself is learnt from
``waitpid``, never from the pipe.

A request limit is the worker's own: it counts as each request starts and,
on reaching the limit, stops accepting and sends STOPPING, so the master
starts its successor while it drains.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from hypercorn.shared.cli import ExitCode, report_error
from hypercorn.shared.messages import Message, MessageKind, MessageReader, send_many
from hypercorn.shared.metrics import SLOTS

if TYPE_CHECKING:
    from multiprocessing.synchronize import Event as MPEvent

    from hypercorn.config import Config
    from hypercorn.shared.sockets import Sockets

__all__ = ["WorkerHandle", "WorkerState", "spawn"]

_FORK = multiprocessing.get_context("fork")
_PR_SET_PDEATHSIG = 1


class WorkerState(enum.Enum):
    BOOTING = "booting"
    READY = "ready"
    RETIRING = "retiring"


@dataclass(eq=False)
class WorkerHandle:
    """One worker process, from the master's side."""

    pid: int
    generation: int
    event: MPEvent
    fd: int
    started: float
    slot: int = 0
    request_limit: int | None = None
    state: WorkerState = WorkerState.BOOTING
    last_beat: float = 0.0
    requests: int = 0
    recycle: str | None = None  # why it is to be replaced, once a successor is READY
    kill_at: float | None = None  # when a RETIRING worker gets SIGKILL
    killed_for: str | None = None  # why the master killed it (timeout, boot timeout)
    reader: MessageReader = field(default_factory=MessageReader)
    # Its counters as of its latest heartbeat (``shared/metrics.py``), when it sends them.
    metrics: list[int] = field(default_factory=lambda: [0] * SLOTS)

    def receive(self, data: bytes, now: float) -> list[MessageKind]:
        """Account for bytes read from the pipe; returns the kinds of message received."""
        kinds = []
        for message in self.reader.feed(data):
            self.last_beat = now
            kinds.append(message.kind)
            if message.kind is MessageKind.READY and self.state is WorkerState.BOOTING:
                self.state = WorkerState.READY
            elif message.kind in (MessageKind.HEARTBEAT, MessageKind.STOPPING):
                self.requests = message.value
            elif message.kind is MessageKind.METRIC and message.key < SLOTS:
                self.metrics[message.key] = message.value
        return kinds

    def retire(self, now: float, grace: float) -> None:
        """Ask the worker to stop; it is killed if still there at ``now + grace``."""
        if self.state is not WorkerState.RETIRING:
            self.state = WorkerState.RETIRING
            self.kill_at = now + grace
            self.event.set()

    def kill(self, reason: str) -> None:
        self.killed_for = self.killed_for or reason
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)


def spawn(
    config: Config,
    sockets: Sockets,
    generation: int,
    master_fds: Iterable[int],
    title: str,
    heartbeat_interval: float,
    request_limit: int | None = None,
    slot: int = 0,
    foreign: Sequence[socket.socket] = (),
) -> WorkerHandle:
    """Fork one worker serving ``sockets``; returns its handle (in the master).

    Args:
        config: the settings the worker serves with.
        sockets: the listeners the child serves (inherited): the shared TCP
            and unix ones, and its slot's QUIC sockets.
        generation: the master's reload generation the worker belongs to.
        master_fds: descriptors of the master the child must close.
        title: the child's process title.
        heartbeat_interval: seconds between the child's heartbeats.
        request_limit: requests after which the worker stops by itself.
        slot: the worker's slot, as the master counts them.
        foreign: sockets of the master that the child closes (other slots').

    Raises:
        OSError: the fork or the pipe failed.
    """
    event = _FORK.Event()
    read_fd, write_fd = os.pipe()
    master_pid = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read_fd)
        for fd in master_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        for sock in foreign:
            sock.close()
        _child(config, sockets, event, write_fd, master_pid, title, heartbeat_interval,
               request_limit)  # fmt: skip
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    now = time.monotonic()
    return WorkerHandle(pid, generation, event, read_fd, now, slot, request_limit, last_beat=now)


def _die_with(master_pid: int) -> None:
    """Have the kernel kill this process when the master dies (Linux), then check
    the master did not die before that took effect."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != master_pid:
        os._exit(ExitCode.FAILURE)


def _reset_signals() -> None:
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Quick stop: the master asks with QUIT and expects no draining.
    signal.signal(signal.SIGQUIT, lambda signum, frame: os._exit(ExitCode.OK))


class _Reporter:
    """The child's side of the pipe: READY, heartbeats, the request limit, USR1."""

    def __init__(self, config: Config, fd: int, master_pid: int) -> None:
        self._config = config
        self._fd = fd
        self._master_pid = master_pid
        self._reopen = False
        self._metrics: list[Message] = []
        os.set_blocking(fd, False)
        signal.signal(signal.SIGUSR1, self._on_usr1)

    def _on_usr1(self, signum: int, frame: object) -> None:
        # Reopened from the event loop (next heartbeat), not inside the handler,
        # which may have interrupted a write to the very file being swapped.
        self._reopen = True

    def _send(self, *messages: Message) -> None:
        try:
            send_many(self._fd, messages)
        except BrokenPipeError:
            self._orphaned()

    def _orphaned(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # drain, as if the master asked

    def ready(self) -> None:
        self._send(Message(MessageKind.READY))

    def metrics(self, values: list[int]) -> None:
        # Sent with the heartbeat that follows, in the same write.
        self._metrics = [
            Message(MessageKind.METRIC, value, key) for key, value in enumerate(values)
        ]

    def heartbeat(self, requests: int) -> None:
        if os.getppid() != self._master_pid:
            self._orphaned()
            return
        if self._reopen:
            self._reopen = False
            self._config.log.reopen_files()
        metrics, self._metrics = self._metrics, []
        self._send(*metrics, Message(MessageKind.HEARTBEAT, requests))

    def limit_reached(self, requests: int) -> None:
        # The worker has stopped accepting; the master starts its successor now.
        self._send(Message(MessageKind.STOPPING, requests))


def _child(
    config: Config,
    sockets: Sockets,
    event: MPEvent,
    write_fd: int,
    master_pid: int,
    title: str,
    heartbeat_interval: float,
    request_limit: int | None,
) -> NoReturn:
    code: int = ExitCode.FAILURE
    try:
        _reset_signals()
        _die_with(master_pid)
        _set_title(title)
        reporter = _Reporter(config, write_fd, master_pid)
        from hypercorn.worker.serve import WorkerHooks, run_worker

        hooks = WorkerHooks(
            ready=reporter.ready,
            heartbeat=reporter.heartbeat,
            heartbeat_interval=heartbeat_interval,
            request_limit=request_limit,
            limit_reached=reporter.limit_reached,
            metrics=reporter.metrics if config.metrics_bind is not None else None,
        )
        code = run_worker(config, sockets, event, hooks=hooks)
    except KeyboardInterrupt:
        code = ExitCode.OK
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else ExitCode.FAILURE
    except BaseException as error:
        reported = report_error(error, config.application_path)
        if reported is None:
            config.log.error_logger.exception("worker %d failed", os.getpid())
            reported = ExitCode.FAILURE
        code = reported
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def set_title(title: str) -> None:
    """Set the process title (as ``ps`` shows it), when setproctitle is installed."""
    _set_title(title)


def _set_title(title: str) -> None:
    setter: Callable[[str], None] | None
    try:
        from setproctitle import setproctitle as setter
    except ImportError:  # pragma: no cover - a declared dependency
        setter = None
    if setter is not None:
        setter(title)
