"""Messages from a worker to its master, over the worker's own channel.

Theory of operation
-------------------
Each worker owns one end of its channel (a pipe, or a ``SOCK_SEQPACKET``
socket pair: ``supervisor/workers.py``); the master reads the other end.
A message is a fixed-size record (kind, key, value), far below ``PIPE_BUF``, so a
write is atomic: the master never sees half a record from one write, and a
reader that got a partial read (it never should) keeps the rest for the next
one. The worker writes without blocking and drops a heartbeat when the pipe
is full: a master too busy to read does not stall the worker's event loop,
and a later heartbeat says the same thing with a newer count.

End of file on the pipe means the worker is gone (or closed its end), which
the master learns anyway from ``waitpid``; the pipe carries only liveness and
progress, never the reason of an exit.

A heartbeat may carry the worker's counters (``shared/metrics.py``): one
``METRIC`` record per counter, written with the heartbeat in one batch
(``send_many``) that stays under ``PIPE_BUF``, so it too is all or nothing.
"""

from __future__ import annotations

import enum
import os
import select
import struct
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Message", "MessageKind", "MessageReader", "encode", "send", "send_many"]

_RECORD = struct.Struct("!BHQ")
RECORD_SIZE = _RECORD.size


class MessageKind(enum.IntEnum):
    READY = 1  # lifespan startup done, every listener served; value: the worker's pid
    HEARTBEAT = 2  # the event loop is alive; value: requests served so far
    STOPPING = 3  # reached its request limit, now draining; value: requests served
    METRIC = 4  # key: a counter's index (``shared/metrics.py``); value: its value


@dataclass(frozen=True, slots=True)
class Message:
    kind: MessageKind
    value: int = 0
    key: int = 0


def encode(message: Message) -> bytes:
    """The record of ``message``."""
    return _RECORD.pack(message.kind, message.key, message.value)


def send(fd: int, message: Message) -> bool:
    """Write ``message`` to the (non-blocking) pipe ``fd``.

    Returns:
        False when the pipe is full and the message was dropped.

    Raises:
        BrokenPipeError: the master closed its end (it is gone).
    """
    return send_many(fd, (message,))


def send_many(fd: int, messages: Iterable[Message]) -> bool:
    """Write ``messages`` to the (non-blocking) pipe ``fd`` in one atomic write.

    Returns:
        False when the pipe is full and the messages were dropped, all of them.

    Raises:
        BrokenPipeError: the master closed its end (it is gone).
        ValueError: the batch is larger than ``PIPE_BUF`` (it would not be atomic).
    """
    data = b"".join(map(encode, messages))
    if len(data) > select.PIPE_BUF:
        raise ValueError(f"{len(data)} bytes of messages exceed PIPE_BUF")
    try:
        os.write(fd, data)
    except BlockingIOError:
        return False
    return True


class MessageReader:
    """Decodes the records read from one pipe, keeping a partial record for later."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[Message]:
        """Add bytes read from the pipe; returns the whole messages they complete.

        Records of an unknown kind are skipped (a newer worker may say more).
        """
        data = self._buffer + data
        whole = len(data) - len(data) % RECORD_SIZE
        self._buffer = data[whole:]
        messages = []
        for kind, key, value in _RECORD.iter_unpack(data[:whole]):
            if kind in MessageKind._value2member_map_:
                messages.append(Message(MessageKind(kind), value, key))
        return messages
