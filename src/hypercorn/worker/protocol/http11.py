"""The server side of an HTTP/1.1 connection, sans I/O (RFC 9112).

Theory of operation
-------------------
One request is served at a time; requests are numbered 1, 3, 5, ... The
connection is in one of five states, and every transition happens here:

``HEAD``        waiting for a request head. Up to ``MAX_EMPTY_LINES`` leading
                empty lines are skipped (more is refused with 400); a bare
                LF or a head over ``h11_max_incomplete_size`` is refused at
                once, however the bytes were split. A complete head is checked
                by ``http11_head.parse_head`` (through ``read_head``, which
                remembers recent heads) and becomes ``RequestReceived``.
``BODY``        the request's body is arriving; it is handed out as
                ``BodyReceived`` as soon as it is framed, then ``BodyEnded``.
``RESPONDING``  the body is complete and the response is not. Bytes that
                arrive now are a pipelined request: they are held, unparsed,
                until the response ends (reading pauses once they exceed the
                head limit), so a later request can never overtake or confuse
                an earlier one.
``DRAINING``    the response ended before its request body did: the rest of
                the body (up to ``DRAIN_LIMIT``) is read and dropped so the
                connection can be kept alive; a longer body closes it.
``CLOSED``      nothing more is read; the I/O layer closes the transport once
                ``data_to_send`` is empty.

Responses are encoded by us (``http11_response``), not by h11: they need
HTTP/1.0 keep-alive, which h11 refuses, and they are the hot path. Framing
follows the app's ``content-length`` if any, else chunked (HTTP/1.1) or
close-delimited (HTTP/1.0); HEAD, 204 and 304 responses never carry body
bytes. A response that does not match its own length closes the connection.
Output waits in a list of pieces: ``data_to_send`` joins them into one
buffer; ``pieces_to_send`` joins only the small ones and leaves a body piece
of ``WRITE_ALONE`` bytes or more as the app gave it, for one ``writelines``
that does not copy it (``gather``).

A body the I/O layer writes itself (a file by ``sendfile``) is counted
through ``raw_body_allowed``/``raw_body_written``: only a length- or
close-delimited body can take bytes with no framing of ours.

A malformed request is answered by the protocol itself (400, 405, 408, 431,
501, 505) with ``connection: close`` and reported as ``RequestRejected``. A
body that turns out malformed after its head was delivered closes the stream
(``StreamClosed``) and, if no response has started, is answered with 400 too.

Time is an argument. ``next_deadline`` is the keep-alive deadline while
waiting for a head (from the moment the connection became idle), and also
``last byte + read_timeout`` once part of a head is buffered (408 when it
passes); in ``BODY`` it is ``last byte`` plus the shorter of ``read_timeout``
and ``body_timeout`` (none while the client waits for 100 Continue): when it
passes, the stream is closed and, if no response has started, answered 408,
as nginx's ``client_body_timeout`` does; while the app works on a complete
request there is no deadline.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Protocol, assert_never

from hypercorn.worker.protocol.events import (
    BodyEnded,
    BodyReceived,
    Headers,
    InboundEvent,
    InformationalResponse,
    OutboundEvent,
    RequestReceived,
    RequestRejected,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
    StreamAborted,
    StreamClosed,
    UpgradeRequested,
    WebSocketAccept,
    WebSocketClose,
    WebSocketSend,
)
from hypercorn.worker.protocol.http11_chunked import ChunkedDecoder, ChunkedError
from hypercorn.worker.protocol.http11_head import CHUNKED, HeadError, RequestHead, read_head
from hypercorn.worker.protocol.http11_response import (
    CLOSE,
    KEEP_ALIVE,
    STATUS_LINES,
    WRITE_ALONE,
    Framing,
    error_response,
    fields,
    gather,
    response_head,
)

DRAIN_LIMIT = 64 * 1024
"""Most request-body bytes read and dropped after an early response."""

_LARGE_READ = 16 * 1024
"""A read at least this large that starts a request has its head split off first."""

MAX_EMPTY_LINES = 8
"""Empty lines skipped before a request-line (RFC 9112 section 2.2 asks for at
least one, for clients that end a body with an extra CRLF); more is a 400."""


class H11Settings(Protocol):
    """The settings the protocol reads (``hypercorn.config.Config`` has them)."""

    @property
    def h11_max_incomplete_size(self) -> int: ...
    @property
    def keep_alive_timeout(self) -> float: ...
    @property
    def keep_alive_max_requests(self) -> int: ...
    @property
    def read_timeout(self) -> float | None: ...
    @property
    def body_timeout(self) -> float | None: ...


class _State(enum.Enum):
    HEAD = enum.auto()
    BODY = enum.auto()
    RESPONDING = enum.auto()
    DRAINING = enum.auto()
    CLOSED = enum.auto()


_TCHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class H11Protocol:
    """An HTTP/1.1 server connection implementing ``ProtocolCore``."""

    __slots__ = (
        "_body_left",
        "_body_seen",
        "_body_timeout",
        "_buf",
        "_chunked",
        "_closing_after",
        "_continue_sent",
        "_drain_left",
        "_empty_lines",
        "_events",
        "_framing",
        "_head",
        "_idle_since",
        "_keep",
        "_keep_alive_max",
        "_keep_alive_timeout",
        "_last_rx",
        "_max_head",
        "_next_id",
        "_out",
        "_out_large",
        "_read_timeout",
        "_requests",
        "_resp_left",
        "_scanned",
        "_state",
        "_stream_id",
        "tls",
        "upgrade",
    )

    def __init__(self, config: H11Settings, *, tls: bool, now: float) -> None:
        """Args:
        config: the settings (limits and timeouts) to apply.
        tls: whether the connection is encrypted (kept for the I/O layer).
        now: the loop time at which the connection was accepted.
        """
        self.tls = tls
        self._max_head = config.h11_max_incomplete_size
        self._keep_alive_timeout = config.keep_alive_timeout
        self._keep_alive_max = config.keep_alive_max_requests
        self._read_timeout = read = config.read_timeout
        body = config.body_timeout
        # The earlier of the two that are set (no list and no ``min``: one is
        # made per connection).
        self._body_timeout = (
            body if read is None else read if body is None or read <= body else body
        )
        self._buf = bytearray()
        self._scanned = 0
        self._empty_lines = 0
        self._events: list[InboundEvent] = []
        self._out: list[bytes] = []
        self._out_large = False  # a piece of ``_out`` is worth writing as it is
        self._state = _State.HEAD
        self._idle_since = now
        self._last_rx = now
        self._next_id = 1
        self._stream_id = 0
        self._requests = 0
        self._head: RequestHead | None = None
        self._body_left = 0
        self._chunked: ChunkedDecoder | None = None
        self._body_seen = False
        self._continue_sent = False
        self._drain_left = 0
        self._framing = Framing.UNSTARTED
        self._resp_left = 0
        self._keep = True
        self._closing_after = False
        self.upgrade: UpgradeRequested | None = None
        """The upgrade the current request asks for, until it is switched to,
        declined or answered (h11's ``MIGHT_SWITCH_PROTOCOL``)."""

    # -- the seam ------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the peer; ``b""`` signals EOF."""
        state = self._state
        if state is _State.CLOSED:
            return
        if not data:
            if state is _State.BODY or state is _State.RESPONDING:
                self._events.append(StreamClosed(self._stream_id))
            self._close()
            return
        self._last_rx = now
        if not self._buf:
            if state is _State.BODY:
                if self._fast_body(data, now):
                    return
            elif state is _State.HEAD and data[0] in _TCHARS:
                data = self._fast_head(data, now)
                if not data:
                    return
                if self._state is _State.BODY and not self._buf and self._fast_body(data, now):
                    return
        self._buf += data
        self._process(now)

    def _fast_body(self, data: bytes, now: float) -> bool:
        """Body bytes of a known length, with nothing before them: handed on as
        they came, without a pass through the buffer. False if they do not fit."""
        if self._chunked is not None or len(data) > self._body_left:
            return False
        self._body_left -= len(data)
        self._body_read((data,), not self._body_left, now)
        return True

    def _fast_head(self, data: bytes, now: float) -> bytes:
        """A read that starts with a head, buffer empty: the bytes still to process.

        Exactly one whole head (the usual read between keep-alive requests) is
        parsed as it came; of a large read that starts with a whole head, the
        head alone goes through the buffer, so body bytes are copied once at
        most. Anything else is returned whole, for the buffer's path.
        """
        split = data.find(b"\r\n\r\n") + 4
        if split == len(data) and 4 <= split <= self._max_head:
            try:
                self._start_request(read_head(data))
            except HeadError as exc:
                self._reject(exc.status, exc.reason)
            return b""
        if split >= 4 and len(data) > _LARGE_READ:
            self._buf += memoryview(data)[:split]
            self._process(now)
            return data[split:] if self._state is not _State.CLOSED else b""
        return data

    def connection_lost(self) -> None:
        """The transport is gone; an open stream is reported closed."""
        if self._state is _State.BODY or self._state is _State.RESPONDING:
            self._events.append(StreamClosed(self._stream_id))
        self._close()

    def events_received(self) -> list[InboundEvent]:
        """Return (and forget) the events parsed since the last call."""
        events = self._events
        self._events = []
        return events

    def send(self, event: OutboundEvent, now: float) -> None:
        """Queue an outbound event for the current stream.

        Events for a stream that is no longer open are dropped: the peer is
        gone or the stream was already closed.

        Raises:
            RuntimeError: the events of the stream are out of order.
            ValueError: a status code or ``content-length`` is invalid.
        """
        state = self._state
        if (state is not _State.BODY and state is not _State.RESPONDING) or (
            event.stream_id != self._stream_id
        ):
            return
        # The three events of every response first, by exact type.
        if type(event) is ResponseData:
            self._send_data(event.data)
            return
        if type(event) is ResponseStarted:
            self._start_response(event.status_code, event.headers)
            return
        if type(event) is ResponseEnded:
            self._end_response(event.trailers, now)
            return
        match event:
            case ResponseData() | ResponseStarted() | ResponseEnded():  # pragma: no cover
                raise AssertionError("handled above")
            case InformationalResponse():
                self._send_informational(event.status_code, event.headers, now)
            case StreamAborted():
                self._close()
            case WebSocketAccept() | WebSocketSend() | WebSocketClose():
                # WebSocket frames belong to the protocol that takes the connection over.
                raise RuntimeError("WebSocket event before switch_protocol")
            case _:  # pragma: no cover
                assert_never(event)

    def raw_body_allowed(self, stream_id: int, size: int) -> int:
        """How many of ``size`` response body bytes the I/O layer may write
        itself (``sendfile``) right after ``data_to_send()``: those whose
        framing needs nothing of ours (a length-delimited body up to its
        announced end, or a close-delimited one). 0 for a chunked body (each
        piece needs its chunk line), a body that must stay empty, or a stream
        that is not the current one. Changes nothing; ``raw_body_written``
        counts what was written."""
        state = self._state
        if (state is not _State.BODY and state is not _State.RESPONDING) or (
            stream_id != self._stream_id
        ):
            return 0
        framing = self._framing
        if framing is Framing.LENGTH:
            return min(size, self._resp_left)
        return size if framing is Framing.CLOSE else 0

    def raw_body_written(self, stream_id: int, size: int) -> None:
        """The I/O layer wrote ``size`` body bytes of the stream itself (no more
        than ``raw_body_allowed`` said): they count against the announced length."""
        if stream_id == self._stream_id and self._framing is Framing.LENGTH:
            self._resp_left -= min(size, self._resp_left)

    def data_to_send(self) -> bytes:
        """Return (and forget) the bytes to write to the peer."""
        pieces = self.pieces_to_send()
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def pieces_to_send(self) -> list[bytes]:
        """Return (and forget) the bytes to write to the peer, as pieces for
        one ``writelines``: what ``data_to_send`` would return, but with each
        body piece of ``WRITE_ALONE`` bytes or more left uncopied (one piece
        when there is none). Empty when there is nothing to write."""
        out = self._out
        if not out:
            return []
        self._out = []
        if self._out_large:
            self._out_large = False
            return gather(out)
        return [out[0] if len(out) == 1 else b"".join(out)]

    def handle_timer(self, now: float) -> None:
        """Act on an expired deadline (see ``next_deadline``)."""
        deadline = self.next_deadline()
        if deadline is None or now < deadline:
            return
        if self._state is _State.HEAD and self._buf:
            self._reject(408, "request head not received in time")
            return
        self._body_failed(408, "request body not received in time")

    def next_deadline(self) -> float | None:
        """The loop time at which ``handle_timer`` must next run, if any."""
        state = self._state
        read_timeout = self._read_timeout
        if state is _State.HEAD or state is _State.DRAINING:
            deadline = self._idle_since + self._keep_alive_timeout
            if self._buf and read_timeout is not None:
                return min(deadline, self._last_rx + read_timeout)
            return deadline
        body_timeout = self._body_timeout
        if state is _State.BODY and body_timeout is not None and not self._awaiting_continue():
            return self._last_rx + body_timeout
        return None

    @property
    def should_close(self) -> bool:
        """True once the connection must close after writing what is queued."""
        return self._state is _State.CLOSED

    @property
    def linger_on_close(self) -> bool:
        """Closing follows a complete exchange: the I/O layer's check of unread input suffices."""
        return False

    @property
    def idle(self) -> bool:
        """True between requests, before any byte of the next one has arrived."""
        return self._state is _State.HEAD and not self._buf

    def close_after_response(self) -> None:
        """Answer the current (or, when idle, the next) request with
        ``connection: close``, then close: the server is draining."""
        self._closing_after = True

    @property
    def reusable(self) -> bool:
        """True if another request is expected: the connection is new, part
        of a request is in, or its client has reused it already and it is idle
        or its response keeps alive.

        A connection that carried one request is taken for a one-shot client
        (many close after the first response without saying so).
        """
        if self._state is _State.CLOSED:
            return False
        if self._requests == 0 or (self._state is _State.HEAD and self._buf):
            return True
        if self._requests < 2:
            return False
        return self.idle or (self._framing is not Framing.UNSTARTED and self._keep)

    @property
    def reading_paused(self) -> bool:
        """True while more than a head's worth of pipelined input is held."""
        return self._state is _State.CLOSED or len(self._buf) > self._max_head

    def switch_protocol(self, stream_id: int) -> bytes:
        """Hand the connection over after an ``UpgradeRequested`` on ``stream_id``.

        Returns:
            The bytes received after the upgrading request's head, unparsed:
            the first bytes of the new protocol.

        Raises:
            RuntimeError: ``stream_id`` is not an upgrade awaiting its answer.
        """
        if (
            self._state is not _State.RESPONDING
            or stream_id != self._stream_id
            or self._framing is not Framing.UNSTARTED
            or self._head is None
            or not self._head.upgrade
        ):
            raise RuntimeError("no upgrade to switch to")
        data = bytes(self._buf)
        self._close()
        return data

    def decline_upgrade(self) -> None:
        """Serve the upgrading request as a plain one, with no body.

        Its ``UpgradeRequested``, still among the events not yet returned,
        becomes ``RequestReceived`` and ``BodyEnded``; the bytes after its head
        are parsed once its response ends, as for any request.
        """
        upgrade = self.upgrade
        if upgrade is None:
            return
        self.upgrade = None
        index = self._events.index(upgrade)
        self._events[index : index + 1] = [upgrade.request, BodyEnded(upgrade.stream_id)]

    def _upgrade_protocol(self, head: RequestHead) -> bytes:
        tokens = [token.strip(b" \t") for token in head.upgrade.split(b",")]
        if b"websocket" in tokens and head.method == "GET" and head.http_version == "1.1":
            return b"websocket"
        if b"h2c" in tokens and not self.tls:
            return b"h2c"
        return b""

    # -- inbound -------------------------------------------------------------

    def _process(self, now: float) -> None:
        try:
            while True:
                state = self._state
                if state is _State.HEAD:
                    if not self._read_head():
                        return
                elif state is _State.BODY or state is _State.DRAINING:
                    if not self._read_body(now):
                        return
                else:
                    return
        except HeadError as refused:  # one name per type: mypyc types a name once
            self._reject(refused.status, refused.reason)
        except ChunkedError as malformed:
            self._body_failed(400, str(malformed))

    def _read_head(self) -> bool:
        buf = self._buf
        if buf.startswith(b"\r\n"):
            self._skip_empty_lines(buf)
        if not buf:
            return False
        if buf[0] not in _TCHARS and buf != b"\r":
            # Fail fast on what cannot be a request (e.g. TLS sent to a plain port).
            raise HeadError(400, "invalid request line")
        scanned = self._scanned
        end = buf.find(b"\r\n\r\n", max(0, scanned - 3))
        if end < 0:
            if buf.count(b"\n", scanned) != buf.count(b"\r\n", max(0, scanned - 1)):
                raise HeadError(400, "bare LF in request head")
            if len(buf) > self._max_head:
                raise HeadError(431, "request head too large")
            self._scanned = len(buf)
            return False
        end += 4
        if end > self._max_head:
            raise HeadError(431, "request head too large")
        if end == len(buf):
            head = bytes(buf)
            buf.clear()
        else:
            head = bytes(buf[:end])
            del buf[:end]
        self._scanned = 0
        self._start_request(read_head(head))
        return True

    def _skip_empty_lines(self, buf: bytearray) -> None:
        """RFC 9112 section 2.2: ignore a few empty lines before a request-line.

        Raises:
            HeadError: 400, more than ``MAX_EMPTY_LINES`` before this request.
        """
        skip = 0
        while buf.startswith(b"\r\n", skip):
            self._empty_lines += 1
            if self._empty_lines > MAX_EMPTY_LINES:
                raise HeadError(400, "too many empty lines before the request line")
            skip += 2
        del buf[:skip]
        self._scanned = 0

    def _start_request(self, head: RequestHead) -> None:
        self._requests += 1
        stream_id = self._stream_id = self._next_id
        self._next_id += 2
        self._head = head
        request = RequestReceived(
            stream_id,
            head.method,
            head.target,
            head.headers,
            head.http_version,
            head.expects_continue,
        )
        length = head.body_length
        if head.upgrade and length == 0 and (protocol := self._upgrade_protocol(head)):
            # No BodyEnded: the upgrade stands for the whole request.
            self.upgrade = UpgradeRequested(stream_id, request, protocol)
            self._events.append(self.upgrade)
            self._state = _State.RESPONDING
            return
        self._events.append(request)
        if length == 0:
            self._events.append(BodyEnded(stream_id))
            self._state = _State.RESPONDING
        else:
            if length == CHUNKED:
                self._chunked = ChunkedDecoder(self._max_head)
            else:
                self._body_left = length
            self._state = _State.BODY

    def _read_body(self, now: float) -> bool:
        buf = self._buf
        if not buf:
            return False
        chunked = self._chunked
        if chunked is None:
            take = min(self._body_left, len(buf))
            if take == len(buf):
                piece = bytes(buf)
                buf.clear()
            else:
                piece = bytes(buf[:take])
                del buf[:take]
            self._body_left -= take
            return self._body_read((piece,), not self._body_left, now)
        pieces: list[bytes] = []
        try:
            done = chunked.feed(buf, pieces)
        except ChunkedError:
            # Hand out what was framed before the error, as a split feed would have.
            self._body_read(pieces, False, now)
            raise
        return self._body_read(pieces, done, now)

    def _body_read(self, pieces: Iterable[bytes], done: bool, now: float) -> bool:
        if self._state is _State.BODY:
            self._body_seen = True
            stream_id = self._stream_id
            self._events.extend(BodyReceived(stream_id, piece) for piece in pieces)
            if done:
                self._events.append(BodyEnded(stream_id))
                self._state = _State.RESPONDING
        else:
            self._drain_left -= sum(map(len, pieces))
            if self._drain_left < 0:
                self._close()
            elif done:
                self._next_cycle(now)
        return done

    def _awaiting_continue(self) -> bool:
        head = self._head
        return (
            head is not None
            and head.expects_continue
            and not self._continue_sent
            and not self._body_seen
        )

    # -- outbound ------------------------------------------------------------

    def _send_informational(self, status: int, headers: Headers, now: float) -> None:
        if not 100 <= status < 200:
            raise ValueError(f"not an informational status: {status}")
        head = self._head
        assert head is not None
        if self._framing is not Framing.UNSTARTED or head.http_version == "1.0" or status == 101:
            return  # RFC 9110 section 15.2: no 1xx to HTTP/1.0; upgrades are not events here
        if status == 100:
            if self._state is not _State.BODY or not self._awaiting_continue():
                return
            self._continue_sent = True
            self._last_rx = now  # the client starts sending only now
        self._out += (STATUS_LINES[status], fields(headers), b"\r\n")

    def _start_response(self, status: int, headers: Headers) -> None:
        if self._framing is not Framing.UNSTARTED:
            raise RuntimeError("response already started")
        head = self._head
        assert head is not None
        out = self._out
        mark = len(out)
        try:
            self._framing, self._resp_left, close = response_head(
                out, status, headers, head.method, head.http_version
            )
        except ValueError:
            del out[mark:]  # nothing of a refused head may reach the wire
            raise
        # RFC 9110 section 10.1.1: answering before a body the client holds back
        # for 100 Continue leaves that body unsent, so the connection cannot be reused.
        keep = (
            head.keep_alive
            and not close
            and not self._closing_after
            and self._requests < self._keep_alive_max
            and not (self._state is _State.BODY and self._awaiting_continue())
        )
        self._keep = keep
        if not keep:
            out.append(CLOSE)
        elif head.http_version == "1.0":
            out.append(KEEP_ALIVE)
        out.append(b"\r\n")

    def _send_data(self, data: bytes) -> None:
        framing = self._framing
        if not data or framing is Framing.NONE:
            return
        if len(data) >= WRITE_ALONE:
            self._out_large = True
        if framing is Framing.LENGTH:
            left = self._resp_left
            if len(data) > left:
                data = data[:left]
                self._keep = False  # the app broke its own framing
            self._resp_left = left - len(data)
            if data:
                self._out.append(data)
        elif framing is Framing.CHUNKED:
            self._out += (b"%x\r\n" % len(data), data, b"\r\n")
        elif framing is Framing.CLOSE:
            self._out.append(data)
        else:
            raise RuntimeError("response data before the response started")

    def _end_response(self, trailers: Headers, now: float) -> None:
        framing = self._framing
        if framing is Framing.CHUNKED:
            self._out += (b"0\r\n", fields(trailers), b"\r\n")
        elif framing is Framing.LENGTH:
            if self._resp_left:
                self._keep = False  # a short body: only a close tells the client
        elif framing is Framing.UNSTARTED:
            raise RuntimeError("response ended before it started")
        if not self._keep:
            self._close()
        elif self._state is _State.RESPONDING:
            self._next_cycle(now)
            self._process(now)
        elif self._chunked is not None or self._body_left <= DRAIN_LIMIT:
            self._state = _State.DRAINING
            self._idle_since = now
            self._drain_left = DRAIN_LIMIT
        else:
            self._close()

    # -- transitions ---------------------------------------------------------

    def _next_cycle(self, now: float) -> None:
        self._state = _State.HEAD
        self._empty_lines = 0
        self.upgrade = None
        self._idle_since = self._last_rx = now
        self._head = None
        self._chunked = None
        self._body_left = 0
        self._body_seen = self._continue_sent = False
        self._framing = Framing.UNSTARTED
        self._keep = True

    def _body_failed(self, status: int, reason: str) -> None:
        """The request body cannot be read to its end: close the stream, answer
        ``status`` if no response has started, and close the connection."""
        if self._state is _State.BODY:
            self._events.append(StreamClosed(self._stream_id))
            if self._framing is Framing.UNSTARTED:
                self._reject(status, reason, self._stream_id)
                return
        self._close()

    def _reject(self, status: int, reason: str, stream_id: int | None = None) -> None:
        """Answer ``status`` with ``connection: close`` and close; the next
        request's id unless the request's stream is named."""
        self._events.append(RequestRejected(stream_id or self._next_id, status, reason))
        self._out.append(error_response(status))
        self._close()

    def _close(self) -> None:
        self._state = _State.CLOSED
        self.upgrade = None
        self._buf.clear()
        self._chunked = None
        self._head = None
