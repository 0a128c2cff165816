"""The HTTP/2 frame layer's connection rules, against h2 as the client or raw frames.

Preface and SETTINGS, flow control both ways, limits, stream errors that
leave the connection up, header blocks split into CONTINUATION, push, PING.
Client bytes are fed whole, byte by byte and in seeded chunks.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

import h2.events
import h2.settings
import pytest
from h2.errors import ErrorCodes

from hypercorn.config import Config
from hypercorn.worker.protocol.events import (
    BodyEnded,
    BodyReceived,
    RequestReceived,
    ResponseData,
    ResponseEnded,
    ResponseStarted,
    StreamClosed,
)
from hypercorn.worker.protocol.h2 import H2Protocol
from tests.worker.protocol.test_h2 import REQUEST, SPLITS, Pair
from tests.worker.protocol.test_h2_states import (
    DATA,
    END_HEADERS,
    GET,
    GOAWAY,
    HEADERS,
    POST,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    Client,
    raw,
)

Split = Callable[[bytes], Iterator[bytes]]
ids = {"ids": lambda split: split.__name__}


def respond(server: H2Protocol, stream_id: int, body: bytes = b"ok", *headers: object) -> None:
    server.send(ResponseStarted(stream_id, 200, tuple(headers)), 0.0)  # type: ignore[arg-type]
    server.send(ResponseData(stream_id, body), 0.0)
    server.send(ResponseEnded(stream_id), 0.0)


@pytest.mark.parametrize(
    "opening",
    [b"GET / HTTP/1.1\r\n\r\n", PREFACE + raw(HEADERS, END_HEADERS, 1, b"\x82")],
    ids=["not the preface", "no SETTINGS first"],
)
def test_a_bad_opening_is_a_protocol_error(opening: bytes) -> None:
    """RFC 9113 section 3.4."""
    server = H2Protocol(Config(), tls=False, now=0.0)
    server.receive_data(opening, 0.0)
    assert server.closed and server.data_to_send().endswith(
        raw(GOAWAY, 0, 0, struct.pack(">II", 0, ErrorCodes.PROTOCOL_ERROR))
    )


@pytest.mark.parametrize("split", SPLITS, **ids)
def test_streams_beyond_the_limit_are_refused_alone(split: Split) -> None:
    """RFC 9113 section 5.1.2: REFUSED_STREAM, and the connection goes on."""
    client = Client(split, h2_max_concurrent_streams=2)
    opened = b"".join(client.headers(stream_id, GET, True) for stream_id in (1, 3, 5))
    assert client.send(opened) == [(RST_STREAM, 5, ErrorCodes.REFUSED_STREAM)]
    respond(client.server, 1)
    assert client.send(b"") == []
    client.send(client.headers(7, GET, True))
    assert client.server.last_stream_id == 7 and not client.server.closed


@pytest.mark.parametrize("split", SPLITS, **ids)
@pytest.mark.parametrize("sent", [[b"abc"], [b"a", b"bcd"]])
def test_a_body_unlike_its_content_length_resets_the_stream(
    split: Split, sent: list[bytes]
) -> None:
    """RFC 9113 section 8.1.1: a malformed request is a stream error (PROTOCOL_ERROR)."""
    client = Client(split)
    client.send(client.headers(1, [*POST, (b"content-length", b"2")], False))
    frames = [raw(DATA, 0, 1, piece) for piece in sent]
    frames[-1] = raw(DATA, 1, 1, sent[-1])
    assert client.send(b"".join(frames)) == [(RST_STREAM, 1, ErrorCodes.PROTOCOL_ERROR)]
    assert not client.server.closed
    assert client.send(client.headers(3, GET, True)) == []


@pytest.mark.parametrize("value", [b"x1", b"-1", b""])
def test_an_invalid_content_length_is_refused(value: bytes) -> None:
    """Not 1*DIGIT (RFC 9110 section 8.6): PROTOCOL_ERROR, and no request reaches the app."""
    client = Client(SPLITS[0])
    answers = client.send(client.headers(1, [*POST, (b"content-length", value)], False))
    assert answers == [(GOAWAY, 0, ErrorCodes.PROTOCOL_ERROR)] and client.events == []


def test_late_trailers_are_still_checked() -> None:
    """Trailers that reach a stream the server reset after its response (RFC 9113
    section 8.1) are ignored if well formed; a pseudo-header in them is a
    connection error, whichever arrived first."""
    for trailer, refused in ((b"x-t", False), (b":method", True)):
        client = Client(SPLITS[0])
        client.send(client.headers(1, POST, False) + raw(DATA, 0, 1, b"body"))
        respond(client.server, 1)
        assert client.send(b"") == [(RST_STREAM, 1, ErrorCodes.NO_ERROR)]
        answers = client.send(client.headers(1, [(trailer, b"1")], True))
        assert answers == ([(GOAWAY, 0, ErrorCodes.PROTOCOL_ERROR)] if refused else [])


@pytest.mark.parametrize("split", SPLITS, **ids)
def test_window_overflows(split: Split) -> None:
    """RFC 9113 section 6.9.1: a stream's is a stream error, the connection's a
    connection error (FLOW_CONTROL_ERROR)."""
    client = Client(split)
    client.send(client.headers(1, POST, False))
    big = struct.pack(">I", 2**31 - 1)
    assert client.send(raw(WINDOW_UPDATE, 0, 1, big)) == [
        (RST_STREAM, 1, ErrorCodes.FLOW_CONTROL_ERROR)
    ]
    assert client.send(raw(WINDOW_UPDATE, 0, 0, big)) == [
        (GOAWAY, 0, ErrorCodes.FLOW_CONTROL_ERROR)
    ]


def test_initial_window_changes_move_open_streams() -> None:
    """RFC 9113 section 6.9.2: a smaller SETTINGS_INITIAL_WINDOW_SIZE can make a
    window negative; sending resumes once WINDOW_UPDATE makes it positive."""
    pair = Pair()
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 3})
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.to_server()
    pair.to_client()
    respond(pair.server, 1, b"0123456789")
    assert [e.data for e in pair.to_client() if isinstance(e, h2.events.DataReceived)] == [b"012"]
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1})
    pair.to_server()
    pair.to_client()  # the stream's window is now 1 - 3 = -2
    pair.client.increment_flow_control_window(3, stream_id=1)
    pair.to_server()
    assert [e.data for e in pair.to_client() if isinstance(e, h2.events.DataReceived)] == [b"3"]


def test_padding_is_given_back_at_once() -> None:
    """Padding is flow-controlled (RFC 9113 section 6.1) but never reaches the app."""
    pair = Pair()
    pair.client.send_headers(1, REQUEST)
    pair.client.send_data(1, b"x" * 10, pad_length=200)
    events = pair.to_server()
    assert BodyReceived(1, b"x" * 10) in events
    pair.to_client()
    assert pair.client.local_flow_control_window(1) == 65535 - 211  # pad length, padding
    for _ in range(3):
        pair.client.send_data(1, b"y" * 11000)
    pair.to_server()
    pair.server.acknowledge(1, 33010)  # with the padding, past half the window
    pair.to_client()
    assert pair.client.local_flow_control_window(1) == 65535  # every byte given back


@pytest.mark.parametrize("split", SPLITS, **ids)
def test_header_blocks_over_continuation_frames(split: Split) -> None:
    """A request block split into CONTINUATION frames is read whole; a response
    head larger than a frame is split so (RFC 9113 section 6.10)."""
    pair = Pair(split)
    big = (b"x-big", b"v" * 40000)
    pair.client.max_outbound_frame_size = 16384
    pair.client.send_headers(1, [*REQUEST, big], end_stream=True)
    events = pair.to_server()
    assert events[0] == RequestReceived(1, "GET", b"/p?q=1", ((b"host", b"a.test"), big), "2")
    assert events[1:] == [BodyEnded(1)]
    respond(pair.server, 1, b"done", (b"x-back", b"w" * 40000))
    received = pair.to_client()
    response = next(e for e in received if isinstance(e, h2.events.ResponseReceived))
    assert (b"x-back", b"w" * 40000) in response.headers


def test_a_push_is_promised_and_served() -> None:
    """RFC 9113 section 8.4: PUSH_PROMISE on the request's stream, then a pushed
    request of our own on stream 2; none when the client disabled push."""
    for enabled in (True, False):
        pair = Pair()
        pair.client.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: int(enabled)})
        pair.client.send_headers(1, REQUEST, end_stream=True)
        pair.to_server()
        pair.to_client()
        pair.server.push(1, b"/style.css", ((b"accept", b"text/css"),))
        events = pair.server.events_received()
        if not enabled:
            assert events == [] and pair.to_client() == []
            continue
        assert events == [
            RequestReceived(2, "GET", b"/style.css", ((b"accept", b"text/css"),), "2"),
            BodyEnded(2),
        ]
        respond(pair.server, 2, b"body{}")
        respond(pair.server, 1)
        received = pair.to_client()
        promise = next(e for e in received if isinstance(e, h2.events.PushedStreamReceived))
        assert promise.pushed_stream_id == 2 and (b":path", b"/style.css") in promise.headers
        assert [e.data for e in received if isinstance(e, h2.events.DataReceived)] == [
            b"body{}",
            b"ok",
        ]


def test_ping_is_echoed_and_its_ack_is_not() -> None:
    pair = Pair()
    pair.client.ping(b"12345678")
    pair.to_server()
    acks = [e for e in pair.to_client() if isinstance(e, h2.events.PingAckReceived)]
    assert [e.ping_data for e in acks] == [b"12345678"]
    client = Client(SPLITS[0])
    assert client.send(raw(6, 1, 0, b"87654321")) == [] and not client.server.data_to_send()


def test_client_reset_reports_the_stream_closed() -> None:
    client = Client(SPLITS[1])
    client.send(client.headers(1, POST, False))
    client.send(raw(RST_STREAM, 0, 1, struct.pack(">I", ErrorCodes.CANCEL)))
    client.server.send(ResponseStarted(1, 200, ()), 0.0)  # dropped: the stream is gone
    assert client.send(b"") == [] and client.server.idle
    client.server.receive_data(raw(SETTINGS, 0, 0), 0.0)
    assert client.server.events_received() == []
    assert StreamClosed(1) not in client.server.events_received()
