"""The worker's TCP I/O on asyncio (and uvloop): one ``asyncio.Protocol`` per connection.

Theory of operation
-------------------
An ``HTTPConnection`` owns a transport and one sans-IO ``ServerProtocol``
(``worker/protocol/connection.py``), which decides everything about the
connection: what it speaks, its switches, keep-alive and drain. This layer
only moves bytes and time, as ``worker/protocol/base.py`` describes: bytes in
go to ``receive_data`` with the loop time, the events that come out go to
the connection's ``StreamRouter``, and after every step ``_flush`` makes
exactly one ``transport.write`` of what the protocol has to send (one
``writelines`` when ``pieces_to_send()`` leaves a large body piece beside
the head: the body is not copied into a new buffer), closes the transport
once ``should_close``, pauses or resumes reading, and keeps one timer armed
at ``next_deadline()`` or earlier (re-armed only when the deadline moves
earlier; a timer that fires early finds the protocol's later deadline and is
armed again, so keep-alive requests do not re-arm it each time). Streams call
back through ``send_events``, which runs the same step, so events the
protocol produces while sending (the next pipelined request, once a
response ends) are dispatched at once. While the protocol is
``multiplexed`` (HTTP/2) a step runs once per loop turn instead: what all of
a connection's streams sent in that turn leaves in one write.

Writing is flow-controlled by the transport: between ``pause_writing`` and
``resume_writing`` a stream's ``drain()`` waits, so the app's ``send`` blocks
while the client does not read; the protocol hears of it too
(``set_write_paused``). asyncio's plain socket transport skips that check in
``writelines`` from Python 3.12 (``UNPACED_LINES``): there the pieces are
joined and written with ``write``. Connection loss ends every stream and wakes every
drain waiter.

A file body (``http.response.pathsend``, ``zerocopysend``) leaves by
``os.sendfile`` on a plain connection (``send_file``, see ``sendfile.py``):
the protocol says how many of its bytes need no framing of its own
(``raw_body_allowed``: HTTP/1.1 only), the layer writes them straight from
the file while holding all other output, then reports them
(``raw_body_written``) and steps. A transport that writes a file itself
(trio's ``TrioTransport.send_file``) is asked to instead of ``sendfile.py``.
TLS, and whatever the protocol must frame, answer 0: the stream reads the
file and sends it as data.

Closing never resets a connection the client is writing to: with bytes
unread in the socket, or when the protocol says the peer may be sending
(``linger_on_close``), a plain connection is half-closed (FIN), what still
arrives is read and dropped, and the socket closes at the client's EOF (or
after ``drain_grace``). The kernel would otherwise answer unread data with
RST, which can also destroy a response the client has not read yet. A close
for idleness with bytes unread gives way to them (``input_waiting``).

There is no task per connection: only the application's task per request.

Output waits for the end of the loop's pass (``_write``;
``WorkerContext.hold_output`` has one callback per pass write it): what an
app sends from its task, and what the protocol answers to a read. Written at
once, each answer would wake the client for each connection in turn while the
worker goes on running the others (on loopback, a cross-CPU wake-up per
response); held, the pass's answers leave together, and the client finds
them all when it wakes. On Python 3.12+ an app that answers without
suspending runs inside ``data_received``, so a whole keep-alive request is
read, served and written in one pass. Only a little is held
(``HOLD_LIMIT``): an app sending more meets the transport's back-pressure as
before. A response that closes its connection is not held: the close writes
it at once. Whatever writes next (a later flush, a file body, a close) writes
what is held first, so the order is kept; a lost or aborted connection drops
it.

A connection leaves no reference cycle behind once it is lost: the router
(which points back at it) is dropped, so reference counting frees the
connection and everything it holds at once, and a worker closing thousands
of connections a second does not feed the cyclic garbage collector.
"""

from __future__ import annotations

import asyncio
import sys
from fcntl import ioctl
from termios import FIONREAD
from typing import TYPE_CHECKING, cast

