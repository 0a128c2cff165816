"""WebSocket frames (RFC 6455 section 5) for the server side, sans I/O.

Theory of operation
-------------------
``FrameReader`` turns the client's bytes into whole messages, pings and one
final close; ``FrameWriter`` builds the server's frames. Both do only what
a server needs: client frames must be masked, server frames never are.

The reader keeps three things between calls: at most one incomplete frame
header or control frame (``_pending``, under 140 bytes), the mask and the
remaining length of a data frame whose payload is still arriving (``_left``)
and the message being assembled from fragments. Data frame payloads are
consumed as they arrive, never held back, so a text message is checked for
UTF-8 and against ``max_size`` as soon as its bytes are read (Autobahn's
"fail fast" cases). The hot case, a whole unfragmented message in one read,
costs one slice, one unmask and (for text) one decode.

The first protocol error is kept in ``error``: the close code to fail the
connection with (1002 bad framing, 1007 invalid UTF-8 or deflate data, 1009
too big). Events read before it are still returned, in order; after it
nothing more is read (the server fails the connection and closes it without
waiting for the peer's close, RFC 6455 section 7.1.7). The peer's close
frame (``close``) ends reading too.

permessage-deflate (RFC 7692) runs here too, with the parameters wsproto's
``PerMessageDeflate`` negotiated in ``ws_handshake``; inflating is bounded by
what is left of ``max_size``, so a small compressed frame cannot expand into
a large buffer.
"""

from __future__ import annotations

import codecs
import zlib
from typing import Final

from wsproto.extensions import Extension, PerMessageDeflate

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

PROTOCOL_ERROR: Final = 1002
INVALID_DATA: Final = 1007
MESSAGE_TOO_BIG: Final = 1009
NO_STATUS: Final = 1005

_FIN: Final = 0x80
_RSV1: Final = 0x40
_RSV: Final = 0x70
_MASKED: Final = 0x80
_SYNC_TAIL: Final = b"\x00\x00\xff\xff"  # RFC 7692 section 7.2.1
# Remote close codes (RFC 6455 section 7.4, IANA registry): 1004-1006 and 1015
# are reserved or local-only, other codes under 3000 are unassigned.
_CLOSE_CODES: Final = frozenset((1000, 1001, 1002, 1003, *range(1007, 1015)))
_LOCAL_ONLY: Final = frozenset((1005, 1006, 1015))
_XOR: Final = [bytes([a ^ b for a in range(256)]) for b in range(256)]
_INT_UNMASK_MAX: Final = 2048  # measured: big-int XOR wins below, translate above

Event = tuple[int, bytes | str]
"""``(OP_TEXT, str)``, ``(OP_BINARY, bytes)`` for messages, ``(OP_PING, payload)``."""


class FrameError(Exception):
    """A protocol error: fail the connection with ``code`` (RFC 6455 section 7.1.7)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def unmask(data: bytes, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (RFC 6455 section 5.3)."""
    size = len(data)
    if size <= _INT_UNMASK_MAX:
        key = (mask * ((size >> 2) + 1))[:size]
        return (int.from_bytes(data, "little") ^ int.from_bytes(key, "little")).to_bytes(
            size, "little"
        )
    out = bytearray(data)
    for lane in range(4):
        out[lane::4] = data[lane::4].translate(_XOR[mask[lane]])
    return bytes(out)


