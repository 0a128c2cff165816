"""Templates: one process per generation of the code that forks its workers.

Theory of operation
-------------------
The master never imports the application. For each generation (first boot,
every reload) it forks a *template*: a process that imports the application
(and the worker's own modules) once, says LOADED, or FAILED with the error
and exits, and then waits on its control socket for fork requests. Each
request brings the worker's channel and its slot's QUIC sockets
(``SCM_RIGHTS``); the template forks the worker, which starts serving at
once with the code already in memory. A worker lost later is replaced from
the template of the generation it belongs to, not from the code on disk: a
deploy whose import fails leaves the previous template, and so the previous
code, in charge of every replacement.

Why the master stays every worker's parent. The template forks a
short-lived intermediate that forks the worker and exits at once; the
master is a *child subreaper* (``PR_SET_CHILD_SUBREAPER``), so the orphaned
worker is reparented to it. The worker waits for that (``getppid``), then
asks for ``PR_SET_PDEATHSIG`` against the master. So, as without templates:
the master reaps every worker and reads its exit code with ``waitpid``; a
worker dies with the master, not with its template; a template killed or
crashed takes no worker with it. (Had the template stayed the parent, it
would have had to forward exit codes, and a template's death would have
either killed its workers or left them to outlive the master.)

Failure modes. A template that fails to import says why (exit code,
traceback, one line) before it exits; the planner decides (refuse the
reload, retry the first boot, halt). One that hangs while importing is
killed at ``worker_boot_timeout``; one that does not answer a fork request
in ``FORK_ANSWER_TIMEOUT`` is killed, and the planner starts another. The
template asks to die with the master (``PR_SET_PDEATHSIG``) and exits at
end-of-file on its control socket: the master retires it by closing its end.
It runs no event loop and serves nothing; it closes every descriptor of the
master it does not need (every QUIC socket among them: each request carries
the slot's own). Privileges are dropped right after each ``fork``
(``service.py``), so a template runs as ``user``/``group`` like its workers.

The caveat is ``preload_app``'s: what the application does at import time
(a thread started, a connection opened) happens once, in the template, and
forked workers inherit it. A thread does not survive ``fork``.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn

from hypercorn.shared.cli import ExitCode, describe_error
from hypercorn.shared.sockets import Sockets
from hypercorn.supervisor import signals
from hypercorn.supervisor.workers import die_with, set_title, worker_main

if TYPE_CHECKING:
    from hypercorn.config import Config

__all__ = ["Failure", "Reply", "ReplyKind", "TemplateHandle", "start"]

MAX_DETAIL = 16_384  # characters of a traceback sent to the master
ADOPTION_TIMEOUT = 5.0  # seconds a new worker waits to be reparented to the master
_MAX_FDS = 64  # a fork request's descriptors: the channel and the slot's QUIC sockets
# A fork request: the worker's key, its slot, its request limit (-1: none).
_REQUEST = struct.Struct("!qqq")
# A reply: its kind and two numbers, then UTF-8 text (see ``Reply``).
_REPLY = struct.Struct("!Bqq")


class ReplyKind(enum.IntEnum):
    LOADED = 1  # the application is imported
    FAILED = 2  # a = exit code; text = message NUL traceback; the template exits
    FORKED = 3  # a = key, b = pid
    FORK_FAILED = 4  # a = key; text = the error


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a template could not import the application."""

    code: int
    detail: str  # the traceback to show (may be empty)
    message: str  # one line


@dataclass(frozen=True, slots=True)
class Reply:
    """One message from a template."""

    kind: ReplyKind
    key: int = 0
    pid: int = 0
    error: str = ""


def _encode(kind: ReplyKind, a: int = 0, b: int = 0, text: str = "") -> bytes:
    return _REPLY.pack(kind, a, b) + text.encode("utf-8", "replace")


@dataclass(eq=False)
class TemplateHandle:
    """A template process, from the master's side."""

    generation: int
    pid: int
    control: socket.socket  # the master's end
    loaded: bool = False
    failure: Failure | None = None
    retired: bool = False

    def fileno(self) -> int:
        return self.control.fileno()

    def request(
        self, key: int, slot: int, limit: int | None, channel: socket.socket,
        quic: Sequence[socket.socket],
    ) -> None:  # fmt: skip
        """Ask for a worker; it gets ``channel`` (the worker's end) and ``quic``.

        Raises:
            OSError: the template is gone, or too busy to take the request.
        """
        payload = _REQUEST.pack(key, slot, -1 if limit is None else limit)
        fds = [channel.fileno(), *(sock.fileno() for sock in quic)]
        socket.send_fds(self.control, [payload], fds)

    def receive(self) -> tuple[list[Reply], bool]:
        """Read every waiting message; returns them and whether the socket is at
        its end (the template is gone)."""
        replies: list[Reply] = []
        while True:
            try:
                data = self.control.recv(MAX_DETAIL * 8)
            except BlockingIOError:
                return replies, False
            except OSError:
                return replies, True
            if not data:
                return replies, True
            number, a, b = _REPLY.unpack_from(data)
            kind = ReplyKind(number)
            text = data[_REPLY.size :].decode("utf-8", "replace")
            if kind is ReplyKind.FAILED:
                message, _, detail = text.partition("\0")
                self.failure = Failure(a, detail, message)
            elif kind is ReplyKind.LOADED:
                self.loaded = True
            replies.append(Reply(kind, key=a, pid=b, error=text))

    def retire(self) -> None:
        """Let it go: it exits at the end of its control socket (or is killed
        while it still imports: it serves nobody)."""
        self.retired = True
        if not self.loaded:
            self.kill()
        with contextlib.suppress(OSError):
            self.control.shutdown(socket.SHUT_RDWR)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        self.control.close()


