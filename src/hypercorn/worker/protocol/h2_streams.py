"""HTTP/2 stream states (RFC 9113 section 5.1) and what a server keeps per stream.

Theory of operation
-------------------
A stream's life is the state machine of RFC 9113 section 5.1, seen from a
server: a client opens a stream with HEADERS (idle to open), ends its side
with END_STREAM (half-closed remote), and the stream closes when the response
ends too, or when either side resets it; a push goes idle to reserved (local)
on PUSH_PROMISE and to half-closed (remote) with its response HEADERS.

``TRANSITIONS`` is the whole machine, one row per allowed (state, input):
what a frame received or sent does in each state. An input received where
the table has no row is the peer's error, of the scope and code the table's
``REFUSALS`` give (or a connection PROTOCOL_ERROR); an input sent where it
has no row is the server's own bug (``StreamStateError``). ``transition`` reads
a flat list built from the table, indexed by ``state * len(Input) + input``:
one list index per frame, plain ints, no hashing of enum members.

Frames for streams that are already closed never reach the table: the
stream is gone, and ``h2_session`` decides from how it closed.

``Stream`` holds one open stream: its state and flow-control windows (the
session's part) and its response queue and request bookkeeping (the
protocol's part), in slots.
"""

from __future__ import annotations

from collections import deque
from enum import IntEnum

from hypercorn.worker.protocol.events import Headers
from hypercorn.worker.protocol.h2_frames import DEFAULT_WINDOW, PROTOCOL_ERROR, STREAM_CLOSED


class State(IntEnum):
    """RFC 9113 section 5.1 (reserved (remote) is a client's state only)."""

    IDLE = 0
    RESERVED_LOCAL = 1
    OPEN = 2
    HALF_CLOSED_LOCAL = 3
    HALF_CLOSED_REMOTE = 4
    CLOSED = 5


class Input(IntEnum):
    """What can happen to a stream: a frame received or sent."""

    RECV_HEADERS = 0
    RECV_DATA = 1
    RECV_END_STREAM = 2
    RECV_RST_STREAM = 3
    RECV_WINDOW_UPDATE = 4
    SEND_HEADERS = 5
    SEND_DATA = 6
    SEND_END_STREAM = 7
    SEND_RST_STREAM = 8
    SEND_PUSH_PROMISE = 9


class Scope(IntEnum):
    """How far a refused input reaches (RFC 9113 section 5.4)."""

    NONE = 0
    STREAM = 1
    CONNECTION = 2


S = State
I = Input  # noqa: E741 (the table reads better with a one-letter alias)

TRANSITIONS: dict[tuple[State, Input], State] = {
    # A client opens a stream, or the server promises one.
    (S.IDLE, I.RECV_HEADERS): S.OPEN,
    (S.IDLE, I.SEND_PUSH_PROMISE): S.RESERVED_LOCAL,
    (S.RESERVED_LOCAL, I.SEND_HEADERS): S.HALF_CLOSED_REMOTE,
    (S.RESERVED_LOCAL, I.SEND_RST_STREAM): S.CLOSED,
    (S.RESERVED_LOCAL, I.RECV_RST_STREAM): S.CLOSED,
    (S.RESERVED_LOCAL, I.RECV_WINDOW_UPDATE): S.RESERVED_LOCAL,
    # Both sides open: trailers, body, windows.
    (S.OPEN, I.RECV_HEADERS): S.OPEN,
    (S.OPEN, I.RECV_DATA): S.OPEN,
    (S.OPEN, I.RECV_END_STREAM): S.HALF_CLOSED_REMOTE,
    (S.OPEN, I.RECV_RST_STREAM): S.CLOSED,
    (S.OPEN, I.RECV_WINDOW_UPDATE): S.OPEN,
    (S.OPEN, I.SEND_HEADERS): S.OPEN,
    (S.OPEN, I.SEND_DATA): S.OPEN,
    (S.OPEN, I.SEND_END_STREAM): S.HALF_CLOSED_LOCAL,
    (S.OPEN, I.SEND_RST_STREAM): S.CLOSED,
    # The response is complete; the request is not.
    (S.HALF_CLOSED_LOCAL, I.RECV_HEADERS): S.HALF_CLOSED_LOCAL,
    (S.HALF_CLOSED_LOCAL, I.RECV_DATA): S.HALF_CLOSED_LOCAL,
    (S.HALF_CLOSED_LOCAL, I.RECV_END_STREAM): S.CLOSED,
    (S.HALF_CLOSED_LOCAL, I.RECV_RST_STREAM): S.CLOSED,
    (S.HALF_CLOSED_LOCAL, I.RECV_WINDOW_UPDATE): S.HALF_CLOSED_LOCAL,
    (S.HALF_CLOSED_LOCAL, I.SEND_RST_STREAM): S.CLOSED,
    # The request is complete; the response is not.
    (S.HALF_CLOSED_REMOTE, I.RECV_RST_STREAM): S.CLOSED,
    (S.HALF_CLOSED_REMOTE, I.RECV_WINDOW_UPDATE): S.HALF_CLOSED_REMOTE,
    (S.HALF_CLOSED_REMOTE, I.SEND_HEADERS): S.HALF_CLOSED_REMOTE,
    (S.HALF_CLOSED_REMOTE, I.SEND_DATA): S.HALF_CLOSED_REMOTE,
    (S.HALF_CLOSED_REMOTE, I.SEND_END_STREAM): S.CLOSED,
    (S.HALF_CLOSED_REMOTE, I.SEND_RST_STREAM): S.CLOSED,
}
"""Every allowed (state, input) and the state it leads to."""

