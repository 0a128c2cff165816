"""A file's bytes to a connection's socket with ``os.sendfile``, beside its transport.

Theory of operation
-------------------
Neither loop family sends a file through a transport the way this server
needs: asyncio's ``loop.sendfile`` pauses reading and, for its read-and-write
fallback, swaps the transport's protocol; uvloop does not implement it. So
the asyncio I/O layer writes a file body itself, on the transport's own
socket, under rules that keep the byte stream whole and the descriptor
right:

* The connection writes nothing else until it ends (``HTTPConnection``
  holds its output meanwhile), and it writes only while the transport's
  buffer is empty (what the transport holds, such as the response head sent
  to a slow client, leaves first as the socket takes it): the file's bytes
  follow everything written before them and precede everything after.
* Before each ``os.sendfile`` it checks that the transport is not closing: a
  transport closes its socket only after ``is_closing()`` turns true, so the
  descriptor written to is still this connection's, never a number the
  kernel has since given to another socket.
* When the socket is full it waits for writability on a *duplicate* of the
  descriptor (a loop refuses a second watcher on the transport's own), and
  removes that watcher before closing the duplicate. The connection's drain
  waiters are the ones woken, so a lost connection wakes the transfer too.
* While it writes, the socket holds at most ``UNSENT_LIMIT`` bytes that TCP
  has not sent yet (``TCP_NOTSENT_LOWAT``, set by ``limit_unsent`` and
  restored after; trio's transport does the same where trio's own lower
  limit does not already hold): ``os.sendfile`` stops there and the
  transfer waits until TCP has sent most of them. Without the limit one
  call queues as much of the file as the send buffer holds (megabytes, once
  it has grown), and TCP sends that backlog from wherever the client's
  acknowledgements are handled: on loopback, the client's own CPU, which
  then pays for both ends of the transfer. With it, each piece is sent as
  it is written, by the server.

Reading goes on meanwhile: a pipelined request waits in the protocol, and an
EOF or a reset closes the transport, which ends the transfer. A file the
kernel cannot send from (``EINVAL`` and kin: some file systems) ends the
native part early; the caller sends the rest by reading it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from typing import Any

from hypercorn.worker.waiters import Waiters

CANNOT_SEND_FROM = frozenset((errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP))
"""``os.sendfile`` errors that mean this file (or socket) does not support it."""

UNSENT_LIMIT = 128 * 1024
"""Bytes of a file a socket may hold unsent while it is written (module doc)."""

_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", None)


def socket_fd(transport: asyncio.BaseTransport) -> int | None:
    """The transport's socket descriptor, if it has one that can take ``sendfile``."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    fd = sock.fileno()
    return fd if isinstance(fd, int) and fd >= 0 else None


async def send_file(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.WriteTransport,
    sock: int,
    waiters: Waiters,
    file: tuple[int, int, int],
) -> int:
    """Write up to ``count`` bytes of ``file`` = ``(fd, offset, count)`` to ``sock``,
    after what the transport holds; the caller writes nothing else until this returns.

    Returns:
        The bytes written: fewer than ``count`` if the file ended early, the
        transport began closing, or the file cannot be sent from.

    Raises:
        ConnectionError: the peer reset or closed the connection.
        OSError: reading the file failed.
    """
    fd, offset, count = file
    sent = 0
    writer = -1  # the duplicate watched for writability, once the socket is full
    sock_object = transport.get_extra_info("socket")
    before = None if transport.is_closing() else limit_unsent(sock_object, UNSENT_LIMIT)
    try:
        while sent < count and not transport.is_closing():
            written = FULL  # nothing written: wait until the socket takes more
            if not transport.get_write_buffer_size():  # what it holds leaves first
                written = send_some(sock, fd, offset + sent, count - sent)
                if not written:
                    break
            if written > 0:
                sent += written
                continue
            if writer < 0:
                writer = os.dup(sock)
                loop.add_writer(writer, waiters.wake)
            await waiters.wait()
    finally:
        if writer >= 0:
            loop.remove_writer(writer)
            os.close(writer)
        if before is not None and not transport.is_closing():
            restore_unsent(sock_object, before)
    return sent


FULL = -1
"""``send_some``: the socket takes nothing more now."""


def send_some(sock: int, fd: int, offset: int, count: int) -> int:
    """One ``os.sendfile`` of up to ``count`` bytes of ``fd`` from ``offset``.

    Returns:
        The bytes written; ``FULL`` when the socket takes nothing now; 0 when
        the transfer stops: the file ended, or cannot be sent from
        (``CANNOT_SEND_FROM``).

    Raises:
        OSError: any other error (a reset connection, a failed read).
    """
    try:
        return os.sendfile(sock, fd, offset, count)
    except BlockingIOError:
        return FULL
    except OSError as exc:
        if exc.errno in CANNOT_SEND_FROM:
            return 0
        raise


def limit_unsent(sock: Any, limit: int) -> int | None:
    """Hold a TCP socket's unsent bytes to ``limit`` at most (``TCP_NOTSENT_LOWAT``,
    module doc); a socket already held to less (trio's streams: 16 KiB) keeps its own.

    The caller must know ``sock`` still open (its transport not closing).

    Returns:
        The value to restore after (0: the system's default); None where
        nothing was changed (not TCP, a system without the option, or a
        lower limit already set).
    """
    if _NOTSENT_LOWAT is None or sock is None or sock.family not in _INET:
        return None
    try:
        before: int = sock.getsockopt(socket.IPPROTO_TCP, _NOTSENT_LOWAT)
        if 0 < before <= limit:
            return None
        sock.setsockopt(socket.IPPROTO_TCP, _NOTSENT_LOWAT, limit)
    except OSError:
        return None
    return before


def restore_unsent(sock: Any, before: int) -> None:
    """Give the socket back the ``TCP_NOTSENT_LOWAT`` that ``limit_unsent`` returned."""
    with contextlib.suppress(OSError):  # the connection failed meanwhile: it is closing
        sock.setsockopt(socket.IPPROTO_TCP, _NOTSENT_LOWAT, before)


_INET = (socket.AF_INET, socket.AF_INET6)