def start(
    config: Config,
    sockets: Sockets,
    generation: int,
    master_fds: Iterable[int],
    foreign: Sequence[socket.socket],
) -> TemplateHandle:
    """Fork the template of ``generation``; it imports ``config``'s application.

    Args:
        config: the generation's settings.
        sockets: the shared listeners its workers serve (no QUIC socket).
        generation: the generation's number (for its title).
        master_fds: descriptors of the master the template closes.
        foreign: sockets of the master the template closes (the QUIC sockets).

    Raises:
        OSError: the fork or the socket pair failed.
    """
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    master_pid = os.getpid()
    try:
        pid = signals.fork()
    except BaseException:
        mine.close()
        theirs.close()
        raise
    if pid == 0:
        mine.close()
        for fd in master_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        for sock in foreign:
            sock.close()
        _template_main(config, sockets, theirs, master_pid, generation)
    theirs.close()
    mine.setblocking(False)
    return TemplateHandle(generation, pid, mine)


# ------------------------------------------------------------------ the template


def _send(control: socket.socket, data: bytes) -> None:
    with contextlib.suppress(OSError):
        control.send(data)


def _template_main(
    config: Config, sockets: Sockets, control: socket.socket, master_pid: int, generation: int
) -> NoReturn:
    code: int = ExitCode.FAILURE
    try:
        die_with(master_pid)
        set_title(f"hypercorn: template [{config.application_path}] (generation {generation})")
        assert config.application_path is not None
        try:
            # The worker's own modules too: each worker then starts without importing.
            import hypercorn.worker.serve  # noqa: F401
            from hypercorn.shared.apploading import load_application

            load_application(config.application_path, config.wsgi_max_body_size)
        except KeyboardInterrupt:
            raise
        except BaseException as error:
            code, detail, message = describe_error(error, config.application_path, importing=True)
            _send(control, _encode(ReplyKind.FAILED, code, 0, f"{message}\0{detail[-MAX_DETAIL:]}"))
        else:
            _send(control, _encode(ReplyKind.LOADED))
            code = _serve(config, sockets, control, master_pid)
    except KeyboardInterrupt:
        code = ExitCode.OK
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _serve(config: Config, sockets: Sockets, control: socket.socket, master_pid: int) -> int:
    """Answer fork requests until the master closes the control socket."""
    while True:
        data, fds, _, _ = socket.recv_fds(control, 4096, _MAX_FDS)
        if not data:
            for fd in fds:
                os.close(fd)
            return ExitCode.OK
        key, _, limit = _REQUEST.unpack(data)
        try:
            pid = _fork_worker(config, sockets, control, master_pid, limit, fds)
        except OSError as error:
            _send(control, _encode(ReplyKind.FORK_FAILED, key, 0, str(error)))
        else:
            _send(control, _encode(ReplyKind.FORKED, key, pid))
        finally:
            for fd in fds:
                os.close(fd)


def _fork_worker(
    config: Config,
    sockets: Sockets,
    control: socket.socket,
    master_pid: int,
    limit: int,
    fds: list[int],
) -> int:
    """Fork a worker through an intermediate that exits at once (so that the
    master adopts it); returns the worker's pid.

    Raises:
        OSError: a fork failed.
    """
    read_fd, write_fd = os.pipe()
    # What the application printed at import leaves once, not once per worker.
    sys.stdout.flush()
    sys.stderr.flush()
    intermediate = os.fork()
    if intermediate == 0:
        code = ExitCode.FAILURE
        try:
            os.close(read_fd)
            me = os.getpid()
            pid = os.fork()
            if pid == 0:
                os.close(write_fd)
                control.close()
                _worker(config, sockets, master_pid, me, limit, fds)
            os.write(write_fd, pid.to_bytes(8, "little"))
            code = ExitCode.OK
        finally:
            os._exit(code)
    os.close(write_fd)
    try:
        data = b""
        while len(data) < 8 and (chunk := os.read(read_fd, 8 - len(data))):
            data += chunk
    finally:
        os.close(read_fd)
        os.waitpid(intermediate, 0)
    if len(data) != 8:
        raise OSError("the intermediate process could not fork the worker")
    return int.from_bytes(data, "little")


def _worker(
    config: Config,
    sockets: Sockets,
    master_pid: int,
    intermediate: int,
    limit: int,
    fds: list[int],
) -> NoReturn:
    channel_fd, quic_fds = fds[0], fds[1:]
    # Adopted by the master as soon as the intermediate exits.
    until = time.monotonic() + ADOPTION_TIMEOUT
    while os.getppid() == intermediate and time.monotonic() < until:
        time.sleep(0.0005)
    quic = [socket.socket(fileno=fd) for fd in quic_fds]
    own = Sockets(sockets.secure_sockets, sockets.insecure_sockets, quic)
    worker_main(config, own, channel_fd, master_pid, None if limit < 0 else limit)
