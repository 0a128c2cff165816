"""File bodies: the ASGI ``http.response.pathsend`` and ``http.response.zerocopysend``.

Theory of operation
-------------------
An app hands the server a file instead of its bytes: a path (``pathsend``,
once, as the whole body) or an open descriptor with an optional offset and
count (``zerocopysend``, any number of times, mixed with ``http.response.body``).
``open_path`` and ``zerocopy_file`` turn the message into a ``FileBody``
(descriptor, offset, count); a bad message raises before anything is sent,
so the response can still become a 500.

``send_body`` then offers the bytes to the stream's host (``StreamHost.send_file``):
on plain TCP HTTP/1.1 the I/O layer writes them with ``os.sendfile`` and
says how many. What it did not write (TLS, HTTP/2 and HTTP/3 frame and
encrypt in user space; a chunked body; a loop with no ``sendfile``) is read
here in ``READ_CHUNK`` pieces and sent as ordinary body data, each piece
waiting for the host to drain, so a slow client back-pressures the transfer
exactly as it does an app's own ``http.response.body``. Reads are plain
``pread`` calls on the loop: ``os.sendfile`` reads the file on the loop as
well, and a page-cached read of a piece costs less than a thread hand-off.

A file shorter than announced (it shrank, or ``count`` ran past its end)
sends what there is; the stream then aborts the response rather than pass it
off as complete. ``Range`` is the app's: it chooses the offset and count.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from typing import TYPE_CHECKING, Any

from hypercorn.shared.eventloop import next_turn
from hypercorn.worker.protocol.events import ResponseData, ResponseEnded

if TYPE_CHECKING:
    from hypercorn.shared.eventloop import EventLoop
    from hypercorn.worker.asgi.http import HTTPStream, StreamHost

READ_CHUNK = 64 * 1024
"""Bytes read and sent at a time where the file cannot go by ``sendfile``."""


@dataclasses.dataclass(slots=True)
class FileBody:
    """Part of an open file to send as response body."""

    fd: int
    offset: int
    count: int
    advance: bool = False
    """Move the file's position past what is sent (``zerocopysend`` without an offset)."""


def open_path(message: Any) -> FileBody:
    """Open the file an ``http.response.pathsend`` message names (the caller closes it).

    Raises:
        TypeError: ``path`` is not a string.
        ValueError: ``path`` is not absolute, or not a regular file.
        OSError: the file cannot be opened (missing, unreadable).
    """
    path = message.get("path")
    if not isinstance(path, str):
        raise TypeError(f"http.response.pathsend 'path' must be a str, not {type(path)}")
    if not os.path.isabs(path):
        raise ValueError(f"http.response.pathsend 'path' must be absolute, not {path!r}")
    # Non-blocking: opening a FIFO must not wait for a writer (it is refused below).
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"http.response.pathsend 'path' is not a regular file: {path!r}")
    except BaseException:
        os.close(fd)
        raise
    return FileBody(fd, 0, info.st_size)


def zerocopy_file(message: Any) -> FileBody:
    """The part of the descriptor an ``http.response.zerocopysend`` message names.

    Without ``offset`` the file's current position is the start, and it is
    moved past what is sent (``advance``), as reading would. The app owns the
    descriptor: it is not closed here.

    Raises:
        TypeError: ``file`` has no descriptor, or ``offset``/``count`` are not ints.
        ValueError: ``offset`` or ``count`` is negative, or the file is not a regular one.
        OSError: the descriptor is not open.
    """
    file = message.get("file")
    fd = file if type(file) is int else getattr(file, "fileno", None)
    if callable(fd):
        fd = fd()
    if type(fd) is not int:
        raise TypeError(
            f"http.response.zerocopysend 'file' needs a file descriptor, not {type(file)}"
        )
    offset, count = message.get("offset"), message.get("count")
    for name, value in (("offset", offset), ("count", count)):
        if value is not None and (type(value) is not int or value < 0):
            raise (TypeError if type(value) is not int else ValueError)(
                f"http.response.zerocopysend {name!r} must be a non-negative int, not {value!r}"
            )
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        # A pipe or socket would block the loop on every read.
        raise ValueError("http.response.zerocopysend 'file' must be a regular file")
    advance = offset is None
    if offset is None:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    if count is None:
        count = max(info.st_size - offset, 0)
    return FileBody(fd, offset, count, advance=advance)


