"""The server side of one WebSocket (RFC 6455), sans I/O.

Theory of operation
-------------------
A ``WSConnection`` starts once the app has accepted the opening handshake
(``WebSocketAccept``). Over HTTP/1.1 it takes the whole connection and is the
connection's ``ProtocolCore``: its first bytes are the ``101`` response.
Over HTTP/2 (RFC 8441) the HTTP/2 protocol keeps one per stream, answers
``200`` with ``response_headers`` and carries ``receive_data`` /
``data_to_send`` in DATA frames; ``should_close`` then ends the stream.

Frames are parsed and built by ``ws_frames`` (which also joins fragments,
checks UTF-8 and the size limit and runs permessage-deflate); the rules
above frames are here:

- Messages are handed out whole (``WebSocketMessage``); a message over
  ``websocket_max_message_size`` fails the connection with 1009 before more
  of it is buffered.
- Pings are answered at once; with ``websocket_ping_interval`` the server
  pings on its own, each interval (``next_deadline``/``handle_timer``).
- Closing: the peer's close is echoed with its code and the connection ends
  at once (RFC 6455 section 7.1.1: the server closes TCP first). A close the
  app asks for is sent and the peer's answer awaited for ``CLOSE_TIMEOUT``
  seconds; it ends the connection as soon as it comes. A protocol error
  (bad framing, an invalid close, invalid UTF-8, a message too big: 1002,
  1007, 1009) fails the connection (section 7.1.7): our close frame with the
  code the frame reader names, and the connection ends at once, without
  waiting for the peer's answer (after bad framing it could not even be
  found). The peer may still be sending then, so ``linger_on_close`` asks
  the I/O layer to shut our side first and drop what still arrives, rather
  than reset a connection whose close frame the peer has not read yet.
  Whichever way it ends, the stream gets exactly one ``WebSocketClosed``:
  the peer's code, the failure's code, or 1006 when the transport was lost
  or timed out.

States: ``OPEN`` (messages flow both ways), ``CLOSING`` (our close frame is
sent; input is read only to find the peer's close), ``CLOSED`` (nothing is
read or sent; ``should_close``).
"""

from __future__ import annotations

import enum
from typing import Protocol

from hypercorn.worker.protocol.events import (
    Headers,
    InboundEvent,
    OutboundEvent,
    WebSocketAccept,
    WebSocketClose,
    WebSocketClosed,
    WebSocketMessage,
    WebSocketSend,
)
from hypercorn.worker.protocol.http11_response import fields
from hypercorn.worker.protocol.ws_frames import (
    OP_PING,
    FrameReader,
    FrameWriter,
    close_frame,
    find_deflate,
)
from hypercorn.worker.protocol.ws_handshake import accept_extensions, response_fields

CLOSE_TIMEOUT = 5.0
"""Seconds to wait for the peer's close frame after ours before giving up."""

_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\n"
_ABNORMAL = 1006


class WSSettings(Protocol):
    """The settings the protocol reads (``hypercorn.config.Config`` has them)."""

    @property
    def websocket_max_message_size(self) -> int: ...
    @property
    def websocket_ping_interval(self) -> float | None: ...


class _State(enum.Enum):
    OPEN = enum.auto()
    CLOSING = enum.auto()
    CLOSED = enum.auto()


