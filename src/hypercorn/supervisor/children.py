"""The master's children: worker and template processes, their descriptors, their exits.

Theory of operation
-------------------
``Children`` holds what the master keeps for each process it runs: a
worker's handle (by the planner's key), a template's handle (by
generation), their registrations in the master's selector, each worker's
pid, and the QUIC sockets of every worker slot. It forks (a template; a
worker, through its generation's template or directly), and reaps; it
decides nothing (``planner.py`` does) and logs nothing (``arbiter.py``
does).

Every descriptor of the master (the signal pipe, the selector, the watcher,
the metrics endpoint, every channel and control socket) is closed in each
child right after ``fork``: ``fds()`` lists them.

QUIC. Every TCP and unix listener is shared by all workers, but a QUIC
connection must stay with the worker that holds its state, so each worker
*slot* (0 .. target - 1) has its own ``SO_REUSEPORT`` UDP socket per
``quic_bind``, bound by the master before the slot's first worker and kept
open by it: the kernel keeps a flow on one socket of the group, and
datagrams queue while the slot's worker is replaced. The planner gives a new
worker the lowest slot no fresh worker holds; its sockets go with the fork
request (a template holds none); a directly forked worker closes the other
slots' sockets.

Stopping (``stop``): the templates' answers to open fork requests are
awaited (a second at most: a worker forked but not yet known would be left
running), templates are retired, every worker is asked to drain
and is killed if still there after the grace (one second after QUIT in a
quick stop); a quick stop can be asked for while a graceful one runs.

A worker forked by a template is the master's child, but its pid arrives
later, with the template's answer or the worker's READY, whichever the
master reads first (``claim``). A child reaped before its pid is claimed is
kept in ``unclaimed`` for ``UNCLAIMED_FOR`` seconds, so that its exit is not
lost; any other unknown child (a worker's own orphaned subprocess, adopted
by the master as subreaper; the new master of a USR2 upgrade) is passed on.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hypercorn.shared.sockets import Sockets, reuse_port_twin
from hypercorn.supervisor import template, workers

if TYPE_CHECKING:
    from hypercorn.config import Config

__all__ = ["Children", "Exited"]

UNCLAIMED_FOR = 60.0  # seconds an exit of an unknown child waits for its pid to be claimed
QUICK_STOP_GRACE = 1.0  # seconds a worker gets to obey QUIT
MAX_WAIT = 1.0


@dataclass(frozen=True, slots=True)
class Exited:
    """A reaped child: a worker, a template, or neither (``pid`` only)."""

    pid: int
    code: int  # as ``os.waitstatus_to_exitcode``: negative for a signal
    worker: workers.WorkerHandle | None = None
    template: template.TemplateHandle | None = None


class Children:
    """The master's processes; see the module docstring.

    Args:
        sockets: the master's listeners (the QUIC ones are slot 0's).
        selector: the master's selector; channels and control sockets join it.
        master_fds: the master's own descriptors, which every child closes.
    """

    def __init__(
        self,
        sockets: Sockets,
        selector: selectors.BaseSelector,
        master_fds: Callable[[], list[int]],
    ) -> None:
        self.sockets = sockets
        self.workers: dict[int, workers.WorkerHandle] = {}
        self.templates: dict[int, template.TemplateHandle] = {}
        self.quic: dict[int, list[socket.socket]] = {0: list(sockets.quic_sockets)}
        self._selector = selector
        self._master_fds = master_fds
        self._pids: dict[int, int] = {}  # worker pid -> key
        self._unclaimed: dict[int, tuple[int, float]] = {}  # pid -> (exit code, when)

    def fds(self) -> list[int]:
        """Every descriptor of the master that a child must close."""
        fds = self._master_fds()
        fds.extend(w.fileno() for w in self.workers.values() if w.fileno() >= 0)
        fds.extend(t.fileno() for t in self.templates.values() if t.fileno() >= 0)
        return fds

    def _quic_sockets(self) -> list[socket.socket]:
        return [sock for sockets in self.quic.values() for sock in sockets]

    # ------------------------------------------------------------ forking

    def start_template(self, config: Config, generation: int) -> template.TemplateHandle:
        """Fork the template of ``generation``.

        Raises:
            OSError: the fork failed.
        """
        shared = Sockets(self.sockets.secure_sockets, self.sockets.insecure_sockets)
        handle = template.start(config, shared, generation, self.fds(), self._quic_sockets())
        self.templates[generation] = handle
        self._selector.register(handle.fileno(), selectors.EVENT_READ, handle)
        return handle

    def spawn(
        self, config: Config, key: int, generation: int, slot: int, limit: int | None,
        via_template: bool,
    ) -> workers.WorkerHandle:  # fmt: skip
        """Start the worker ``key``: ask its generation's template, or fork it here.

        Raises:
            OSError: the template is gone or too busy, or the fork failed.
        """
        mine, theirs = workers.channel()
        handle = workers.WorkerHandle(key, generation, mine, slot, limit)
        own = self.quic_slot(slot)
        try:
            if via_template:
                self.templates[generation].request(key, slot, limit, theirs, own)
            else:
                foreign = [sock for sock in self._quic_sockets() if sock not in own]
                sockets = Sockets(self.sockets.secure_sockets, self.sockets.insecure_sockets, own)
                pid = workers.spawn(config, sockets, handle, theirs, self.fds(), foreign)
                handle.pid = pid
                self._pids[pid] = key
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()
        self.workers[key] = handle
        self._selector.register(handle.fileno(), selectors.EVENT_READ, handle)
        return handle

    def claim(self, handle: workers.WorkerHandle, pid: int) -> Exited | None:
        """The worker of ``handle`` runs as ``pid``; returns its exit if it was
        reaped already (its handle is then gone)."""
        handle.pid = pid
        self._pids[pid] = handle.key
        if pid not in self._unclaimed:
            return None
        code, _ = self._unclaimed.pop(pid)
        return self._gone(pid, code)

    def quic_slot(self, slot: int) -> list[socket.socket]:
        """The QUIC sockets of ``slot``, bound now if it is a new one."""
        if slot not in self.quic:
            self.quic[slot] = [reuse_port_twin(sock) for sock in self.quic[0]]
        return self.quic[slot]

    def release_quic_slots(self, held: set[int], target: int) -> None:
        """Close the QUIC sockets of slots no worker holds or will hold again."""
        for slot in [n for n in self.quic if n >= max(1, target) and n not in held]:
            for sock in self.quic.pop(slot):
                if all(sock is not first for first in self.quic[0]):
                    sock.close()

    # ------------------------------------------------------------ ends

    def reap(self) -> Iterator[Exited]:
        """Every child that has exited (without blocking)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            exited = self._gone(pid, code)
            if exited.worker is None and exited.template is None:
                now = time.monotonic()
                if any(w.pid is None for w in self.workers.values()):
                    self._unclaimed[pid] = (code, now)  # a worker whose pid is on its way?
                for old, (_, when) in list(self._unclaimed.items()):
                    if now - when > UNCLAIMED_FOR:
                        del self._unclaimed[old]
            yield exited

    def _gone(self, pid: int, code: int) -> Exited:
        if pid in self._pids:
            worker = self.workers.pop(self._pids.pop(pid))
            worker.receive()  # its final counters
            self.drop(worker)
            return Exited(pid, code, worker=worker)
        for generation, handle in list(self.templates.items()):
            if handle.pid == pid:
                del self.templates[generation]
                handle.receive()  # a failure it reported just before exiting
                self.unregister(handle.control)
                handle.close()
                return Exited(pid, code, template=handle)
        return Exited(pid, code)

    def forget(self, key: int) -> None:
        """Drop a worker that was never forked (its template died with the request)."""
        self.drop(self.workers.pop(key))

    def drop(self, handle: workers.WorkerHandle) -> None:
        self.unregister(handle.channel)
        handle.close()

    def unregister(self, sock: socket.socket) -> None:
        if sock.fileno() >= 0:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)

    def close_listeners(self) -> None:
        """The master's copies of every listener: new connections are refused
        once the workers close theirs."""
        self.sockets.close()
        for sock in self._quic_sockets():
            sock.close()

    def stop(
        self,
        grace: float,
        quick: bool,
        quick_requested: Callable[[], bool],
        exited: Callable[[Exited], None],
    ) -> None:
        """Stop every child; returns once all are reaped.

        Args:
            grace: seconds a draining worker gets before SIGKILL.
            quick: ask with QUIT (exit at once) instead of draining.
            quick_requested: polled while waiting: turn to a quick stop.
            exited: called with each reaped child.
        """
        self._claim_pending(time.monotonic() + QUICK_STOP_GRACE, exited)
        for each in self.templates.values():
            each.retire()
        for key in [k for k, w in self.workers.items() if w.pid is None]:
            self.forget(key)  # never forked: its template is gone or hung
        now = time.monotonic()
        kill_at = dict.fromkeys(self.workers, now + grace)
        for worker in self.workers.values():
            worker.retire()
        if quick:
            self._quick(now, kill_at)
        templates_by = now + QUICK_STOP_GRACE
        while self.workers or self.templates:
            now = time.monotonic()
            deadline = min([*kill_at.values(), *([templates_by] if self.templates else [])])
            if now >= deadline:
                self._kill_all()
                return
            self._selector.select(min(deadline - now, MAX_WAIT))
            if quick_requested():
                self._quick(time.monotonic(), kill_at)
            for gone in self.reap():
                if gone.worker is not None:
                    kill_at.pop(gone.worker.key, None)
                exited(gone)

    def _claim_pending(self, deadline: float, exited: Callable[[Exited], None]) -> None:
        """Wait (until ``deadline``) for the templates' answers to the fork requests
        still open, so that every worker that exists is stopped and waited for."""
        while (pending := {w.key for w in self.workers.values() if w.pid is None}) and (
            now := time.monotonic()
        ) < deadline:
            self._selector.select(min(deadline - now, MAX_WAIT))
            for each in list(self.templates.values()):
                replies, _ = each.receive()
                for reply in replies:
                    handle = self.workers.get(reply.key)
                    if handle is None or reply.key not in pending:
                        continue
                    if reply.kind is template.ReplyKind.FORK_FAILED:
                        self.forget(reply.key)
                    elif reply.kind is template.ReplyKind.FORKED and (
                        gone := self.claim(handle, reply.pid)
                    ):
                        exited(gone)
            for gone in self.reap():
                exited(gone)

    def _quick(self, now: float, kill_at: dict[int, float]) -> None:
        for key, handle in self.workers.items():
            kill_at[key] = min(kill_at.get(key, now), now + QUICK_STOP_GRACE)
            if handle.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(handle.pid, signal.SIGQUIT)

    def _kill_all(self) -> None:
        """SIGKILL every child, and wait for each."""
        for worker in self.workers.values():
            worker.kill("stop timeout")
        for each in self.templates.values():
            each.kill()
        for pid in [*self._pids, *(t.pid for t in self.templates.values())]:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        for worker in self.workers.values():
            self.drop(worker)
        self.workers.clear()
        self._pids.clear()
        for each in self.templates.values():
            self.unregister(each.control)
            each.close()
        self.templates.clear()