REFUSALS: dict[tuple[State, Input], tuple[Scope, int]] = {
    # After END_STREAM from the client, more of its frames (RFC 9113 section 5.1).
    (S.HALF_CLOSED_REMOTE, I.RECV_DATA): (Scope.STREAM, STREAM_CLOSED),
    (S.HALF_CLOSED_REMOTE, I.RECV_HEADERS): (Scope.STREAM, STREAM_CLOSED),
    (S.HALF_CLOSED_REMOTE, I.RECV_END_STREAM): (Scope.CONNECTION, STREAM_CLOSED),
}
"""Received inputs refused otherwise than by a connection PROTOCOL_ERROR."""

_RECEIVED = (
    I.RECV_HEADERS,
    I.RECV_DATA,
    I.RECV_END_STREAM,
    I.RECV_RST_STREAM,
    I.RECV_WINDOW_UPDATE,
)

_WIDTH = len(Input)
_REFUSED = (S.CLOSED, Scope.CONNECTION, PROTOCOL_ERROR)
_TABLE: list[tuple[State, Scope, int]] = [_REFUSED] * (len(State) * _WIDTH)
for (_state, _input), _next in TRANSITIONS.items():
    _TABLE[_state * _WIDTH + _input] = (_next, Scope.NONE, 0)
for (_state, _input), (_scope, _code) in REFUSALS.items():
    _TABLE[_state * _WIDTH + _input] = (S.CLOSED, _scope, _code)
for _state in State:
    for _input in Input:
        if _input not in _RECEIVED and (_state, _input) not in TRANSITIONS:
            _TABLE[_state * _WIDTH + _input] = (_state, Scope.CONNECTION, -1)


def transition(state: State, event: Input) -> tuple[State, Scope, int]:
    """What ``event`` does in ``state``: (next state, scope of a refusal, its code).

    A refusal of something the server sent has code -1.
    """
    return _TABLE[state * _WIDTH + event]


class Stream:
    """One open stream.

    Session's part: ``state``; ``send_window``, what the peer lets the server
    send; ``recv_window``, what the server lets the peer send, and
    ``recv_processed``, the bytes consumed since the last WINDOW_UPDATE;
    ``content_length`` (-1 if absent) against ``received`` body bytes.

    Protocol's part: ``pending`` holds response body bytes that wait for
    flow-control window (``offset`` into the first one is already sent);
    ``head`` is the final response head, held until the next flush so that a
    complete small response leaves as HEADERS with DATA (END_STREAM) in one
    write. ``unacked`` counts request body bytes the app has not consumed yet:
    the window they use is given back only as it consumes them.
    """

    __slots__ = (
        "authority",
        "content_length",
        "ended",
        "head",
        "no_body",
        "offset",
        "pending",
        "pending_size",
        "received",
        "recv_processed",
        "recv_window",
        "remote_ended",
        "send_window",
        "started",
        "state",
        "stream_id",
        "trailers",
        "unacked",
    )

    def __init__(self, stream_id: int, state: State, send_window: int) -> None:
        self.stream_id = stream_id
        self.state = state
        self.send_window = send_window
        self.recv_window = DEFAULT_WINDOW
        self.recv_processed = 0
        self.content_length = -1
        self.received = 0
        self.authority = b""
        self.no_body = False
        self.remote_ended = False
        self.head: list[tuple[bytes, bytes]] | None = None
        self.started = False
        self.pending: deque[bytes] = deque()
        self.offset = 0
        self.pending_size = 0
        self.ended = False
        self.trailers: Headers = ()
        self.unacked = 0
