"""The worker's TCP I/O: one ``asyncio.Protocol`` per connection.

Theory of operation
-------------------
An ``HTTPConnection`` owns a transport and a sans-IO ``ServerProtocol`` and
drives it as ``worker/protocol/base.py`` describes: bytes in go to
``receive_data`` with the loop time, the events that come out are handed to
the streams they name, and after every step ``_flush`` makes exactly one
``transport.write`` of ``data_to_send()``, closes the transport once
``should_close``, pauses or resumes reading, and keeps one timer armed at
``next_deadline()`` or earlier (re-armed only when the deadline moves
earlier; a timer that fires early finds the protocol's later deadline and is
armed again, so keep-alive requests do not re-arm it each time). Streams call
back through ``send_events``, which runs the same step, so events the
protocol produces while sending (the next pipelined request, once a
response ends) are dispatched at once. HTTP/2 steps once per loop tick
instead: what all of a connection's streams sent in that tick leaves in one
write.

Reading is paused while the protocol holds enough unparsed input, or while
any stream has asked for it (its app is not reading the body it was given).
Writing is flow-controlled by the transport: between ``pause_writing`` and
``resume_writing`` a stream's ``drain()`` waits, so the app's ``send`` blocks
while the client does not read. Connection loss ends every stream
(``StreamClosed`` from ``connection_lost``) and wakes every drain waiter.

Draining (the worker stops): an idle HTTP/1.1 connection lingers for the
context's ``drain_grace``, so that a request the client is sending at that
instant is served, with ``connection: close``, instead of meeting a closed
connection; it closes when the grace ends with no byte of a request received
(nor waiting in the socket). When the request limit stops the worker, a
connection the limit did not count on (one that carried a single request)
closes at once on the same terms.

Closing never resets a connection the client is writing to: with bytes
unread in the socket, or when the client may be sending at that instant, a
plain connection is half-closed (FIN), what still arrives is read and
dropped, and the socket closes at the client's EOF (or after ``drain_grace``).
The kernel would otherwise answer unread data with RST, which can also
destroy a response the client has not read yet.

There is no task per connection: only the application's task per request.
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import socket
import ssl
import sys
import termios
from typing import TYPE_CHECKING, cast

from hypercorn.shared.addresses import parse_socket_addr
from hypercorn.worker.asgi.http import ClientDisconnectedError, ConnectionInfo, HTTPStream
from hypercorn.worker.protocol.base import ServerProtocol
from hypercorn.worker.protocol.events import (
    BodyEnded,
    BodyReceived,
    Headers,
    OutboundEvent,
    RequestReceived,
    RequestRejected,
    ResponseStarted,
    StreamClosed,
    UpgradeRequested,
    WebSocketAccept,
    WebSocketClosed,
    WebSocketMessage,
)
from hypercorn.worker.protocol.h2c import upgrade_settings
from hypercorn.worker.protocol.http11 import H11Protocol
from hypercorn.worker.protocol.proxy import ProxyHeaderReader, ProxyProtocolError, TrustedAddresses
from hypercorn.worker.waiters import Waiters

if TYPE_CHECKING:
    from hypercorn.worker.asgi.websocket import WebSocketStream
    from hypercorn.worker.context import WorkerContext
    from hypercorn.worker.protocol.h2 import H2Protocol
    from hypercorn.worker.protocol.ws import WSConnection

# HTTP/2 and WebSocket code (h2, wsproto) is imported by the first connection
# that needs it: a worker serving only HTTP/1.1 starts faster and smaller.

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The HTTP/2 client connection preface (RFC 9113 section 3.4): prior knowledge."""

SERVED_ALPN_PROTOCOLS = ("h2", "http/1.1")
"""ALPN protocols this worker can speak; the configured list is filtered to these."""

_TLS_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
_RDN_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "domainComponent": "DC",
    "localityName": "L",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "stateOrProvinceName": "ST",
    "streetAddress": "STREET",
    "userId": "UID",
}