class WSConnection:
    """One accepted WebSocket; over HTTP/1.1 also the connection's ``ProtocolCore``."""

    __slots__ = (
        "_close_deadline",
        "_closed_sent",
        "_events",
        "_linger",
        "_next_ping",
        "_out",
        "_ping_interval",
        "_reader",
        "_state",
        "_writer",
        "response_headers",
        "stream_id",
        "tls",
    )

    def __init__(
        self,
        config: WSSettings,
        accept: WebSocketAccept,
        now: float,
        *,
        http11: bool = True,
        tls: bool = False,
    ) -> None:
        """Args:
        config: the settings (message size, ping interval) to apply.
        accept: the app's answer to the opening handshake.
        now: the loop time.
        http11: queue the ``101`` response head as the first bytes to send.
        tls: whether the connection is encrypted (kept for the I/O layer).
        """
        self.stream_id = accept.stream_id
        self.tls = tls
        accepted, extensions = accept_extensions(accept.handshake)
        self.response_headers: Headers = (
            *response_fields(accept.handshake, accept.subprotocol, accepted),
            *accept.headers,
        )
        deflate = find_deflate(extensions)
        self._reader = FrameReader(config.websocket_max_message_size, deflate)
        self._writer = FrameWriter(deflate)
        self._ping_interval = config.websocket_ping_interval
        self._next_ping = None if self._ping_interval is None else now + self._ping_interval
        self._events: list[InboundEvent] = []
        self._out: list[bytes] = []
        if http11:
            self._out += (_SWITCHING, fields(self.response_headers), b"\r\n")
        self._state = _State.OPEN
        self._close_deadline: float | None = None
        self._closed_sent = False
        self._linger = False

    # -- the seam ------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the peer; ``b""`` signals EOF."""
        if self._state is _State.CLOSED:
            return
        if not data:
            self._finish(_ABNORMAL, "")
            return
        reader = self._reader
        events = reader.receive(data)
        if self._state is _State.OPEN:
            stream_id = self.stream_id
            for opcode, payload in events:
                if opcode == OP_PING:
                    assert isinstance(payload, bytes)
                    self._out.append(self._writer.pong(payload))
                else:
                    self._events.append(WebSocketMessage(stream_id, payload))
        error = reader.error
        if error is not None and self._state is _State.OPEN:
            self._fail(error.code, error.reason)
            return
        if reader.close is not None:
            code, reason = reader.close
            if self._state is _State.OPEN:
                # The peer closes: echo its code (RFC 6455 section 5.5.1), then end.
                self._out.append(close_frame(code, reason))
            # Otherwise it answers our close: the stream was told when we sent it.
            self._finish(code, reason)

    def connection_lost(self) -> None:
        """The transport is gone: the stream learns it with 1006."""
        self._finish(_ABNORMAL, "")

    def events_received(self) -> list[InboundEvent]:
        """Return (and forget) the events parsed since the last call."""
        events = self._events
        self._events = []
        return events

    def send(self, event: OutboundEvent, now: float) -> None:
        """Queue a message or a close; anything once closing is dropped."""
        if self._state is not _State.OPEN:
            return
        if type(event) is WebSocketSend:
            self._out.append(self._writer.message(event.data))
        elif type(event) is WebSocketClose:
            # Our close: the peer's answer ends the connection (or the timeout).
            self._out.append(close_frame(event.code, event.reason))
            self._state = _State.CLOSING
            self._close_deadline = now + CLOSE_TIMEOUT

    def data_to_send(self) -> bytes:
        """Return (and forget) the bytes to write to the peer."""
        out = self._out
        if not out:
            return b""
        self._out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def handle_timer(self, now: float) -> None:
        """Close after an unanswered close; send the interval's ping."""
        deadline = self._close_deadline
        if deadline is not None and now >= deadline:
            self._finish(_ABNORMAL, "")
            return
        if (
            self._next_ping is not None
            and self._ping_interval is not None
            and now >= self._next_ping
        ):
            self._next_ping = now + self._ping_interval
            if self._state is _State.OPEN:
                self._out.append(self._writer.ping())

    def next_deadline(self) -> float | None:
        """The loop time at which ``handle_timer`` must next run, if any."""
        if self._state is _State.CLOSING:
            return self._close_deadline
        if self._state is _State.OPEN:
            return self._next_ping
        return None

    @property
    def should_close(self) -> bool:
        """True once the WebSocket is over (close the connection or end the stream)."""
        return self._state is _State.CLOSED

    @property
    def reading_paused(self) -> bool:
        """Input is never held unparsed here; streams pause reading themselves."""
        return self._state is _State.CLOSED

    @property
    def linger_on_close(self) -> bool:
        """True once the connection was failed: the peer may still be sending."""
        return self._linger

    # -- transitions ---------------------------------------------------------

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 section 7.1.7): our close frame, then the end."""
        self._out.append(close_frame(code, reason))
        self._linger = True
        self._finish(code, reason)

    def _finish(self, code: int, reason: str) -> None:
        if self._state is _State.CLOSED:
            return
        self._state = _State.CLOSED
        self._notify(code, reason)

    def _notify(self, code: int, reason: str) -> None:
        if not self._closed_sent:
            self._closed_sent = True
            self._events.append(WebSocketClosed(self.stream_id, code, reason))
