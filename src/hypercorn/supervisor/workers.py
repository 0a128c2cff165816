"""Worker processes as the master sees them, and what a worker process runs.

Theory of operation
-------------------
Each worker talks to the master over its own *channel*, a ``SOCK_SEQPACKET``
socket pair made by the master before the worker exists. The worker writes
its messages (READY, heartbeats, counters, STOPPING: ``shared/messages.py``)
as one packet per batch, all or nothing, without blocking. The master asks
a worker to stop by shutting down its own sending side: the worker's end
reads end-of-file, which its event loop watches; the same end-of-file comes
when the master dies. (A ``multiprocessing.Event`` cannot serve here: it is
shared only through ``fork``, and a worker forked by a template was never
forked by the master.)

The master keeps a ``WorkerHandle`` per worker: the channel's master end,
the pid once known, the counters from the latest heartbeat. Where a worker
stands (BOOTING, READY, RETIRING) is the planner's (``planner.py``). Its exit
is learnt from ``waitpid``, never from the channel.

``worker_main`` is a worker's life in its own process, whoever forked it (a
template, or the master itself where there are no templates): it asks the
kernel to kill it when the master dies, checks the master did not die
first, and enters the worker through its one entry point,
``hypercorn.worker.serve.run_worker``, imported only there. It never returns:
the process ends with ``os._exit``, so no ``finally`` or ``atexit`` of the
master's code runs twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from hypercorn.shared.cli import ExitCode, report_error
from hypercorn.shared.messages import Message, MessageKind, MessageReader, send_many
from hypercorn.shared.metrics import SLOTS
from hypercorn.supervisor import signals

if TYPE_CHECKING:
    from hypercorn.config import Config
    from hypercorn.shared.sockets import Sockets

__all__ = ["WorkerHandle", "channel", "die_with", "set_title", "spawn", "worker_main"]

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def channel() -> tuple[socket.socket, socket.socket]:
    """A new worker channel: ``(the master's end, the worker's end)``."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    mine.setblocking(False)
    return mine, theirs


@dataclass(eq=False)
class WorkerHandle:
    """One worker process, from the master's side."""

    key: int
    generation: int
    channel: socket.socket  # the master's end
    slot: int = 0
    request_limit: int | None = None
    pid: int | None = None  # known once its template answered
    requests: int = 0
    killed_for: str | None = None  # why the master killed it (timeout, boot timeout)
    reader: MessageReader = field(default_factory=MessageReader)
    # Its counters as of its latest heartbeat (``shared/metrics.py``), when it sends them.
    metrics: list[int] = field(default_factory=lambda: [0] * SLOTS)

    def fileno(self) -> int:
        return self.channel.fileno()

    def receive(self) -> tuple[list[Message], bool]:
        """Read every packet waiting on the channel.

        Returns:
            The messages received, and whether the channel is at its end (the
            worker is gone).
        """
        messages: list[Message] = []
        while True:
            try:
                data = self.channel.recv(65536)
            except BlockingIOError:
                return messages, False
            except OSError:
                return messages, True
            if not data:
                return messages, True
            for message in self.reader.feed(data):
                messages.append(message)
                if message.kind in (MessageKind.HEARTBEAT, MessageKind.STOPPING):
                    self.requests = message.value
                elif message.kind is MessageKind.METRIC and message.key < SLOTS:
                    self.metrics[message.key] = message.value

    def retire(self) -> None:
        """Ask the worker to drain and stop (its channel reads end-of-file)."""
        with contextlib.suppress(OSError):
            self.channel.shutdown(socket.SHUT_WR)

    def kill(self, reason: str) -> None:
        self.killed_for = self.killed_for or reason
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        self.channel.close()


def spawn(
    config: Config,
    sockets: Sockets,
    handle: WorkerHandle,
    theirs: socket.socket,
    master_fds: Iterable[int],
    foreign: Sequence[socket.socket] = (),
) -> int:
    """Fork a worker from the master itself (where there are no templates): it
    imports the application on its own. Returns its pid.

    Args:
        config: the settings the worker serves with.
        sockets: what it serves: the shared listeners and its slot's QUIC sockets.
        handle: its handle (slot, request limit).
        theirs: the worker's end of its channel (closed here in the master).
        master_fds: descriptors of the master the child closes.
        foreign: sockets of the master the child closes (other slots').

    Raises:
        OSError: the fork failed.
    """
    master_pid = os.getpid()
    pid = signals.fork()
    if pid == 0:
        for fd in master_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        for sock in foreign:
            sock.close()
        worker_main(config, sockets, theirs.detach(), master_pid, handle.request_limit)
    theirs.close()
    return pid


def become_subreaper() -> bool:
    """Have orphaned descendants reparented to this process (Linux): a worker
    forked by a template (through a short-lived intermediate) is then the
    master's own child. Returns whether it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def die_with(master_pid: int) -> None:
    """Have the kernel kill this process when its parent, the master, dies
    (Linux), then check the master did not die before that took effect."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != master_pid:
        os._exit(ExitCode.FAILURE)


class _Reporter:
    """The worker's side of its channel: READY, heartbeats, the request limit, USR1."""

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
        except (BrokenPipeError, ConnectionResetError):
            self._orphaned()

    def _orphaned(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # drain, as if the master asked

    def ready(self) -> None:
        # With its pid: the master may read this before its template's answer.
        self._send(Message(MessageKind.READY, os.getpid()))

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


def worker_main(
    config: Config,
    sockets: Sockets,
    channel_fd: int,
    master_pid: int,
    request_limit: int | None,
) -> NoReturn:
    """A worker's life, in its own process, the master's child: serve until the
    channel ``channel_fd`` reads end-of-file, then exit with the worker's code."""
    code: int = ExitCode.FAILURE
    try:
        die_with(master_pid)
        signals.child_dispositions()
        set_title(f"hypercorn: worker [{config.application_path}]")
        reporter = _Reporter(config, channel_fd, master_pid)
        from hypercorn.worker.serve import WorkerHooks, run_worker

        hooks = WorkerHooks(
            ready=reporter.ready,
            heartbeat=reporter.heartbeat,
            heartbeat_interval=min(1.0, config.worker_timeout / 4),
            request_limit=request_limit,
            limit_reached=reporter.limit_reached,
            metrics=reporter.metrics if config.metrics_bind is not None else None,
        )
        code = run_worker(config, sockets, hooks=hooks, shutdown_fd=channel_fd)
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
    setter: Callable[[str], None] | None
    try:
        from setproctitle import setproctitle as setter
    except ImportError:  # pragma: no cover - a declared dependency
        setter = None
    if setter is not None:
        setter(title)
