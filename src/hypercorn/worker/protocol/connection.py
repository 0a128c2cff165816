"""One TCP connection's server side, sans I/O, whatever it comes to speak.

Theory of operation
-------------------
The I/O layer holds one ``ServerConnection`` per socket and drives it through
the ``ServerProtocol`` seam (``base.py``): bytes and time in; events, bytes
and a few plain facts (close, linger, pause reading) out. Everything a
connection decides lives here, so that an I/O layer only moves bytes and
time and names no protocol:

* **What it speaks.** ALPN ``h2`` starts HTTP/2. Otherwise HTTP/1.1
  (``H11Protocol``) serves it, and on plain TCP the first bytes are sniffed:
  the HTTP/2 client preface (RFC 9113 section 3.4) switches to HTTP/2 by prior
  knowledge; only a prefix of the preface is ever held back.
* **The PROXY header** on a proxy-protocol bind is read first, from a
  trusted peer only; it replaces the connection's addresses in ``info``.
* **Switches** happen at one point each, with the bytes that follow them
  (h11's ``SWITCHED_PROTOCOL`` with ``trailing_data``): an ``Upgrade: h2c``
  request with a valid ``HTTP2-Settings`` (``h2c.py``) becomes stream 1 of
  an HTTP/2 connection at once, and the events of HTTP/1.1 before it come
  out first; a declined one is served over HTTP/1.1. A WebSocket upgrade is
  the app's to accept: its ``WebSocketAccept`` hands the connection and the
  bytes after the request's head to a ``WSConnection``.
* **Keep-alive and drain policy.** ``begin_drain`` (the worker stops): HTTP/1.1
  answers the current or next request with ``connection: close``; while it
  is idle it lingers ``drain_grace`` seconds, so that a request the client
  is sending at that instant is served rather than met by a close, then it
  closes gently (``linger_on_close``: FIN first). A worker stopped by its
  request limit drains the same way. HTTP/2 sends GOAWAY once the connection's first request is
  in (one sent before it would refuse the request that came with the
  preface), or after ``drain_grace`` if none comes. A WebSocket is closed by
  its stream (1001).
* **Pausing.** Reading pauses while the protocol holds enough unparsed input,
  while an HTTP/1.1 stream asks for it (its app does not read the body it
  was given), and, over HTTP/2, while the transport cannot write: a peer
  that does not read what it asked for is not read either.

The inner protocol changes at most once (HTTP/1.1 to HTTP/2 or to a
WebSocket); ``_h11`` and ``_h2`` name it while it is one of those, so the hot
path forwards with attribute tests, never type tests.

Forwarding. ``receive_data``, ``send``, ``data_to_send`` (and
``pieces_to_send``, HTTP/1.1's own while it speaks it), ``events_received``
and ``next_deadline`` are called on every step; they are attributes bound to
the inner protocol's own methods (``_rebind``), so the layer costs no call of
its own on them, except while it has something to add: the preamble, HTTP/1.1's
switches, the events and bytes a replaced protocol left (once, right after a
switch), the drain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hypercorn.worker.protocol.events import (
    ConnectionInfo,
    Headers,
    InboundEvent,
    OutboundEvent,
    RequestReceived,
    WebSocketAccept,
)
from hypercorn.worker.protocol.h2c import upgrade_settings
from hypercorn.worker.protocol.http11 import H11Protocol
from hypercorn.worker.protocol.proxy import ProxyHeaderReader, ProxyProtocolError, TrustedAddresses

if TYPE_CHECKING:
    from hypercorn.worker.protocol.base import ConnectionSettings
    from hypercorn.worker.protocol.h2 import H2Protocol
    from hypercorn.worker.protocol.ws import WSConnection


# HTTP/2 and WebSocket code (h2, wsproto) is imported by the first connection
# that needs it: a worker serving only HTTP/1.1 starts faster and smaller.

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The HTTP/2 client connection preface (RFC 9113 section 3.4): prior knowledge."""

