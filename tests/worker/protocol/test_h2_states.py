"""Every frame a client can send, in every state a stream can be in (RFC 9113 section 5.1).

A raw client (frames packed by hand, HPACK by ``hpack``) brings stream 1 (or
2, a push) into a state, then sends one frame on it. The outcome is what the
server answers: nothing (the frame is taken or ignored), RST_STREAM (a
stream error) or GOAWAY (a connection error), with the error code the RFC
gives. The bytes are fed whole, byte by byte and in seeded chunks.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import hpack
import pytest

from hypercorn.config import Config
from hypercorn.worker.protocol.events import (
    ResponseData,
    ResponseEnded,
    ResponseStarted,
    StreamAborted,
)
from hypercorn.worker.protocol.h2 import H2Protocol
from tests.worker.protocol.test_h2 import SPLITS

Split = Callable[[bytes], Iterator[bytes]]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    9,
)
END_STREAM, END_HEADERS = 0x1, 0x4
PROTOCOL_ERROR, STREAM_CLOSED, CANCEL = 0x1, 0x5, 0x8
GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a"), (b":path", b"/")]
POST = [(b":method", b"POST"), *GET[1:]]


def raw(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream_id) + payload
    )


class Client:
    def __init__(self, split: Split, **settings: object) -> None:
        self.split = split
        self.encoder = hpack.Encoder()
        self.server = H2Protocol(Config.from_mapping(settings), tls=False, now=0.0)
        self.events: list[object] = []
        self.send(PREFACE + raw(SETTINGS, 0, 0))

    def send(self, data: bytes) -> list[tuple[int, int, int]]:
        """Feed the server; return the (type, stream, error code) of its RST_STREAM
        and GOAWAY frames."""
        for piece in self.split(data) if data else ():  # b"" would be EOF
            self.server.receive_data(piece, 0.0)
        self.events += self.server.events_received()
        out = self.server.data_to_send()
        answers = []
        while out:
            length = int.from_bytes(out[:3], "big")
            kind, stream_id = out[3], int.from_bytes(out[5:9], "big")
            payload = out[9 : 9 + length]
            if kind == RST_STREAM:
                answers.append((kind, stream_id, int.from_bytes(payload, "big")))
            elif kind == GOAWAY:
                answers.append((kind, 0, int.from_bytes(payload[4:8], "big")))
            out = out[9 + length :]
        return answers

    def headers(self, stream_id: int, fields: list[tuple[bytes, bytes]], end: bool) -> bytes:
        flags = END_HEADERS | (END_STREAM if end else 0)
        return raw(HEADERS, flags, stream_id, self.encoder.encode(fields))

    def respond(self, stream_id: int) -> None:
        for event in (ResponseStarted(stream_id, 200, ()), ResponseData(stream_id, b"ok")):
            self.server.send(event, 0.0)
        self.server.send(ResponseEnded(stream_id), 0.0)


def idle(client: Client) -> int:
    return 1


def open_(client: Client) -> int:
    client.send(client.headers(1, POST, False))
    return 1


def half_closed_remote(client: Client) -> int:
    client.send(client.headers(1, GET, True))
    return 1


def reserved_local(client: Client) -> int:
    half_closed_remote(client)
    client.server.push(1, b"/pushed", ())
    return 2


def closed_by_end_stream(client: Client) -> int:
    half_closed_remote(client)
    client.respond(1)
    assert client.send(b"") == []  # closed without RST_STREAM
    return 1


def closed_by_client_reset(client: Client) -> int:
    open_(client)
    client.send(raw(RST_STREAM, 0, 1, struct.pack(">I", CANCEL)))
    return 1


def closed_by_server_reset(client: Client) -> int:
    open_(client)
    client.server.send(StreamAborted(1), 0.0)
    assert client.send(b"") == [(RST_STREAM, 1, 0x2)]
    return 1


def never_opened(client: Client) -> int:
    client.send(client.headers(5, GET, True))
    return 3  # below the highest stream, never used: closed implicitly


STATES = {
    "idle": idle,
    "open": open_,
    "half-closed (remote)": half_closed_remote,
    "reserved (local)": reserved_local,
    "closed (END_STREAM both ways)": closed_by_end_stream,
    "closed (client's RST_STREAM)": closed_by_client_reset,
    "closed (server's RST_STREAM)": closed_by_server_reset,
    "closed (never opened)": never_opened,
}

FRAMES = ["DATA", "HEADERS", "RST_STREAM", "WINDOW_UPDATE", "PRIORITY", "CONTINUATION"]

OK: list[tuple[int, int, int]] = []


def goaway(code: int) -> list[tuple[int, int, int]]:
    return [(GOAWAY, 0, code)]


def rst(code: int) -> list[tuple[int, int, int]]:
    return [(RST_STREAM, -1, code)]  # -1: the stream the frame was sent on


P, C, R = goaway(PROTOCOL_ERROR), goaway(STREAM_CLOSED), rst(STREAM_CLOSED)
OUTCOMES: dict[str, list[list[tuple[int, int, int]]]] = {
    #                         DATA                HEADERS RST  WU   PRIO CONT
    "idle": [P, OK, P, P, OK, P],
    "open": [OK, OK, OK, OK, OK, P],
    "half-closed (remote)": [R, R, OK, OK, OK, P],
    "reserved (local)": [P, P, OK, OK, OK, P],
    "closed (END_STREAM both ways)": [R, C, OK, OK, OK, P],
    "closed (client's RST_STREAM)": [R, R, OK, OK, OK, P],
    "closed (server's RST_STREAM)": [OK, OK, OK, OK, OK, P],
    "closed (never opened)": [R, P, OK, OK, OK, P],
}
"""RFC 9113 section 5.1 (and 6.1-6.10): what each frame gets in each state.

DATA on a stream that is neither open nor half-closed (local) is a stream
error (section 6.1), except after the server's own RST_STREAM, when it is
ignored (section 5.1); HEADERS after END_STREAM both ways is a connection
error, as h2spec requires."""


def frame_for(client: Client, name: str, stream_id: int, state: str) -> bytes:
    if name == "DATA":
        return raw(DATA, 0, stream_id, b"x")
    if name == "HEADERS":
        fields = GET if state == "idle" else [(b"x-trailer", b"1")]
        return client.headers(stream_id, fields, True)
    if name == "RST_STREAM":
        return raw(RST_STREAM, 0, stream_id, struct.pack(">I", CANCEL))
    if name == "WINDOW_UPDATE":
        return raw(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", 1))
    if name == "PRIORITY":
        return raw(PRIORITY, 0, stream_id, struct.pack(">IB", 0, 15))
    return raw(CONTINUATION, END_HEADERS, stream_id, client.encoder.encode([(b"x", b"1")]))


@pytest.mark.parametrize("split", SPLITS, ids=lambda split: split.__name__)
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("name", FRAMES)
def test_frame_in_state(state: str, name: str, split: Split) -> None:
    client = Client(split)
    stream_id = STATES[state](client)
    answers = client.send(frame_for(client, name, stream_id, state))
    expected = [
        (kind, stream_id if stream == -1 else stream, code)
        for kind, stream, code in OUTCOMES[state][FRAMES.index(name)]
    ]
    assert answers == expected
    assert client.server.closed == any(kind == GOAWAY for kind, _, _ in expected)