def frame(first: int, payload: bytes) -> bytes:
    """An unmasked frame: ``first`` is the FIN/RSV/opcode byte (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 0x10000:
        return bytes((first, 126)) + size.to_bytes(2, "big") + payload
    return bytes((first, 127)) + size.to_bytes(8, "big") + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame; 1005 gives an empty one, 1006 and 1015 become 1000.

    Raises:
        OverflowError: ``code`` does not fit in two bytes.
    """
    if code == NO_STATUS:
        return b"\x88\x00"
    if code in _LOCAL_ONLY:
        code = 1000
    # Control frame payloads stop at 125 bytes (RFC 6455 section 5.5); the
    # reason is cut on a character boundary.
    text = reason.encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return frame(_FIN | OP_CLOSE, code.to_bytes(2, "big") + text)


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a peer's close frame (RFC 6455 section 5.5.1).

    Raises:
        FrameError: 1002 for a one-byte payload or a code a peer may not send,
            1007 for a reason that is not UTF-8.
    """
    if not payload:
        return NO_STATUS, ""
    if len(payload) == 1:
        raise FrameError(PROTOCOL_ERROR, "close frame with a one-byte payload")
    code = int.from_bytes(payload[:2], "big")
    if code not in _CLOSE_CODES and not 3000 <= code <= 4999:
        raise FrameError(PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(INVALID_DATA, "close reason is not UTF-8") from None


def find_deflate(extensions: list[Extension]) -> PerMessageDeflate | None:
    """The negotiated permessage-deflate among ``extensions``, if any."""
    for extension in extensions:
        if isinstance(extension, PerMessageDeflate):
            return extension
    return None


class _Inflater:
    """Inbound permessage-deflate (RFC 7692 section 7.2.2), bounded per call."""

    __slots__ = ("_bits", "_reset", "_zlib")

    def __init__(self, deflate: PerMessageDeflate) -> None:
        self._bits = deflate.client_max_window_bits
        self._reset = deflate.client_no_context_takeover
        self._zlib: zlib._Decompress | None = None

    def inflate(self, data: bytes, limit: int, end: bool) -> bytes:
        """Inflate a piece of a message; ``end`` adds the stripped sync tail.

        Raises:
            FrameError: 1007 for bad deflate data, 1009 past ``limit`` bytes.
        """
        inflater = self._zlib
        if inflater is None:
            inflater = self._zlib = zlib.decompressobj(-self._bits)
        try:
            out = inflater.decompress(data, limit + 1)
            if end and len(out) <= limit and not inflater.unconsumed_tail:
                out += inflater.decompress(_SYNC_TAIL, limit + 1 - len(out))
        except zlib.error:
            raise FrameError(INVALID_DATA, "invalid deflate data") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise FrameError(MESSAGE_TOO_BIG, "message too big")
        if end and self._reset:
            self._zlib = None
        return out


class FrameReader:
    """Client frames in; messages, pings and the peer's close out."""

    __slots__ = (
        "_chunks",
        "_compressed",
        "_decoder",
        "_fin",
        "_inflater",
        "_left",
        "_mask",
        "_max_size",
        "_opcode",
        "_pending",
        "_size",
        "_stopped",
        "_texts",
        "close",
        "error",
    )

    def __init__(self, max_size: int, deflate: PerMessageDeflate | None = None) -> None:
        """Args:
        max_size: the largest message, in bytes (binary) or characters (text).
        deflate: the negotiated permessage-deflate parameters, if any.
        """
        self._max_size = max_size
        self._inflater = None if deflate is None else _Inflater(deflate)
        self._pending = b""
        # The data frame whose payload is still arriving.
        self._left = 0
        self._mask = b""
        self._fin = False
        # The message being assembled; _opcode is 0 between messages.
        self._opcode = 0
        self._compressed = False
        self._decoder: codecs.IncrementalDecoder | None = None
        self._chunks: list[bytes] = []
        self._texts: list[str] = []
        self._size = 0
        self.close: tuple[int, str] | None = None
        """The peer's close code and reason, once its close frame is read."""
        self.error: FrameError | None = None
        """The first protocol error, if any; nothing is read after it."""
        self._stopped = False  # after a close or an error: nothing more is read

    def receive(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the messages and pings completed by it, in order."""
        events: list[Event] = []
        if self.close is not None or self._stopped:
            return events
        if self._pending:
            data = self._pending + data
            self._pending = b""
        self._parse(data, events)
        return events

    def _parse(self, data: bytes, events: list[Event]) -> None:
        """Read every whole frame header in ``data`` and what is here of its payload.

        A whole, unfragmented, uncompressed message in one read (the usual case)
        takes ``_fast_message``; anything else, the reference path
        (``_data_frame``, ``_payload``), whatever the reads: the chunking tests
        hold both to the same events.
        """
        end = len(data)
        try:
            pos = self._rest_of_payload(data, events) if self._left else 0
            while end - pos >= 2:
                first = data[pos]
                second = data[pos + 1]
                opcode = first & 0x0F
                if opcode > OP_BINARY or not second & _MASKED:
                    self._check_header(first, second)
                length = second & 0x7F
                start = pos + 6
                if length >= 126:
                    start, length = self._extended_length(data, pos, length)
                if end < start:
                    break
                stop = start + length
                if opcode >= OP_CLOSE:
                    if end < stop:
                        break
                    pos = stop
                    if self._control(
                        opcode, unmask(data[start:stop], data[start - 4 : start]), events
                    ):
                        return
                elif first == _FIN | opcode and opcode and stop <= end and not self._opcode:
                    pos = stop
                    events.append(self._fast_message(opcode, data[start - 4 : stop]))
                else:
                    pos = self._data_frame(data, first, opcode, start, stop, events)
        except FrameError as error:
            self.error = error
            self._stopped = True
            self._opcode = 0
            self._chunks = []
            self._texts = []
            self._decoder = None
            self._pending = b""
            return
        if pos < end:
            self._pending = data[pos:]

    def _fast_message(self, opcode: int, masked: bytes) -> Event:
        """A whole unfragmented message: ``masked`` is its mask and payload."""
        payload = unmask(masked[4:], masked[:4])
        if opcode == OP_BINARY:
            if len(payload) > self._max_size:
                raise FrameError(MESSAGE_TOO_BIG, "message too big")
            return OP_BINARY, payload
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError(INVALID_DATA, "text message is not UTF-8") from None
        if len(text) > self._max_size:
            raise FrameError(MESSAGE_TOO_BIG, "message too big")
        return OP_TEXT, text

    def _data_frame(
        self, data: bytes, first: int, opcode: int, start: int, stop: int, events: list[Event]
    ) -> int:
        """The reference path of a data frame: its header checked against the
        message in progress, then what is here of its payload. Returns where
        the next frame starts (the end of ``data`` if the payload goes on)."""
        self._start_frame(first, opcode, stop - start)
        mask = data[start - 4 : start]
        end = len(data)
        if stop > end:  # the payload is still arriving: take what is here
            self._left = stop - end
            taken = end - start
            self._mask = mask[taken % 4 :] + mask[: taken % 4]
            stop = end
        self._payload(unmask(data[start:stop], mask), not self._left, events)
        return stop

    def _rest_of_payload(self, data: bytes, events: list[Event]) -> int:
        """The payload of a data frame begun in an earlier read; returns its size here."""
        taken = min(self._left, len(data))
        self._left -= taken
        mask = self._mask
        self._mask = mask[taken % 4 :] + mask[: taken % 4]
        self._payload(unmask(data[:taken], mask), not self._left, events)
        return taken

    @staticmethod
    def _extended_length(data: bytes, pos: int, length: int) -> tuple[int, int]:
        """The payload start and length of a frame with a 16- or 64-bit length
        (RFC 6455 section 5.2); a start past the data while the header is incomplete.

        Raises:
            FrameError: 1002, the length is not in its shortest form.
        """
        if length == 126:
            start = pos + 8
            if len(data) < start:
                return start, 0
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            if length < 126:
                raise FrameError(PROTOCOL_ERROR, "length not in its shortest form")
            return start, length
        start = pos + 14
        if len(data) < start:
            return start, 0
        length = int.from_bytes(data[pos + 2 : pos + 10], "big")
        if length < 0x10000 or length >> 63:
            raise FrameError(PROTOCOL_ERROR, "invalid 64-bit length")
        return start, length

    def _control(self, opcode: int, payload: bytes, events: list[Event]) -> bool:
        """A ping, a pong or the close; True once reading must stop (the close).

        Nothing after a close is read (RFC 6455 section 5.5.1), even when the
        close itself is invalid.
        """
        if opcode == OP_PING:
            events.append((OP_PING, payload))
        elif opcode == OP_CLOSE:
            self._stopped = True
            self.close = parse_close(payload)
            return True
        return False  # a pong (unsolicited or not) needs no answer

    def _check_header(self, first: int, second: int) -> None:
        """The first two bytes of a frame that is not a plain data frame.

        Raises:
            FrameError: 1002, an unmasked frame, a reserved opcode, or a control
                frame that breaks section 5.5's rules.
        """
        if not second & _MASKED:
            raise FrameError(PROTOCOL_ERROR, "unmasked client frame")
        opcode = first & 0x0F
        if opcode >= OP_CLOSE:
            self._check_control(first, second)
        elif opcode > OP_BINARY:
            raise FrameError(PROTOCOL_ERROR, f"reserved opcode {opcode}")

    def _check_control(self, first: int, second: int) -> None:
        # RFC 6455 section 5.5: control frames are never fragmented and carry
        # at most 125 bytes; section 5.2: reserved opcodes and RSV bits fail.
        opcode = first & 0x0F
        if opcode > OP_PONG:
            raise FrameError(PROTOCOL_ERROR, f"reserved opcode {opcode}")
        if first & _RSV:
            raise FrameError(PROTOCOL_ERROR, "RSV bits set on a control frame")
        if not first & _FIN:
            raise FrameError(PROTOCOL_ERROR, "fragmented control frame")
        if second & 0x7F > 125:
            raise FrameError(PROTOCOL_ERROR, "control frame payload over 125 bytes")

    def _start_frame(self, first: int, opcode: int, length: int) -> None:
        """Check a data frame's header against the message in progress."""
        rsv = first & _RSV
        if opcode == OP_CONTINUATION:
            if not self._opcode:
                raise FrameError(PROTOCOL_ERROR, "continuation frame outside a message")
            if rsv:
                raise FrameError(PROTOCOL_ERROR, "RSV bits set on a continuation frame")
        else:
            if self._opcode:
                raise FrameError(PROTOCOL_ERROR, "new message inside a fragmented one")
            if rsv and (rsv != _RSV1 or self._inflater is None):
                raise FrameError(PROTOCOL_ERROR, "RSV bits set without an extension")
            self._opcode = opcode
            self._compressed = bool(rsv)
            self._decoder = codecs.getincrementaldecoder("utf-8")() if opcode == OP_TEXT else None
            self._chunks = []
            self._texts = []
            self._size = 0
        self._fin = bool(first & _FIN)
        if not self._compressed and length > self._budget():
            raise FrameError(MESSAGE_TOO_BIG, "message too big")

    def _budget(self) -> int:
        """Payload bytes the message may still take (UTF-8: up to 4 per character)."""
        left = self._max_size - self._size
        return 4 * left if self._opcode == OP_TEXT else left

    def _payload(self, payload: bytes, frame_end: bool, events: list[Event]) -> None:
        """Add a piece of a data frame to the message; emit the message at its end."""
        message_end = frame_end and self._fin
        if self._compressed:
            assert self._inflater is not None
            payload = self._inflater.inflate(payload, self._budget(), message_end)
        decoder = self._decoder
        if decoder is not None:
            try:
                text = decoder.decode(payload, message_end)
            except UnicodeDecodeError:
                raise FrameError(INVALID_DATA, "text message is not UTF-8") from None
            self._size += len(text)
            self._texts.append(text)
        else:
            self._size += len(payload)
            self._chunks.append(payload)
        if self._size > self._max_size:
            raise FrameError(MESSAGE_TOO_BIG, "message too big")
        if message_end:
            message = "".join(self._texts) if decoder is not None else b"".join(self._chunks)
            events.append((self._opcode, message))
            self._opcode = 0
            self._texts = []
            self._chunks = []
            self._decoder = None


class FrameWriter:
    """The server's frames: unmasked, each message in one frame."""

    __slots__ = ("_bits", "_reset", "_zlib")

    def __init__(self, deflate: PerMessageDeflate | None = None) -> None:
        """Args:
        deflate: the negotiated permessage-deflate parameters, if any.
        """
        self._bits = 0 if deflate is None else deflate.server_max_window_bits
        self._reset = deflate is not None and deflate.server_no_context_takeover
        self._zlib: zlib._Compress | None = None

    def message(self, data: bytes | str) -> bytes:
        """A text (``str``) or binary message frame (RFC 6455 section 5.6)."""
        if isinstance(data, str):
            first = _FIN | OP_TEXT
            data = data.encode("utf-8")
        else:
            first = _FIN | OP_BINARY
        if self._bits:
            first |= _RSV1
            data = self._deflate(data)
        return frame(first, data)

    def ping(self, payload: bytes = b"") -> bytes:
        """A ping frame (RFC 6455 section 5.5.2)."""
        return frame(_FIN | OP_PING, payload)

    def pong(self, payload: bytes) -> bytes:
        """The pong that answers a ping with ``payload`` (RFC 6455 section 5.5.3)."""
        return frame(_FIN | OP_PONG, payload)

    def _deflate(self, data: bytes) -> bytes:
        # RFC 7692 section 7.2.1: compress, sync-flush, drop the 4-byte tail.
        compressor = self._zlib
        if compressor is None:
            compressor = self._zlib = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self._bits
            )
        out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if self._reset:
            self._zlib = None
        return out[:-4]