SERVED_ALPN_PROTOCOLS = ("h2", "http/1.1")
"""ALPN protocols a connection can speak; the configured list is filtered to these."""


class ServerConnection:
    """A TCP connection implementing ``ServerProtocol`` (see the module doc)."""

    __slots__ = (
        "_close_now",
        "_draining",
        "_events",
        "_gentle",
        "_grace",
        "_h2",
        "_h11",
        "_linger_until",
        "_out",
        "_paused",
        "_protocol",
        "_proxy",
        "_settings",
        "_sniffed",
        "_tls",
        "_write_paused",
        "close_reason",
        "data_to_send",
        "events_received",
        "info",
        "multiplexed",
        "next_deadline",
        "pieces_to_send",
        "receive_data",
        "send",
    )

    def __init__(
        self,
        config: ConnectionSettings,
        info: ConnectionInfo,
        now: float,
        *,
        alpn: str | None = None,
        proxy: TrustedAddresses | None = None,
        drain_grace: float = 1.0,
    ) -> None:
        """Args:
        config: the settings of every protocol.
        info: the connection's addresses, scheme and TLS details.
        now: the loop time at which the connection was made.
        alpn: the protocol TLS negotiated, if any.
        proxy: on a PROXY protocol bind, the peers whose header is believed.
        drain_grace: seconds an idle connection lingers once draining.
        """
        self.info = info
        self.close_reason: str | None = None
        """Why the connection was refused before any request, for a debug line."""
        self.multiplexed = False
        """True while several streams share the connection (HTTP/2): their
        output may be gathered into one write per loop turn."""
        self._settings = config
        self._tls = info.scheme == "https"
        self._grace = drain_grace
        self._events: list[InboundEvent] = []  # a replaced protocol's last events
        self._out = b""  # and its last bytes to send
        self._paused: set[int] = set()
        self._write_paused = False
        self._draining = False
        self._linger_until: float | None = None
        self._close_now = False
        self._gentle = False
        self._sniffed: bytes | None = None  # plain TCP: the first bytes, until h2 or not
        self._proxy: ProxyHeaderReader | None = None  # until the PROXY header is read
        self._h2: H2Protocol | None = None
        self._h11: H11Protocol | None = None
        self._protocol: H11Protocol | H2Protocol | WSConnection
        # The hot forwards, bound by ``_rebind`` (see "Forwarding" in the module doc).
        self.data_to_send: Callable[[], bytes]
        self.pieces_to_send: Callable[[], list[bytes]]
        self.events_received: Callable[[], list[InboundEvent]]
        self.next_deadline: Callable[[], float | None]
        self.receive_data: Callable[[bytes, float], None]
        self.send: Callable[[OutboundEvent, float], None]
        if alpn == "h2":
            self._start_h2(now)
        else:
            self._protocol = self._h11 = H11Protocol(config, tls=self._tls, now=now)
            if not self._tls:
                self._sniffed = b""
        if proxy is not None:
            client = info.client
            if (client[0] if client is not None else None) not in proxy:
                self._refuse("peer not in forwarded_allow_ips")
            else:
                self._proxy = ProxyHeaderReader()
        self._rebind()

    # -- bytes -----------------------------------------------------------------

    def _receive(self, data: bytes, now: float) -> None:
        """``receive_data`` while there is more to do than the protocol's part:
        the preamble, HTTP/1.1's switches, the drain or a refused peer."""
        if self._close_now:
            return
        if self._proxy is not None or self._sniffed is not None:
            if data:
                data = self._preamble(data, now)
                if not data:
                    return
            elif self._proxy is not None:
                self._refuse("connection closed before the PROXY header ended")
                return
        self._protocol.receive_data(data, now)
        if self._h11 is not None and (self._h11.upgrade is not None or self._draining):
            self._after_h11(now)
        elif self._draining:
            self._drain_step(now)

    def connection_lost(self) -> None:
        """The transport is gone; open streams are reported closed.

        Nothing more arrives and nothing switches: bytes and events go straight
        to the protocol from now on, so the connection holds no bound method of
        its own (a reference cycle) and is freed as soon as its owner lets go.
        """
        protocol = self._protocol
        protocol.connection_lost()
        self._linger_until = None  # only the deadline's forward: receive_data is set here
        self._rebind_deadline()
        self.receive_data = protocol.receive_data
        self.send = protocol.send

    # -- events ----------------------------------------------------------------

    def _send_h11(self, event: OutboundEvent, now: float) -> None:
        """``send`` over HTTP/1.1: a ``WebSocketAccept`` switches protocols."""
        h11 = self._h11
        if h11 is not None and type(event) is WebSocketAccept:
            self._switch_to_websocket(h11, event, now)
            return
        self._protocol.send(event, now)
        if h11 is not None and (h11.upgrade is not None or self._draining):
            self._after_h11(now)  # the response ended: a pipelined request may be in

    # -- time ------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Act on expired deadlines: the drain linger, then the protocol's own."""
        linger = self._linger_until
        if linger is not None and now >= linger:
            self._set_linger(None)
            if self._h2 is not None:
                self._h2.begin_drain()  # no request came
            elif self._idle():
                self._close(gently=True)
        self._protocol.handle_timer(now)

    # -- what the I/O layer acts on --------------------------------------------

    @property
    def should_close(self) -> bool:
        """True once the connection must close after writing what is queued."""
        return self._close_now or self._protocol.should_close

    @property
    def linger_on_close(self) -> bool:
        """True if the peer may still be sending as the connection closes."""
        return self._gentle or self._protocol.linger_on_close

    @property
    def reading_paused(self) -> bool:
        """True while the peer's bytes must wait in the socket (see the module doc)."""
        if self._protocol.reading_paused or self._paused:
            return True
        return self._write_paused and self._h2 is not None

    def set_write_paused(self, paused: bool) -> None:
        """The transport's buffer is full (True) or has drained (False)."""
        self._write_paused = paused

    def set_receive_paused(self, stream_id: int, paused: bool) -> None:
        """A stream asks for reading to pause, or lets it resume; HTTP/2's flow
        control holds the peer back stream by stream instead."""
        if self._h2 is not None:
            return
        if paused:
            self._paused.add(stream_id)
        else:
            self._paused.discard(stream_id)

    # -- streams ---------------------------------------------------------------

    def stream_blocked(self, stream_id: int) -> bool:
        """True while the stream's sent bytes wait for HTTP/2 flow-control window."""
        h2 = self._h2
        return h2 is not None and h2.stream_blocked(stream_id)

    def acknowledge(self, stream_id: int, size: int) -> None:
        """The app took ``size`` body bytes: HTTP/2 gives their window back."""
        if self._h2 is not None:
            self._h2.acknowledge(stream_id, size)

    def raw_body_allowed(self, stream_id: int, size: int) -> int:
        """How many of ``size`` body bytes the I/O layer may write itself: only
        HTTP/1.1 has bytes that need no framing (see ``H11Protocol``)."""
        h11 = self._h11
        if h11 is None or self._close_now:
            return 0
        return h11.raw_body_allowed(stream_id, size)

    def raw_body_written(self, stream_id: int, size: int) -> None:
        """The I/O layer wrote ``size`` body bytes of the stream itself."""
        if self._h11 is not None:
            self._h11.raw_body_written(stream_id, size)

    def push(self, stream_id: int, path: bytes, headers: Headers) -> None:
        """HTTP/2 server push of ``GET path`` (dropped elsewhere)."""
        if self._h2 is not None:
            self._h2.push(stream_id, path, headers)

    # -- shutdown --------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """True if the connection may still bring a request (see ``H11Protocol.reusable``)."""
        if self.should_close:
            return False
        if self._h11 is not None:
            return self._h11.reusable
        return self._h2 is not None and self._h2.idle

    def begin_drain(self, now: float) -> None:
        """The worker stops: end the connection as the module doc says.

        Args:
            now: the loop time.
        """
        if self._draining:
            return
        self._draining = True
        self._rebind()
        if self._h2 is not None:
            self._drain_h2(now)
        elif self._h11 is not None:
            self._h11.close_after_response()
            self._drain_step(now)

    def input_waiting(self, now: float) -> None:
        """Bytes wait unread as an idle connection would close: linger on for them."""
        if self._close_now and self._gentle and self._idle() and self.close_reason is None:
            self._close_now = self._gentle = False
            self._set_linger(now + self._grace)

    # -- forwarding ----------------------------------------------------------------

    def _rebind(self) -> None:
        """Point the hot forwards at the protocol's own methods, unless there is
        something to add: a replaced protocol's last events or bytes, the linger."""
        protocol = self._protocol
        self.data_to_send = self._data_and_leftovers if self._out else protocol.data_to_send
        h11 = self._h11
        self.pieces_to_send = (
            h11.pieces_to_send if h11 is not None and not self._out else self._data_as_pieces
        )
        self.events_received = (
            self._events_and_leftovers if self._events else protocol.events_received
        )
        self.send = self._send_h11 if h11 is not None else protocol.send
        self._rebind_deadline()
        self._rebind_receive()

    def _rebind_deadline(self) -> None:
        """``next_deadline`` alone: the linger set or cleared."""
        self.next_deadline = (
            self._protocol.next_deadline if self._linger_until is None else self._deadline_or_linger
        )

    def _rebind_receive(self) -> None:
        """``receive_data`` alone: the preamble read, the drain, a close decided."""
        # HTTP/2 and WebSockets switch no more; only HTTP/2's deferred GOAWAY
        # still watches what arrives.
        direct = (
            self._h11 is None
            and self._proxy is None
            and self._sniffed is None
            and not self._close_now
            and not (self._draining and self._h2 is not None)
        )
        self.receive_data = self._protocol.receive_data if direct else self._receive

    def _data_and_leftovers(self) -> bytes:
        """``data_to_send`` right after a switch: the replaced protocol's bytes first."""
        data = self._out + self._protocol.data_to_send()
        self._out = b""
        self._rebind()
        return data

    def _data_as_pieces(self) -> list[bytes]:
        """``pieces_to_send`` of a protocol that gives its bytes in one buffer."""
        data = self.data_to_send()
        return [data] if data else []

    def _events_and_leftovers(self) -> list[InboundEvent]:
        """``events_received`` right after a switch: the replaced protocol's events first."""
        events = self._events + self._protocol.events_received()
        self._events = []
        self._rebind()
        return events

    def _deadline_or_linger(self) -> float | None:
        """``next_deadline`` while draining: the protocol's, or the linger's if earlier."""
        deadline = self._protocol.next_deadline()
        linger = self._linger_until
        if linger is not None and (deadline is None or linger < deadline):
            return linger
        return deadline

    def _set_linger(self, deadline: float | None) -> None:
        """Set or clear the linger (a close may come with it: ``receive_data`` too)."""
        self._linger_until = deadline
        self._rebind_deadline()
        self._rebind_receive()

    # -- switching ---------------------------------------------------------------

    def _preamble(self, data: bytes, now: float) -> bytes:
        """The PROXY header and the preface sniff: the bytes left for the protocol."""
        if self._proxy is not None:
            try:
                header = self._proxy.receive_data(data)
            except ProxyProtocolError as error:
                self._refuse(str(error))
                return b""
            if header is None:
                return b""
            self._proxy = None
            self._rebind_receive()
            if header.client is not None:
                info = self.info
                self.info = ConnectionInfo(
                    info.protocol, info.scheme, header.client, header.server, info.tls
                )
            data = header.remaining
        if self._sniffed is not None and data:
            data = self._sniffed + data
            if len(data) < len(PREFACE) and PREFACE.startswith(data):
                self._sniffed = data
                return b""
            self._sniffed = None
            self._rebind_receive()
            if data.startswith(PREFACE):
                self._start_h2(now)
        return data

    def _start_h2(
        self, now: float, upgrade: tuple[bytes, RequestReceived] | None = None, rest: bytes = b""
    ) -> None:
        """Serve HTTP/2 from now on (ALPN, prior knowledge or ``Upgrade: h2c``)."""
        from hypercorn.worker.protocol.h2 import H2Protocol

        info = self.info
        self.info = ConnectionInfo("h2", info.scheme, info.client, info.server, info.tls)
        self._protocol = h2 = self._h2 = H2Protocol(
            self._settings, tls=self._tls, now=now, upgrade=upgrade
        )
        self._h11 = None
        self._paused.clear()
        self.multiplexed = True
        self._rebind()
        if rest:
            h2.receive_data(rest, now)
        if self._draining:
            self._drain_h2(now)

    def _after_h11(self, now: float) -> None:
        """After HTTP/1.1 read or answered: an h2c upgrade to take, the drain to follow."""
        h11 = self._h11
        assert h11 is not None
        upgrade = h11.upgrade
        if upgrade is not None and upgrade.protocol == b"h2c":
            settings = upgrade_settings(upgrade.request.headers)
            if settings is None:
                h11.decline_upgrade()  # served over HTTP/1.1 (see ``h2c``)
            else:
                events = h11.events_received()
                events.remove(upgrade)  # stream 1 of HTTP/2 takes its place
                self._events += events
                self._out += h11.data_to_send()  # the answers to requests before it
                rest = h11.switch_protocol(upgrade.stream_id)
                old = upgrade.request
                request = RequestReceived(
                    1, old.method, old.target, old.headers, "2", old.expects_continue
                )
                self._start_h2(now, (settings, request), rest)
                return
        if self._draining:
            self._drain_step(now)

    def _switch_to_websocket(self, h11: H11Protocol, accept: WebSocketAccept, now: float) -> None:
        """The app accepted: WebSocket frames take the connection over from HTTP/1.1."""
        from hypercorn.worker.protocol.ws import WSConnection

        data = h11.switch_protocol(accept.stream_id)
        self._events += h11.events_received()
        self._out += h11.data_to_send()
        self._protocol = ws = WSConnection(self._settings, accept, now, tls=self._tls)
        self._h11 = None
        self._paused.clear()
        self._rebind()
        if data:
            ws.receive_data(data, now)

    # -- draining ----------------------------------------------------------------

    def _drain_step(self, now: float) -> None:
        """Draining: linger while HTTP/1.1 is idle; GOAWAY once HTTP/2's first request is in."""
        if self._h2 is not None:
            if self._linger_until is not None and self._h2.last_stream_id:
                self._set_linger(None)
                self._h2.begin_drain()
        elif self._linger_until is None and self._idle() and not self.should_close:
            self._set_linger(now + self._grace)

    def _drain_h2(self, now: float) -> None:
        h2 = self._h2
        assert h2 is not None
        if h2.last_stream_id:
            self._set_linger(None)
            h2.begin_drain()
        elif self._linger_until is None:
            self._set_linger(now + self._grace)

    def _idle(self) -> bool:
        """HTTP/1.1 between requests, with no byte of the next one in."""
        return self._h11 is not None and self._h11.idle and not self._sniffed

    def _close(self, *, gently: bool) -> None:
        self._close_now = True
        self._gentle = gently
        self._set_linger(None)  # and rebinds ``receive_data``

    def _refuse(self, reason: str) -> None:
        self.close_reason = f"PROXY protocol: {reason}"
        self._close(gently=False)
