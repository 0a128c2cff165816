"""The seam every sans-IO server protocol offers to the I/O layer.

Theory of operation
-------------------
The I/O layer (``worker/io``) owns the socket, the loop and the clock. For
each connection it holds one object of this shape and drives it:

1. bytes arrive: ``receive_data(data, now)``; ``b""`` means the peer closed
   its sending side (EOF);
2. it drains ``events_received()`` and hands each event to the stream it names;
3. streams answer with ``send(event, now)``;
4. after every call it writes ``data_to_send()`` (one ``transport.write``),
   closes the transport once ``should_close`` is true and nothing is left
   to write, pauses reading while ``reading_paused`` is true, and (re)arms
   one timer at ``next_deadline()`` or earlier, calling ``handle_timer(now)``
   when it fires (a call before the deadline must change nothing);
5. when the transport is lost, ``connection_lost()``: every open stream
   gets a ``StreamClosed``.

Protocol errors are raised inside the protocol and turned into a response
(or a close) at its own boundary; they never escape these methods.
"""

from __future__ import annotations

from typing import Protocol

from hypercorn.worker.protocol.events import InboundEvent, OutboundEvent


class ServerProtocol(Protocol):
    """A server side of one connection, with no I/O of its own."""

    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes read from the peer; ``b""`` signals EOF."""

    def connection_lost(self) -> None:
        """The transport is gone; open streams are reported closed."""

    def events_received(self) -> list[InboundEvent]:
        """Return (and forget) the events parsed since the last call."""
        ...

    def send(self, event: OutboundEvent, now: float) -> None:
        """Queue an outbound event; its bytes appear in ``data_to_send``."""

    def data_to_send(self) -> bytes:
        """Return (and forget) the bytes to write to the peer."""
        ...

    def handle_timer(self, now: float) -> None:
        """Act on expired deadlines (keep-alive, read timeout); nothing before them."""

    def next_deadline(self) -> float | None:
        """The loop time at which ``handle_timer`` must next run, if any."""
        ...

    @property
    def should_close(self) -> bool:
        """True once the connection must be closed after writing what is queued."""
        ...

    @property
    def reading_paused(self) -> bool:
        """True while the protocol holds enough unprocessed input (pipelining)."""
        ...

    @property
    def linger_on_close(self) -> bool:
        """True if the peer may still be sending when ``should_close``: shut our
        side first, read and drop until its EOF (bounded), so that our close
        does not reset a connection whose last bytes the peer has not read."""
        ...
