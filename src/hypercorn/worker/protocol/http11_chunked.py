"""A strict decoder for the chunked transfer coding (RFC 9112 section 7.1).

Theory of operation
-------------------
The decoder reads from the connection's own receive buffer and deletes what
it consumes, so whatever is left once it reports completion belongs to the
next request. It moves through four states:

``SIZE``     a chunk-size line: ``1*HEXDIG *(BWS ";" BWS name [BWS "=" BWS
             value]) CRLF``; extensions are checked and dropped;
``DATA``     ``remaining`` bytes of chunk data, handed out as they arrive;
``DATA_END`` the CRLF that must follow the data, byte for byte;
``TRAILER``  field lines up to the blank line; checked and dropped (the seam
             carries no request trailers).

Every line must end in CRLF; a bare LF, a bare CR, an obs-fold trailer line,
a size that is not hex, that has more than 16 digits or does not fit in 63
bits, or a malformed extension raises ``ChunkedError``. The same bytes give the
same data and the same verdict however they are split across calls: data is
handed out before the CRLF after it is checked, whole or byte by byte.
"""

from __future__ import annotations

import enum
import re

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_VALUE = rb"(?:" + _TOKEN + rb"|" + _QUOTED + rb")"
_EXTENSION = rb"[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*" + _VALUE + rb")?"
_SIZE_LINE_RE = re.compile(rb"([0-9a-fA-F]{1,16})(?:" + _EXTENSION + rb")*\r\n")
_TRAILER_LINE_RE = re.compile(_TOKEN + rb":[^\x00\r\n]*\r\n")
_MAX_SIZE = 2**63 - 1


class ChunkedError(Exception):
    """The chunked body is malformed; the request cannot be framed."""


class _State(enum.Enum):
    SIZE = enum.auto()
    DATA = enum.auto()
    DATA_END = enum.auto()
    TRAILER = enum.auto()
    DONE = enum.auto()


class ChunkedDecoder:
    """Decode one chunked request body from a shared receive buffer."""

    __slots__ = ("_max_line", "_remaining", "_state", "_trailer_size")

    def __init__(self, max_line: int) -> None:
        """Args:
        max_line: the longest chunk-size line, and the largest trailer
            section, in bytes.
        """
        self._max_line = max_line
        self._state = _State.SIZE
        self._remaining = 0
        self._trailer_size = 0

    def feed(self, buffer: bytearray, out: list[bytes]) -> bool:
        """Consume what ``buffer`` holds of the body.

        Args:
            buffer: the receive buffer; consumed bytes are deleted from it.
            out: chunk data found is appended here, never empty.

        Returns:
            True once the body (trailers included) is complete.

        Raises:
            ChunkedError: the body is malformed.
        """
        while buffer:
            state = self._state
            if state is _State.DATA:
                take = min(self._remaining, len(buffer))
                out.append(bytes(buffer[:take]))
                del buffer[:take]
                self._remaining -= take
                if self._remaining:
                    return False
                self._state = _State.DATA_END
            elif state is _State.DATA_END:
                if buffer[0] != 0x0D or (len(buffer) > 1 and buffer[1] != 0x0A):
                    raise ChunkedError("chunk data not followed by CRLF")
                if len(buffer) < 2:
                    return False
                del buffer[:2]
                self._state = _State.SIZE
            else:
                line = self._line(buffer)
                if line is None:
                    return False
                if state is _State.SIZE:
                    self._size_line(line)
                else:
                    self._trailer_line(line)
                if self._state is _State.DONE:
                    return True
        return self._state is _State.DONE

    def _line(self, buffer: bytearray) -> bytes | None:
        end = buffer.find(b"\n")
        if end < 0:
            if len(buffer) > self._max_line:
                raise ChunkedError("chunk line too long")
            return None
        if end + 1 > self._max_line:
            raise ChunkedError("chunk line too long")
        line = bytes(buffer[: end + 1])
        del buffer[: end + 1]
        return line

    def _size_line(self, line: bytes) -> None:
        match = _SIZE_LINE_RE.fullmatch(line)
        if match is None:
            raise ChunkedError("invalid chunk-size line")
        size = int(match[1], 16)
        if size > _MAX_SIZE:
            raise ChunkedError("chunk size too large")
        if size:
            self._remaining = size
            self._state = _State.DATA
        else:
            self._state = _State.TRAILER

    def _trailer_line(self, line: bytes) -> None:
        self._trailer_size += len(line)
        if self._trailer_size > self._max_line:
            raise ChunkedError("trailer section too large")
        if line == b"\r\n":
            self._state = _State.DONE
        elif _TRAILER_LINE_RE.fullmatch(line) is None:
            raise ChunkedError("invalid trailer field line")