from hypercorn.shared.errors import ClientDisconnectedError
from hypercorn.worker.connection_info import connection_info, selected_alpn
from hypercorn.worker.protocol.connection import ServerConnection
from hypercorn.worker.protocol.events import Headers, OutboundEvent, ResponseStarted
from hypercorn.worker.router import StreamRouter
from hypercorn.worker.sendfile import send_file, socket_fd
from hypercorn.worker.waiters import Waiters

if TYPE_CHECKING:
    from hypercorn.shared.eventloop import Handle
    from hypercorn.worker.context import WorkerContext
    from hypercorn.worker.protocol.proxy import TrustedAddresses


class HTTPConnection(asyncio.Protocol):
    """One client connection: transport <-> sans-IO connection <-> streams."""

    __slots__ = (
        "_closing",
        "_deadline",
        "_drain_waiters",
        "_grace",
        "_held",
        "_held_size",
        "_join_lines",
        "_lost",
        "_proxy_trust",
        "_reading_paused",
        "_sending_file",
        "_step_soon",
        "_stepped_inside",
        "_stepping",
        "_timer",
        "_write_paused",
        "ctx",
        "loop",
        "peername",
        "protocol",
        "router",
        "secure",
        "sock_fd",
        "sockname",
        "transport",
    )
    __deletable__ = ("router",)  # dropped once the connection is lost (see the module doc)

    def __init__(
        self, ctx: WorkerContext, *, secure: bool, proxy: TrustedAddresses | None = None
    ) -> None:
        self.ctx = ctx
        self.loop = ctx.loop
        self.secure = secure
        self.transport: asyncio.Transport | None = None
        # The concrete class, not the ``ServerProtocol`` seam: compiled, its
        # methods and properties are called natively.
        self.protocol: ServerConnection | None = None
        self.router = StreamRouter(ctx, self)
        # What the listener knows of the accepted socket, if it gave it: its
        # descriptor and addresses (None: the transport is asked).
        self.sock_fd = -1
        self.peername: object = None
        self.sockname: object = None
        self._proxy_trust = proxy  # a PROXY protocol bind: whose headers are believed
        self._closing = False
        self._lost = False
        self._reading_paused = False
        self._write_paused = False
        self._drain_waiters = Waiters(self.loop)
        self._deadline: float | None = None
        self._timer: Handle | None = None
        self._grace: Handle | None = None  # half-closed: the wait for EOF
        self._step_soon = False  # multiplexed: a step is scheduled for the end of this turn
        self._sending_file = False  # a file body is being written: hold other output
        self._stepping = False  # inside ``_step``: an app may run eagerly and send
        self._stepped_inside = False  # and it did: the protocol may have new events
        self._held: list[bytes] | None = None  # held output, written at the pass's end
        self._held_size = 0
        self._join_lines = False  # the transport's ``writelines`` skips flow control

    # -- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self._join_lines = UNPACED_LINES is not None and isinstance(transport, UNPACED_LINES)
        ctx = self.ctx
        now = self.loop.time()
        self.protocol = protocol = ServerConnection(
            ctx.config,
            connection_info(transport, self.secure, self.peername, self.sockname),
            now,
            alpn=selected_alpn(transport) if self.secure else None,
            proxy=self._proxy_trust,
            drain_grace=ctx.drain_grace,
        )
        ctx.add_connection(self)
        if ctx.draining:  # accepted as the worker stopped: its request is still served
            protocol.begin_drain(now)
        self._step()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # half-closed: dropped unread (see the module doc)
        protocol = self.protocol
        assert protocol is not None
        protocol.receive_data(data, self.loop.time())
        self._step()

    def eof_received(self) -> bool:
        protocol = self.protocol
        if self._closing or protocol is None:
            return False  # half-closed: the client's EOF completes the close
        protocol.receive_data(b"", self.loop.time())
        self._step()
        # Keep a half-closed plain socket open while the protocol still wants to
        # write; TLS transports close on EOF whatever we answer.
        return not self.secure and not protocol.should_close

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._closing = True
        self._held = None
        self._cancel_timer()
        if self._grace is not None:
            self._grace.cancel()
            self._grace = None
        protocol = self.protocol
        router = self.router
        if protocol is not None:
            protocol.connection_lost()
            events = protocol.events_received()
            if events:
                router.dispatch(events, protocol.info, self.loop.time())
        router.close_all()
        del self.router  # the router points back here: no cycle is left (module doc)
        if self._drain_waiters.futures:
            self._drain_waiters.wake()
        self.ctx.remove_connection(self)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.protocol is not None and not self._closing:
            self.protocol.set_write_paused(True)
            self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._drain_waiters.wake()
        if self.protocol is not None and not self._closing:
            self.protocol.set_write_paused(False)
            self._update_reading()

    # -- the StreamHost seam ------------------------------------------------------

    def send_events(self, *events: OutboundEvent) -> None:
        protocol = self.protocol
        if protocol is None or self._lost:
            return
        now = self.loop.time()
        for event in events:
            protocol.send(event, now)
        if self.ctx.request_limit is not None and any(type(e) is ResponseStarted for e in events):
            self.ctx.check_limit()  # a response kept alive reserves one more request
        if protocol.multiplexed:
            # What the streams send in one loop turn leaves in one write. A
            # stream's data waits in the protocol meanwhile, which holds its
            # sender (``stream_blocked``) until this step: one chunk per stream.
            if not self._step_soon:
                self._step_soon = True
                self.loop.call_soon(self._deferred_step)
            return
        self._step()

    def _deferred_step(self) -> None:
        self._step_soon = False
        if not self._lost:
            self._step()

    @property
    def write_paused(self) -> bool:
        return self._write_paused and not self._lost

    def stream_blocked(self, stream_id: int) -> bool:
        protocol = self.protocol
        return protocol is not None and not self._lost and protocol.stream_blocked(stream_id)

    async def drain(self, stream_id: int | None = None) -> None:
        transport = self.transport
        assert transport is not None  # streams start once connected
        while True:
            if self._lost or self._closing or transport.is_closing():
                raise ClientDisconnectedError("client disconnected")  # nothing more is written
            if not self._write_paused and (stream_id is None or not self.stream_blocked(stream_id)):
                return
            await self._drain_waiters.wait()

    async def send_file(self, stream_id: int, fd: int, offset: int, count: int) -> int:
        if self._lost:
            raise ClientDisconnectedError("client disconnected")
        protocol = self.protocol
        transport = self.transport
        assert protocol is not None and transport is not None
        if self.secure or self._closing or self._sending_file:
            return 0  # TLS encrypts in user space: the stream reads and sends the bytes
        self._flush()  # the response head (and anything else queued) leaves first
        self.release_held()
        allowed = protocol.raw_body_allowed(stream_id, count)
        sock = socket_fd(transport)
        if not allowed or sock is None or self._closing:
            return 0  # the protocol must frame these bytes
        own = getattr(transport, "send_file", None)  # trio's transport writes a file itself
        self._sending_file = True
        sent = 0
        try:
            if own is not None:
                sent = await own(fd, offset, allowed)
            else:
                loop = cast(asyncio.AbstractEventLoop, self.loop)
                sent = await send_file(
                    loop, transport, sock, self._drain_waiters, (fd, offset, allowed)
                )
        except ConnectionError:
            self.abort()
            raise ClientDisconnectedError("client disconnected") from None
        finally:
            self._sending_file = False
            protocol.raw_body_written(stream_id, sent)
        if self._lost or transport.is_closing():
            raise ClientDisconnectedError("client disconnected")
        self._step()  # what waited meanwhile: the protocol's decisions, its output
        return sent

    def body_consumed(self, stream_id: int, size: int) -> None:
        if self.protocol is not None and not self._lost:
            self.protocol.acknowledge(stream_id, size)
            self._flush()

    def push(self, stream_id: int, path: bytes, headers: Headers) -> None:
        if self.protocol is not None and not self._lost:
            self.protocol.push(stream_id, path, headers)
            self._step()

    def set_receive_paused(self, stream_id: int, paused: bool) -> None:
        if self.protocol is not None:
            self.protocol.set_receive_paused(stream_id, paused)
            if not self._lost:
                self._update_reading()

    def stream_finished(self, stream_id: int) -> None:
        if not self._lost:  # once lost, every stream was closed and the router dropped
            self.router.streams.pop(stream_id, None)

    # -- Drainable (shutdown) -------------------------------------------------------

    @property
    def reusable(self) -> bool:
        protocol = self.protocol
        return not self._closing and (protocol is None or protocol.reusable)

    def shutdown(self) -> None:
        protocol = self.protocol
        if protocol is None or self._closing:
            return
        self.router.close_websockets()  # close frames first: some clients stop at GOAWAY
        protocol.begin_drain(self.loop.time())
        self._step()

    def abort(self) -> None:
        self._closing = True
        self._held = None
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()

    # -- driving the protocol ---------------------------------------------------------

    def _step(self) -> None:
        """Hand the protocol's events to their streams, then flush.

        A stream's app may run inside ``dispatch`` (an eager task start) and
        send: its ``send_events`` step only flushes, so that its output meets
        the transport's back-pressure at once (an app sending in a loop is
        paused by a full buffer), and does not nest: this one goes on with
        the events that sending produced (the next pipelined request). So a
        burst of pipelined requests answered eagerly costs no recursion.
        """
        if self._stepping:
            self._stepped_inside = True
            self._flush()
            return
        protocol = self.protocol
        assert protocol is not None
        events = protocol.events_received()
        if events:
            self._stepping = True
            try:
                while True:
                    self.router.dispatch(events, protocol.info, self.loop.time())
                    if not self._stepped_inside:
                        break  # no app sent from inside: nothing new to dispatch
                    self._stepped_inside = False
                    events = protocol.events_received()
                    if not events:
                        break
            finally:
                self._stepping = self._stepped_inside = False
        self._flush()

    def _flush(self) -> None:
        protocol = self.protocol
        transport = self.transport
        assert protocol is not None and transport is not None
        if self._closing:
            return
        if not self._sending_file:  # else it writes alone; output waits for its end
            pieces = protocol.pieces_to_send()
            if pieces:
                # Nothing is held for a connection about to close: the close
                # would write it at once.
                self._write(transport, pieces, not protocol.should_close)
            if self._drain_waiters.futures:
                self._drain_waiters.wake()  # flow-control windows may have opened
            if protocol.should_close and self._close(protocol):
                return
        paused = protocol.reading_paused
        if paused != self._reading_paused:
            self._reading_paused = paused
            if paused:
                transport.pause_reading()
            else:
                transport.resume_reading()
        # The timer is re-armed only for an earlier deadline: a later one (each
        # keep-alive request pushes it back) is found when the timer fires.
        deadline = protocol.next_deadline()
        if deadline is not None:
            armed = self._deadline
            if armed is None or deadline < armed:
                if self._timer is not None:
                    self._timer.cancel()
                self._deadline = deadline
                # call_later: uvloop's call_at is call_later with the delay
                # worked out, behind one more call (3k instructions).
                loop = self.loop
                self._timer = loop.call_later(deadline - loop.time(), self._on_timer)

    def _write(self, transport: asyncio.Transport, pieces: list[bytes], hold: bool) -> None:
        """Write ``pieces`` after what is held, or if ``hold`` hold them (see the
        module doc)."""
        held = self._held
        if hold:
            size = self._held_size
            for piece in pieces:
                size += len(piece)
            if size <= HOLD_LIMIT:
                if held is None:
                    self._held = pieces
                    self.ctx.hold_output(self)
                else:
                    held += pieces
                self._held_size = size
                return
        if held is not None:
            self._held = None
            self._held_size = 0
            held += pieces
            pieces = held
        self._send(transport, pieces)

    def _send(self, transport: asyncio.Transport, pieces: list[bytes]) -> None:
        if len(pieces) == 1:
            transport.write(pieces[0])
        elif self._join_lines:
            transport.write(b"".join(pieces))  # flow control sees it (``UNPACED_LINES``)
        else:
            transport.writelines(pieces)

    def release_held(self) -> None:
        """Write what is held (the end of the loop's pass, or before other output)."""
        held = self._held
        if held is not None:
            self._held = None
            self._held_size = 0
            transport = self.transport
            if transport is not None and not self._closing:
                self._send(transport, held)

    def _update_reading(self) -> None:
        assert self.protocol is not None and self.transport is not None
        paused = self.protocol.reading_paused
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

    def _close(self, protocol: ServerConnection) -> bool:
        """Close as the protocol asks, never with a reset; False if it lingers on."""
        transport = self.transport
        assert transport is not None
        if protocol.close_reason is not None:
            self.ctx.log.error_logger.debug(
                "closing %s: %s", protocol.info.client, protocol.close_reason
            )
        self.release_held()  # the last answer leaves before the close
        unread = _unread(transport, self.sock_fd)
        gently = protocol.linger_on_close
        if gently and unread:
            protocol.input_waiting(self.loop.time())
            if not protocol.should_close:
                return False  # part of a request is arriving: serve it
        self._closing = True
        self._cancel_timer()
        if not (gently or unread) or self.secure or not transport.can_write_eof():
            transport.close()  # TLS: close_notify, and asyncio reads until the peer's
            return True
        # Half-close: FIN now, drop what arrives, close at the client's EOF.
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        # A client that never closes is not waited for beyond the grace.
        self._grace = self.loop.call_later(self.ctx.drain_grace, transport.close)
        return True