def advance(body: FileBody, sent: int) -> None:
    """Move the file's position past the ``sent`` bytes, if the body asks for it."""
    if body.advance:
        os.lseek(body.fd, body.offset + sent, os.SEEK_SET)


async def send_body(loop: EventLoop, host: StreamHost, stream_id: int, body: FileBody) -> int:
    """Send the file's bytes as the stream's next body bytes (see the module doc).

    Returns:
        The bytes sent; fewer than ``body.count`` if the file ended early.

    Raises:
        ClientDisconnectedError: the client is gone.
        OSError: reading the file failed.
    """
    count = body.count
    sent = await host.send_file(stream_id, body.fd, body.offset, count)
    while sent < count:
        chunk = os.pread(body.fd, min(READ_CHUNK, count - sent), body.offset + sent)
        if not chunk:
            break
        sent += len(chunk)
        host.send_events(ResponseData(stream_id, chunk))
        await host.drain(stream_id)
        # One loop pass per piece even when nothing waits: a connection lost
        # meanwhile is noticed (a TLS transport may take every piece into its
        # buffers without pausing once its socket has failed).
        await next_turn(loop)
    return sent


async def send_path(stream: HTTPStream, message: Any) -> None:
    """``HTTPStream``'s handler of ``http.response.pathsend`` (its send table names it)."""
    if stream._disconnected:
        raise _disconnected()
    body = open_path(message)
    try:
        announced = _announced_length(stream._pending_start)
        if announced is not None:
            # The app's length rules: a file that grew since it was measured
            # is cut there, one that shrank makes the body short (aborted).
            body.count = announced
        await _send_file(stream, body, more_body=False)
    finally:
        os.close(body.fd)


async def send_zerocopy(stream: HTTPStream, message: Any) -> None:
    """``HTTPStream``'s handler of ``http.response.zerocopysend``."""
    if stream._disconnected:
        raise _disconnected()
    body = zerocopy_file(message)
    await _send_file(stream, body, more_body=bool(message.get("more_body", False)))


async def _send_file(stream: HTTPStream, body: FileBody, *, more_body: bool) -> None:
    """The held head (framed by the file's length when it ends the body), the
    file's bytes, then the end: what ``HTTPStream._send_body`` does for bytes."""
    from hypercorn.worker.asgi.http import ClientDisconnectedError, ResponseState

    host = stream._host
    if stream._pending_start is not None:
        start = stream._take_head(None if more_body else body.count)
        try:
            host.send_events(start)
        except (ValueError, RuntimeError):
            stream.state = ResponseState.WAITING  # refused unwritten: a 500 can follow
            raise
    if not _has_body(stream.request.method, stream._status):
        body.count = 0  # the head says it all
    sent = 0
    if body.count != 0:
        try:
            sent = await send_body(stream._ctx.loop, host, stream.stream_id, body)
        except ClientDisconnectedError:
            stream._disconnected = True
            raise
        advance(body, sent)
    stream.body_size += sent
    if sent < body.count:
        await stream._ctx.log.error(
            "File body of %s ended %d bytes short: response aborted",
            stream._describe(),
            body.count - sent,
        )
        stream._abort()
    elif more_body:
        return
    elif stream._trailers is not None:
        stream.state = ResponseState.TRAILERS
        return
    else:
        host.send_events(ResponseEnded(stream.stream_id))
        stream._complete()
    if (duration := stream._count_response()) is not None:
        await stream._log_access(duration)


def _has_body(method: str, status: int) -> bool:
    """False where the response carries no body bytes (RFC 9110 sections 9.3.2, 15)."""
    return method != "HEAD" and status != 204 and status != 304


def _announced_length(headers: list[tuple[bytes, bytes]] | None) -> int | None:
    """The content-length an app gave its held head, if any."""
    for name, value in headers or ():
        if name == b"content-length" and value.isdigit():
            return int(value)
    return None


def _disconnected() -> OSError:
    from hypercorn.worker.asgi.http import ClientDisconnectedError

    return ClientDisconnectedError("client disconnected")
