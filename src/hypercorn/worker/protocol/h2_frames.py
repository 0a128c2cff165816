"""HTTP/2 frames on the wire (RFC 9113 sections 4 and 6), without state.

Theory of operation
-------------------
Every frame is a 9-byte header (24-bit length, type, flags, 31-bit stream
identifier) and a payload. ``FrameReader`` cuts a byte stream, however it is
split across reads, into ``(type, flags, stream_id, payload)`` tuples: it
keeps only an incomplete frame between calls and refuses a length above the
limit the server advertised before buffering it (FRAME_SIZE_ERROR). The
``parse_*`` functions check a payload's own rules (lengths, padding, the
stream identifier a type needs) and return plain ints and bytes; a breach
raises ``FrameError`` with the error code of RFC 9113. The ``*_frame``
functions are the other way: plain values to bytes, the header packed by one
``struct`` call. What a frame means for a connection or a stream is left to
``h2_session``.

Everything is ints and bytes, so the module compiles to C as it stands.
"""

from __future__ import annotations

import struct

# Frame types (RFC 9113 section 6).
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Error codes (RFC 9113 section 7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
SETTINGS_TIMEOUT = 0x4
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
CONNECT_ERROR = 0xA
ENHANCE_YOUR_CALM = 0xB
INADEQUATE_SECURITY = 0xC
HTTP_1_1_REQUIRED = 0xD

# Settings (RFC 9113 section 6.5.2, RFC 8441 section 3).
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6
ENABLE_CONNECT_PROTOCOL = 0x8

DEFAULT_WINDOW = 65535
"""The initial flow-control window of a connection and of every stream."""

MAX_WINDOW = 2**31 - 1
"""No flow-control window may exceed this (RFC 9113 section 6.9.1)."""

DEFAULT_FRAME_SIZE = 16384
"""The largest payload a peer must accept until it says otherwise."""

MAX_FRAME_SIZE_LIMIT = 2**24 - 1
"""The largest SETTINGS_MAX_FRAME_SIZE there is."""

_HEAD = struct.Struct(">HBBBL")
"""A frame header as (length >> 8, length & 0xff, type, flags, stream id)."""

_SETTING = struct.Struct(">HL")
_TWO_INTS = struct.Struct(">LL")
_ONE_INT = struct.Struct(">L")


class FrameError(Exception):
    """A frame breaks a rule of RFC 9113: a connection error of ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code


class FrameReader:
    """Cuts bytes into frames; keeps an incomplete frame between reads.

    Args:
        max_frame_size: the largest payload accepted (SETTINGS_MAX_FRAME_SIZE
            as advertised).
    """

    __slots__ = ("_buffer", "max_frame_size")

    def __init__(self, max_frame_size: int) -> None:
        self._buffer = b""
        self.max_frame_size = max_frame_size

    def feed(self, data: bytes) -> list[tuple[int, int, int, bytes]]:
        """Add ``data``; return every frame now complete, in order.

        Raises:
            FrameError: a frame is longer than ``max_frame_size``
                (FRAME_SIZE_ERROR).
        """
        buffer = self._buffer + data if self._buffer else data
        frames: list[tuple[int, int, int, bytes]] = []
        start = 0
        end = len(buffer)
        limit = self.max_frame_size
        while end - start >= 9:
            high, low, kind, flags, stream_id = _HEAD.unpack_from(buffer, start)
            length = (high << 8) | low
            if length > limit:
                self._buffer = b""
                raise FrameError(FRAME_SIZE_ERROR, f"frame of {length} bytes")
            stop = start + 9 + length
            if stop > end:
                break
            frames.append((kind, flags, stream_id & 0x7FFFFFFF, buffer[start + 9 : stop]))
            start = stop
        self._buffer = buffer[start:] if start < end else b""
        return frames

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held."""
        return len(self._buffer)


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame: header and payload."""
    length = len(payload)
    return _HEAD.pack(length >> 8, length & 0xFF, kind, flags, stream_id) + payload


def frame_head(kind: int, flags: int, stream_id: int, length: int) -> bytes:
    """A frame header alone (the payload is written after it, uncopied)."""
    return _HEAD.pack(length >> 8, length & 0xFF, kind, flags, stream_id)


def settings_frame(settings: list[tuple[int, int]]) -> bytes:
    """A SETTINGS frame with the given (identifier, value) pairs."""
    return frame(SETTINGS, 0, 0, b"".join(_SETTING.pack(key, value) for key, value in settings))


SETTINGS_ACK = frame(SETTINGS, ACK, 0)
"""The acknowledgement of the peer's SETTINGS."""


def window_update_frame(stream_id: int, increment: int) -> bytes:
    """A WINDOW_UPDATE frame."""
    return frame(WINDOW_UPDATE, 0, stream_id, _ONE_INT.pack(increment))


def rst_stream_frame(stream_id: int, code: int) -> bytes:
    """A RST_STREAM frame."""
    return frame(RST_STREAM, 0, stream_id, _ONE_INT.pack(code))


def goaway_frame(last_stream_id: int, code: int) -> bytes:
    """A GOAWAY frame without debug data."""
    return frame(GOAWAY, 0, 0, _TWO_INTS.pack(last_stream_id, code))


def header_frames(
    stream_id: int, block: bytes, end_stream: bool, max_frame_size: int, kind: int = HEADERS
) -> list[bytes]:
    """A header block as HEADERS (or PUSH_PROMISE) and CONTINUATION frames.

    For PUSH_PROMISE, ``block`` starts with the promised stream id.
    """
    flags = END_STREAM if end_stream and kind == HEADERS else 0
    if len(block) <= max_frame_size:
        return [frame(kind, flags | END_HEADERS, stream_id, block)]
    frames = [frame(kind, flags, stream_id, block[:max_frame_size])]
    for start in range(max_frame_size, len(block), max_frame_size):
        last = start + max_frame_size >= len(block)
        piece = block[start : start + max_frame_size]
        frames.append(frame(CONTINUATION, END_HEADERS if last else 0, stream_id, piece))
    return frames


def unpad(flags: int, payload: bytes) -> bytes:
    """The payload of a DATA or HEADERS frame without its padding.

    Raises:
        FrameError: the padding is as long as the payload or longer
            (PROTOCOL_ERROR).
    """
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise FrameError(PROTOCOL_ERROR, "padding exceeds the payload")
    return payload[1 : len(payload) - payload[0]]


def parse_priority(stream_id: int, payload: bytes) -> None:
    """Check a priority block (PRIORITY frame, or HEADERS with PRIORITY).

    Priorities are read and dropped (RFC 9113 section 5.3.2).

    Raises:
        FrameError: the block is short (FRAME_SIZE_ERROR) or the stream
            depends on itself (PROTOCOL_ERROR).
    """
    if len(payload) < 5:
        raise FrameError(FRAME_SIZE_ERROR, "short priority block")
    if _ONE_INT.unpack_from(payload)[0] & 0x7FFFFFFF == stream_id:
        raise FrameError(PROTOCOL_ERROR, "a stream depends on itself")


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    """The (identifier, value) pairs of a SETTINGS frame, checked.

    Raises:
        FrameError: the length is not a multiple of 6 (FRAME_SIZE_ERROR),
            or a value is out of its range (PROTOCOL_ERROR, or
            FLOW_CONTROL_ERROR for INITIAL_WINDOW_SIZE).
    """
    if len(payload) % 6:
        raise FrameError(FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
    settings = [_SETTING.unpack_from(payload, start) for start in range(0, len(payload), 6)]
    for key, value in settings:
        if key in (ENABLE_PUSH, ENABLE_CONNECT_PROTOCOL) and value > 1:
            raise FrameError(PROTOCOL_ERROR, f"setting {key} must be 0 or 1")
        if key == INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
            raise FrameError(FLOW_CONTROL_ERROR, "initial window above 2^31-1")
        if key == MAX_FRAME_SIZE and not DEFAULT_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
            raise FrameError(PROTOCOL_ERROR, "max frame size out of range")
    return settings


def parse_window_update(payload: bytes) -> int:
    """The increment of a WINDOW_UPDATE frame (0 is the caller's to refuse).

    Raises:
        FrameError: the payload is not 4 bytes (FRAME_SIZE_ERROR).
    """
    if len(payload) != 4:
        raise FrameError(FRAME_SIZE_ERROR, "WINDOW_UPDATE length not 4")
    return int(_ONE_INT.unpack(payload)[0]) & 0x7FFFFFFF


def parse_error_code(payload: bytes) -> int:
    """The error code of a RST_STREAM frame.

    Raises:
        FrameError: the payload is not 4 bytes (FRAME_SIZE_ERROR).
    """
    if len(payload) != 4:
        raise FrameError(FRAME_SIZE_ERROR, "RST_STREAM length not 4")
    return int(_ONE_INT.unpack(payload)[0])


def parse_goaway(payload: bytes) -> tuple[int, int]:
    """The (last stream id, error code) of a GOAWAY frame.

    Raises:
        FrameError: the payload is shorter than 8 bytes (FRAME_SIZE_ERROR).
    """
    if len(payload) < 8:
        raise FrameError(FRAME_SIZE_ERROR, "short GOAWAY")
    last, code = _TWO_INTS.unpack_from(payload)
    return int(last) & 0x7FFFFFFF, int(code)