def _unread(transport: asyncio.BaseTransport, fd: int) -> bool:
    """True if bytes from the client wait in the socket, not yet read.

    ``fd`` is the socket's descriptor as the listener accepted it (-1 if
    unknown: the transport is asked for its socket). A transport already
    closing may have closed it, and the number may since name another
    connection's socket: such a transport has nothing left to read.
    """
    if fd < 0:
        sock = transport.get_extra_info("socket")
        if sock is None:
            return False
        fd = sock.fileno()
    elif transport.is_closing():
        return False
    # A writable buffer: ``ioctl`` fills it in place (given bytes, it first
    # fails to parse them as writable, an exception made and dropped per call).
    count = bytearray(4)
    try:
        ioctl(fd, FIONREAD, count)
    except (OSError, ValueError):
        return False  # closed already
    return count != _NONE  # a count of bytes: zero in any byte order


_NONE = bytes(4)


def _unpaced_lines() -> type | None:
    """asyncio's plain socket transport from Python 3.12, whose ``writelines``
    buffers what the socket does not take without pausing the protocol: a
    slow reader's output would grow without bound. Its ``write`` does pause."""
    version = sys.version_info  # (a name: checked at run time, not by the type checker)
    if version < (3, 12):
        return None  # ``writelines`` is ``write`` of the pieces joined
    from asyncio import selector_events

    found = getattr(selector_events, "_SelectorSocketTransport", None)
    return found if isinstance(found, type) else None


UNPACED_LINES = _unpaced_lines()
"""The transport class whose pieces are joined and written with ``write``
(None: ``writelines`` is used wherever there are several)."""

HOLD_LIMIT = 256 * 1024
"""The most output a connection holds for the end of the loop's pass, in
bytes; more is written at once (it meets the transport's back-pressure)."""