class HTTPConnection(asyncio.Protocol):
    """One client connection: transport <-> sans-IO protocol <-> streams."""

    __slots__ = (
        "_closing",
        "_deadline",
        "_drain_waiters",
        "_grace",
        "_h2",
        "_lost",
        "_proxy",
        "_proxy_trust",
        "_reading_paused",
        "_receive_paused",
        "_sniffed",
        "_step_soon",
        "_timer",
        "_write_paused",
        "ctx",
        "info",
        "loop",
        "protocol",
        "secure",
        "streams",
        "transport",
    )

    def __init__(
        self, ctx: WorkerContext, *, secure: bool, proxy: TrustedAddresses | None = None
    ) -> None:
        self.ctx = ctx
        self.loop = ctx.loop
        self.secure = secure
        self.transport: asyncio.Transport | None = None
        self.protocol: ServerProtocol | None = None
        self.info: ConnectionInfo | None = None
        self.streams: dict[int, HTTPStream | WebSocketStream] = {}
        self._closing = False
        self._lost = False
        self._reading_paused = False
        self._receive_paused: set[int] = set()
        self._write_paused = False
        self._drain_waiters = Waiters(self.loop)
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._grace: asyncio.TimerHandle | None = None  # draining: the idle linger
        self._h2: H2Protocol | None = None
        self._step_soon = False  # HTTP/2: a step is scheduled for the end of this tick
        self._sniffed: bytes | None = None  # plain TCP: the first bytes, until h2 or not
        self._proxy_trust = proxy  # a PROXY protocol bind: whose headers are believed
        self._proxy: ProxyHeaderReader | None = None  # until the PROXY header is read

    # -- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.info = connection_info(transport, self.secure)
        ssl_object = transport.get_extra_info("ssl_object") if self.secure else None
        if ssl_object is not None and ssl_object.selected_alpn_protocol() == "h2":
            self._start_h2(None)
        else:
            self.protocol = H11Protocol(self.ctx.config, tls=self.secure, now=self.loop.time())
            if not self.secure:
                self._sniffed = b""
        self.ctx.add_connection(self)
        if self._proxy_trust is not None:
            client = self.info.client
            if (client[0] if client is not None else None) not in self._proxy_trust:
                self._refuse_proxy("peer not in forwarded_allow_ips")
                return
            self._proxy = ProxyHeaderReader()
        self._flush()
        if self.ctx.draining:
            self.shutdown()  # accepted as the worker stopped: its request is still served

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # half-closed: dropped unread (see the module doc)
        if self._proxy is not None:
            data = self._read_proxy_header(data)
            if not data:
                return
        if self._sniffed is not None:
            data = self._sniff(data)
            if not data:
                return
        assert self.protocol is not None
        self.protocol.receive_data(data, self.loop.time())
        self._step()

    def _sniff(self, data: bytes) -> bytes:
        """Plain TCP: HTTP/2 by prior knowledge if the client preface comes first."""
        assert self._sniffed is not None
        data = self._sniffed + data
        if len(data) < len(PREFACE) and PREFACE.startswith(data):
            self._sniffed = data
            return b""
        self._sniffed = None
        if data.startswith(PREFACE):
            self._start_h2(None)
        return data

    def _start_h2(self, upgrade: tuple[bytes, UpgradeRequested] | None) -> None:
        """Serve HTTP/2 from now on (ALPN, prior knowledge or ``Upgrade: h2c``)."""
        from hypercorn.worker.protocol.h2 import H2Protocol

        assert self.info is not None
        self.info = dataclasses.replace(self.info, protocol="h2")
        now = self.loop.time()
        if upgrade is None:
            self._h2 = H2Protocol(self.ctx.config, tls=self.secure, now=now)
            self.protocol = self._h2
            if self.ctx.draining:
                self._drain_h2()  # prior knowledge on a connection accepted as the worker stopped
            return
        settings, event = upgrade
        assert isinstance(self.protocol, H11Protocol)
        rest = self.protocol.switch_protocol(event.stream_id)
        request = dataclasses.replace(event.request, stream_id=1, http_version="2")
        self._h2 = H2Protocol(
            self.ctx.config, tls=self.secure, now=now, upgrade=(settings, request)
        )
        self.protocol = self._h2
        if rest:
            self._h2.receive_data(rest, now)
        self._dispatch()  # the upgrading request, now stream 1
        if self.ctx.draining:
            self._drain_h2()

    def _read_proxy_header(self, data: bytes) -> bytes:
        """Feed the PROXY header reader; the client's bytes after the header, once read."""
        assert self._proxy is not None and self.info is not None
        try:
            header = self._proxy.receive_data(data)
        except ProxyProtocolError as error:
            self._refuse_proxy(str(error))
            return b""
        if header is None:
            return b""
        self._proxy = None
        if header.client is not None:
            self.info = dataclasses.replace(self.info, client=header.client, server=header.server)
        return header.remaining

    def _refuse_proxy(self, reason: str) -> None:
        client = self.info.client if self.info is not None else None
        self.ctx.log.error_logger.debug("PROXY protocol: closing %s: %s", client, reason)
        self._close()

    def eof_received(self) -> bool:
        if self._closing:
            return False  # half-closed: the client's EOF completes the close
        if self._proxy is not None:
            self._refuse_proxy("connection closed before the PROXY header ended")
            return False
        assert self.protocol is not None
        self.protocol.receive_data(b"", self.loop.time())
        self._step()
        # Keep a half-closed plain socket open while the protocol still wants to
        # write; TLS transports close on EOF whatever we answer.
        return not self.secure and not self.protocol.should_close

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._closing = True
        self._cancel_timer()
        self._cancel_grace()
        if self.protocol is not None:
            self.protocol.connection_lost()
            self._dispatch()
        self._drain_waiters.wake()
        self.ctx.remove_connection(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._h2 is not None and not self._closing:
            self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._drain_waiters.wake()
        if self._h2 is not None and not self._closing:
            self._update_reading()

    # -- the StreamHost seam ------------------------------------------------------

    def send_events(self, *events: OutboundEvent) -> None:
        protocol = self.protocol
        if protocol is None or self._lost:
            return
        now = self.loop.time()
        for event in events:
            if type(event) is WebSocketAccept and isinstance(protocol, H11Protocol):
                protocol = self._switch_to_websocket(protocol, event, now)
            else:
                protocol.send(event, now)
        if self.ctx.request_limit is not None and any(type(e) is ResponseStarted for e in events):
            self.ctx.check_limit()  # a response kept alive reserves one more request
        if self._h2 is not None:
            # HTTP/2: what the streams send in one loop tick leaves in one write.
            # A stream's data waits in the protocol meanwhile, which holds its
            # sender (``stream_blocked``) until this step: one chunk per stream.
            if not self._step_soon:
                self._step_soon = True
                self.loop.call_soon(self._deferred_step)
            return
        self._step()

    def _deferred_step(self) -> None:
        self._step_soon = False
        if not self._lost and self.transport is not None:
            self._step()

    @property
    def write_paused(self) -> bool:
        return self._write_paused and not self._lost

    def stream_blocked(self, stream_id: int) -> bool:
        h2 = self._h2
        return h2 is not None and h2.stream_blocked(stream_id) and not self._lost

    async def drain(self, stream_id: int | None = None) -> None:
        while True:
            if self._lost:
                raise ClientDisconnectedError("client disconnected")
            if not self._write_paused and (stream_id is None or not self.stream_blocked(stream_id)):
                return
            await self._drain_waiters.wait()

    def body_consumed(self, stream_id: int, size: int) -> None:
        if self._h2 is not None and not self._lost:
            self._h2.acknowledge(stream_id, size)
            self._flush()

    def push(self, stream_id: int, path: bytes, headers: Headers) -> None:
        if self._h2 is not None and not self._lost:
            self._h2.push(stream_id, path, headers)
            self._step()

    def set_receive_paused(self, stream_id: int, paused: bool) -> None:
        if self._h2 is not None:
            return  # HTTP/2 flow control holds the client back, stream by stream
        if paused:
            self._receive_paused.add(stream_id)
        else:
            self._receive_paused.discard(stream_id)
        if not self._lost:
            self._update_reading()

    def stream_finished(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        self._receive_paused.discard(stream_id)
        if self.ctx.draining and not self.streams and self._h2 is None:
            self._linger()  # HTTP/2 closes once its protocol has sent every stream's end

    # -- Drainable (shutdown) -------------------------------------------------------

    @property
    def reusable(self) -> bool:
        if self._closing:
            return False
        protocol = self.protocol
        if isinstance(protocol, H11Protocol):
            return protocol.reusable
        return not self.streams

    def shutdown(self) -> None:
        expected = self.reusable  # the request limit counted on one more request
        if isinstance(self.protocol, H11Protocol):
            self.protocol.close_after_response()
        if self._h2 is not None:
            if not self._closing:
                self._close_websockets()  # close frames first: some clients stop at GOAWAY
                self._drain_h2()
                self._step()
            return
        if not self.streams:
            if self.ctx.stopped_at_limit and not expected:
                self._close_idle()
            else:
                self._linger()
            return
        self._close_websockets()

    def _drain_h2(self) -> None:
        """GOAWAY, once the connection's first request is in: one sent before it
        names no stream and refuses the request the client sent with its preface."""
        h2 = self._h2
        assert h2 is not None
        if h2.last_stream_id == 0 and not self._lost:
            if self._grace is None:
                self._grace = self.loop.call_later(self.ctx.drain_grace, self._h2_grace_over)
            return
        self._cancel_grace()
        h2.begin_drain()

    def _h2_grace_over(self) -> None:
        self._grace = None
        if self._h2 is not None and not self._closing:
            self._h2.begin_drain()  # no request came
            self._step()

    def _close_websockets(self) -> None:
        """Draining: close every accepted WebSocket with 1001 (going away)."""
        for stream in list(self.streams.values()):
            if not isinstance(stream, HTTPStream):
                stream.shutdown()

    def abort(self) -> None:
        self._closing = True
        self._cancel_timer()
        self._cancel_grace()
        if self.transport is not None:
            self.transport.abort()

    # -- driving the protocol ---------------------------------------------------------

    def _step(self) -> None:
        self._dispatch()
        self._flush()

    def _dispatch(self) -> None:
        assert self.protocol is not None and self.info is not None
        for event in self.protocol.events_received():
            # Exact type tests, the most frequent first (events are final classes).
            if type(event) is WebSocketMessage:
                if (ws := self.streams.get(event.stream_id)) is not None:
                    ws.message_received(event.data)  # type: ignore[union-attr]
            elif type(event) is BodyReceived:
                if (stream := self.streams.get(event.stream_id)) is not None:
                    stream.body_received(event.data)
            elif type(event) is RequestReceived:
                stream = HTTPStream(self.ctx, self, self.info, event, self.loop.time())
                self.streams[event.stream_id] = stream
                stream.start()
                if self._grace is not None and self._h2 is not None:
                    self._drain_h2()  # the first request of a draining HTTP/2 connection
            elif type(event) is BodyEnded:
                if (stream := self.streams.get(event.stream_id)) is not None:
                    stream.body_ended()
            elif isinstance(event, StreamClosed):
                if (stream := self.streams.pop(event.stream_id, None)) is not None:
                    stream.closed()
            elif isinstance(event, RequestRejected):
                pass  # the protocol answered it; no app runs
            elif isinstance(event, WebSocketClosed):
                if (ws := self.streams.pop(event.stream_id, None)) is not None:
                    ws.closed(event.code, event.reason)  # type: ignore[call-arg]
            elif type(event) is UpgradeRequested and event.protocol == b"h2c":
                if (settings := upgrade_settings(event.request.headers)) is not None:
                    self._start_h2((settings, event))
                else:
                    self._upgrade_requested(event)  # served over HTTP/1.1 (see ``h2c``)
            elif isinstance(event, UpgradeRequested):
                self._upgrade_requested(event)

    def _upgrade_requested(self, event: UpgradeRequested) -> None:
        """Start a WebSocket; decline any other upgrade by serving a plain request."""
        assert self.info is not None
        if event.protocol == b"websocket":
            from hypercorn.worker.asgi.websocket import WebSocketStream

            ws = WebSocketStream(self.ctx, self, self.info, event.request, self.loop.time())
            self.streams[event.stream_id] = ws
            ws.start()
            return
        stream = HTTPStream(self.ctx, self, self.info, event.request, self.loop.time())
        self.streams[event.stream_id] = stream
        stream.start()
        stream.body_ended()

    def _switch_to_websocket(
        self, h11: H11Protocol, accept: WebSocketAccept, now: float
    ) -> WSConnection:
        """The app accepted: WebSocket frames take the connection over from HTTP/1.1."""
        from hypercorn.worker.protocol.ws import WSConnection

        data = h11.switch_protocol(accept.stream_id)
        ws = WSConnection(self.ctx.config, accept, now, tls=self.secure)
        self.protocol = ws
        if data:
            ws.receive_data(data, now)
        return ws

    def _flush(self) -> None:
        protocol = self.protocol
        transport = self.transport
        assert protocol is not None and transport is not None
        if self._closing:
            return
        data = protocol.data_to_send()
        if data:
            transport.write(data)
        if self._h2 is not None and self._drain_waiters:
            self._drain_waiters.wake()  # flow-control windows may have opened
        if protocol.should_close:
            if protocol.linger_on_close:
                self._half_close()
            else:
                self._close()
            return
        self._update_reading()
        # The timer is re-armed only for an earlier deadline: a later one (each
        # keep-alive request pushes it back) is found when the timer fires.
        deadline = protocol.next_deadline()
        if deadline is not None:
            armed = self._deadline
            if armed is None or deadline < armed:
                if self._timer is not None:
                    self._timer.cancel()
                self._deadline = deadline
                self._timer = self.loop.call_at(deadline, self._on_timer)

    def _update_reading(self) -> None:
        assert self.protocol is not None and self.transport is not None
        # HTTP/2: a peer that does not read what it asked for is not read either.
        paused = (
            self.protocol.reading_paused
            or bool(self._receive_paused)
            or (self._write_paused and self._h2 is not None)
        )
        if paused != self._reading_paused and not self._closing:
            self._reading_paused = paused
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _on_timer(self) -> None:
        self._timer = None
        self._deadline = None
        if self.protocol is not None and not self._closing:
            self.protocol.handle_timer(self.loop.time())
            self._step()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deadline = None

    def _linger(self) -> None:
        """Draining and idle: close once ``drain_grace`` passes with no request coming."""
        if self._closing or self._grace is not None:
            return
        if not isinstance(self.protocol, H11Protocol):
            self._close()
            return
        self._grace = self.loop.call_later(self.ctx.drain_grace, self._grace_over)

    def _grace_over(self) -> None:
        self._grace = None
        if self._closing or self.streams:
            return  # the stream's end closes it, or lingers again
        self._close_idle()

    def _close_idle(self) -> None:
        """Draining: close if no byte of a request is in or waiting, else linger."""
        protocol = self.protocol
        if (
            self._sniffed
            or (isinstance(protocol, H11Protocol) and not protocol.idle)
            or (self.transport is not None and _unread(self.transport))
        ):
            # Part of a request is in: wait for the rest (the read timeout,
            # or graceful_timeout at the latest, still applies).
            self._linger()
            return
        self._half_close()

    def _cancel_grace(self) -> None:
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None

    def _close(self) -> None:
        if self._closing:
            return
        if self.transport is not None and _unread(self.transport):
            self._half_close()  # closing now would reset the connection
            return
        self._closing = True
        self._cancel_timer()
        self._cancel_grace()
        if self.transport is not None:
            self.transport.close()

    def _half_close(self) -> None:
        """Close without a reset: FIN now, drop what arrives, close at the client's EOF."""
        if self._closing:
            return
        self._closing = True
        self._cancel_timer()
        self._cancel_grace()
        transport = self.transport
        if transport is None:
            return
        if self.secure or not transport.can_write_eof():
            transport.close()  # TLS: close_notify, and asyncio reads until the peer's
            return
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        # A client that never closes is not waited for beyond the grace.
        self._grace = self.loop.call_later(self.ctx.drain_grace, transport.close)


def _unread(transport: asyncio.BaseTransport) -> bool:
    """True if bytes from the client wait in the socket, not yet read."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        count = fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4))
    except (OSError, ValueError):
        return False  # closed already
    return int.from_bytes(count, sys.byteorder) > 0


def connection_info(transport: asyncio.BaseTransport, secure: bool) -> ConnectionInfo:
    """Client, server, scheme and TLS details of a new connection."""
    # The family shows in the address itself (a tuple for IPv4 and IPv6, a
    # path for unix), which spares asking for the socket and its family.
    sockname = transport.get_extra_info("sockname")
    client: tuple[str, int] | None = None
    server: tuple[str, int | None] | None = None
    if isinstance(sockname, tuple):
        local = parse_socket_addr(socket.AF_INET, sockname)
        peer = parse_socket_addr(socket.AF_INET, transport.get_extra_info("peername"))
        client = peer if isinstance(peer, tuple) else None
        server = local if isinstance(local, tuple) else None
    elif sockname is not None:
        path = parse_socket_addr(socket.AF_UNIX, sockname)
        server = (path if isinstance(path, str) else "", None)
    tls = None
    if secure:
        ssl_object: ssl.SSLObject | None = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            tls = tls_extension(ssl_object)
    return ConnectionInfo(
        protocol="h11",
        scheme="https" if secure else "http",
        client=client,
        server=server,
        tls=tls,
    )


_cipher_ids: dict[str, int] = {}


def _cipher_suite(context: ssl.SSLContext, name: str) -> int | None:
    if name not in _cipher_ids:
        for cipher in context.get_ciphers():
            _cipher_ids[cipher["name"]] = cipher["id"] & 0xFFFF
    return _cipher_ids.get(name)


def tls_extension(ssl_object: ssl.SSLObject) -> dict[object, object]:
    """The ASGI TLS extension for a connection (``scope["extensions"]["tls"]``)."""
    version = ssl_object.version()
    cipher = ssl_object.cipher()
    der = ssl_object.getpeercert(binary_form=True)
    subject = (ssl_object.getpeercert() or {}).get("subject", ())
    name = ",".join(
        f"{_RDN_NAMES.get(key, key)}={value}"
        for rdn in reversed(subject)  # RFC 4514 lists the most specific RDN first
        for key, value in rdn
    )
    return {
        "server_cert": None,
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": name or None,
        "client_cert_error": None,
        "tls_version": _TLS_VERSIONS.get(version) if version else None,
        "cipher_suite": _cipher_suite(ssl_object.context, cipher[0]) if cipher else None,
    }
