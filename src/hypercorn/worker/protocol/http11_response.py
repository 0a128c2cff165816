"""Encode HTTP/1.1 response heads (RFC 9112 sections 4 and 6).

The stream layer has validated the app's headers and added the server's
defaults; what is left here is framing. The app's ``transfer-encoding`` and
``connection`` fields are dropped and rewritten by the protocol, its
``content-length`` is kept (and checked) since it decides the framing:

- HEAD, 204 and 304 responses carry no body (``NONE``); a 204 also loses its
  ``content-length`` (RFC 9110 section 8.6);
- a ``content-length`` frames the body by length (``LENGTH``);
- otherwise the body is chunked for HTTP/1.1 (``CHUNKED``) and ends with
  the connection for HTTP/1.0 (``CLOSE``).

Every status line goes out as HTTP/1.1, the highest version we speak
(RFC 9110 section 6.2), whatever the client's version.

Output is a list of pieces (status line, fields, body). ``gather`` prepares
them for one ``writelines``: runs of small pieces are joined, and a piece of
``WRITE_ALONE`` bytes or more (a large body) goes as it is, beside them,
rather than copied into one new buffer with the head: the kernel copies it
once from the app's own bytes, as ``writev`` does.
"""

from __future__ import annotations

import enum
from http import HTTPStatus
from typing import Final

from hypercorn.worker.protocol.events import Headers


class Framing(enum.Enum):
    """How the response body is delimited, once the head is written."""

    UNSTARTED = enum.auto()
    NONE = enum.auto()
    LENGTH = enum.auto()
    CHUNKED = enum.auto()
    CLOSE = enum.auto()


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


STATUS_LINES: Final = {status: _status_line(status) for status in range(100, 600)}
CLOSE: Final = b"connection: close\r\n"
KEEP_ALIVE: Final = b"connection: keep-alive\r\n"
_CHUNKED: Final = b"transfer-encoding: chunked\r\n"
_ERROR_TAIL: Final = b"content-length: 0\r\nconnection: close\r\n\r\n"


WRITE_ALONE: Final = 8 * 1024
"""Pieces of at least this many bytes are written as they are, not joined:
below it a copy costs less than one more buffer for the transport to gather
(measured on uvloop's ``writelines`` against ``write`` of the joined bytes)."""


def gather(pieces: list[bytes]) -> list[bytes]:
    """The pieces to write, in order: each run of pieces under ``WRITE_ALONE``
    joined into one, each larger piece on its own, nothing empty. ``b"".join``
    of the result is ``b"".join(pieces)``."""
    gathered: list[bytes] = []
    start = 0
    for index, piece in enumerate(pieces):
        if len(piece) >= WRITE_ALONE:
            _join_run(gathered, pieces, start, index)
            gathered.append(piece)
            start = index + 1
    _join_run(gathered, pieces, start, len(pieces))
    return gathered


def _join_run(gathered: list[bytes], pieces: list[bytes], start: int, end: int) -> None:
    run = pieces[start] if end - start == 1 else b"".join(pieces[start:end])
    if run:
        gathered.append(run)


def error_response(status: int) -> bytes:
    """The complete response the protocol sends when it refuses a request."""
    return STATUS_LINES[status] + _ERROR_TAIL


def fields(headers: Headers) -> bytes:
    """Encode field lines (informational heads and trailers), no blank line."""
    return b"".join([b"%s: %s\r\n" % (name, value) for name, value in headers])


def response_head(
    out: list[bytes], status: int, headers: Headers, method: str, http_version: str
) -> tuple[Framing, int, bool]:
    """Append a response head to ``out``, but for its connection field and end.

    Args:
        out: the pieces to write; the status line and fields are appended.
        status: the final status code (200 to 599).
        headers: the fields the stream layer built.
        method: the request's method.
        http_version: the request's version, ``"1.0"`` or ``"1.1"``.

    Returns:
        The body framing, the content length (-1 when none) and whether the
        app asked to close the connection.

    Raises:
        ValueError: the status is not final or ``content-length`` is invalid.
    """
    if not 200 <= status < 600:
        raise ValueError(f"not a final status: {status}")
    out.append(STATUS_LINES[status])
    length, text, close = _fields_but_framing(out, headers)
    if method == "HEAD" or status == 304 or status == 204:
        if length >= 0 and status != 204:
            out.append(b"content-length: %s\r\n" % text)
        return Framing.NONE, length, close
    if length >= 0:
        out.append(b"content-length: %s\r\n" % text)
        return Framing.LENGTH, length, close
    if http_version == "1.1":
        out.append(_CHUNKED)
        return Framing.CHUNKED, length, close
    return Framing.CLOSE, length, True


def _fields_but_framing(out: list[bytes], headers: Headers) -> tuple[int, bytes, bool]:
    """Append the fields but for the framing ones, which the protocol writes.

    Returns:
        The app's content length (-1 when none) and its digits as they are to
        be written (no leading zeros), and whether the app asked to close.

    Raises:
        ValueError: ``content-length`` is invalid, or given twice differently.
    """
    length = -1
    text = b""
    close = False
    for name, value in headers:
        size = len(name)
        # Only names of these lengths can be framing fields: a cheap test before lower().
        if size == 14 or size == 10 or size == 17:
            lower = name.lower()
            if lower == b"content-length":
                if not value.isdigit() or (length >= 0 and int(value) != length):
                    raise ValueError(f"invalid content-length: {value!r}")
                if length < 0:
                    length = int(value)
                    # Written as given unless it has leading zeros.
                    text = value if value[0] != 48 or len(value) == 1 else b"%d" % length
                continue
            if lower == b"connection":
                tokens = {token.strip(b" \t") for token in value.lower().split(b",")}
                close = close or b"close" in tokens
                continue
            if lower == b"transfer-encoding":
                continue
        out.append(b"%s: %s\r\n" % (name, value))
    return length, text, close
