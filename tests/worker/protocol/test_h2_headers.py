"""Inbound header blocks: well-formed ones served, malformed ones refused.

The corpus is fed to ``H2Protocol`` by an h2 client that neither checks nor
normalises what it sends. Each malformed block must end the connection with
GOAWAY PROTOCOL_ERROR, as it did when h2 checked inbound headers itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import h2.config
import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes

from hypercorn.config import Config
from hypercorn.worker.protocol.events import RequestReceived
from hypercorn.worker.protocol.h2 import H2Protocol
from hypercorn.worker.protocol.h2_headers import (
    MAX_GOOD_FIELDS,
    MAX_KEPT_FIELD,
    MAX_KEPT_REQUEST,
    MAX_REQUESTS,
    HeaderChecker,
    MalformedHeaders,
)
from tests.worker.protocol.test_h2 import SPLITS

Split = Callable[[bytes], Iterator[bytes]]

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"a.test"), (b":path", b"/")]


def connect(protocol: bytes | None) -> list[tuple[bytes, bytes]]:
    fields = [(b":method", b"CONNECT"), (b":authority", b"a.test")]
    if protocol is not None:
        fields += [(b":protocol", protocol), (b":scheme", b"http"), (b":path", b"/ws")]
    return fields


class Client:
    """A raw h2 client against ``H2Protocol``: what it sends is not checked."""

    def __init__(self, split: Split = SPLITS[0]) -> None:
        self.split = split
        self.server = H2Protocol(Config(), tls=False, now=0.0)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=True,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.events: list[h2.events.Event] = []
        self.conn.initiate_connection()
        self.exchange()

    def exchange(self) -> None:
        for piece in self.split(self.conn.data_to_send()):
            self.server.receive_data(piece, 0.0)
        self.events += self.conn.receive_data(self.server.data_to_send())

    def request(self, fields: list[tuple[bytes, bytes]], end: bool = True) -> list[object]:
        self.conn.send_headers(1, fields, end_stream=end)
        self.exchange()
        return list(self.server.events_received())

    def refused(self) -> bool:
        """True if the server ended the connection with GOAWAY PROTOCOL_ERROR."""
        return self.server.closed and any(
            isinstance(event, h2.events.ConnectionTerminated)
            and event.error_code == ErrorCodes.PROTOCOL_ERROR
            for event in self.events
        )


MALFORMED: dict[str, list[tuple[bytes, bytes]]] = {
    "uppercase name": [*GET, (b"X-Up", b"1")],
    "uppercase pseudo": [(b":METHOD", b"GET"), *GET[1:]],
    "space in name": [*GET, (b"x y", b"1")],
    "colon in name": [*GET, (b"x:y", b"1")],
    "DEL in name": [*GET, (b"x\x7f", b"1")],
    "high byte in name": [*GET, (b"x\xe9", b"1")],
    "empty name": [*GET, (b"", b"1")],
    "NUL in value": [*GET, (b"x", b"a\x00b")],
    "CR in value": [*GET, (b"x", b"a\rb")],
    "LF in value": [*GET, (b"x", b"a\nb")],
    "leading space": [*GET, (b"x", b" a")],
    "trailing tab": [*GET, (b"x", b"a\t")],
    "connection": [*GET, (b"connection", b"close")],
    "keep-alive": [*GET, (b"keep-alive", b"5")],
    "transfer-encoding": [*GET, (b"transfer-encoding", b"chunked")],
    "upgrade": [*GET, (b"upgrade", b"h2c")],
    "proxy-connection": [*GET, (b"proxy-connection", b"close")],
    "te gzip": [*GET, (b"te", b"gzip")],
    "pseudo after regular": [*GET[:3], (b"x", b"1"), GET[3]],
    "repeated pseudo": [*GET, (b":path", b"/again")],
    "unknown pseudo": [*GET, (b":foo", b"1")],
    "bare colon": [*GET, (b":", b"1")],
    "response pseudo": [*GET, (b":status", b"200")],
    "no method": GET[1:],
    "no scheme": [GET[0], *GET[2:]],
    "no path": GET[:3],
    "empty path": [*GET[:3], (b":path", b"")],
    "protocol without CONNECT": [*GET, (b":protocol", b"websocket")],
    "CONNECT with path": [*connect(None), (b":path", b"/")],
    "CONNECT with scheme": [*connect(None), (b":scheme", b"http")],
    "extended CONNECT without path": connect(b"websocket")[:4],
    "neither authority nor host": [GET[0], GET[1], GET[3]],
    "authority and host differ": [*GET, (b"host", b"b.test")],
    "two hosts": [GET[0], GET[1], GET[3], (b"host", b"a.test"), (b"host", b"a.test")],
}


@pytest.mark.parametrize("fields", MALFORMED.values(), ids=MALFORMED.keys())
@pytest.mark.parametrize("split", SPLITS)
def test_malformed_request_is_a_connection_error(
    fields: list[tuple[bytes, bytes]], split: Split
) -> None:
    """RFC 9113 sections 8.1.1, 8.2 and 8.3: malformed requests are not served."""
    client = Client(split)
    assert client.request(fields) == []
    assert client.refused()


def test_a_bad_field_is_refused_after_the_same_name_passed() -> None:
    client = Client()
    assert client.request([*GET, (b"x", b"ok")])
    client.conn.send_headers(3, [*GET, (b"x", b" bad")], end_stream=True)
    client.exchange()
    assert not any(isinstance(e, RequestReceived) for e in client.server.events_received())
    assert client.refused()


MALFORMED_TRAILERS: dict[str, list[tuple[bytes, bytes]]] = {
    "pseudo": [(b":path", b"/")],
    "uppercase": [(b"X-T", b"1")],
    "bad value": [(b"x-t", b"a\r")],
    "connection": [(b"connection", b"close")],
    "te gzip": [(b"te", b"gzip")],
}


@pytest.mark.parametrize("trailers", MALFORMED_TRAILERS.values(), ids=MALFORMED_TRAILERS.keys())
def test_malformed_trailers_are_a_connection_error(trailers: list[tuple[bytes, bytes]]) -> None:
    """RFC 9113 section 8.1: trailers carry no pseudo-header fields."""
    client = Client()
    assert client.request(GET, end=False)
    client.conn.send_headers(1, trailers, end_stream=True)
    client.exchange()
    assert client.refused()


def test_good_trailers_end_the_body() -> None:
    client = Client()
    assert client.request(GET, end=False)
    client.conn.send_headers(1, [(b"x-t", b"1"), (b"te", b"Trailers")], end_stream=True)
    client.exchange()
    assert [type(event).__name__ for event in client.server.events_received()] == ["BodyEnded"]
    assert not client.server.closed


@pytest.mark.parametrize("split", SPLITS)
def test_well_formed_requests_are_served(split: Split) -> None:
    client = Client(split)
    fields = [
        *GET,
        (b"x-empty", b""),
        (b"cookie", b"a=1"),
        (b"te", b"trailers"),
        (b"cookie", b"b=2"),
        (b"x-inner", b"a b\tc"),
    ]
    (request, _) = client.request(fields)
    assert isinstance(request, RequestReceived)
    assert request.headers == (
        (b"host", b"a.test"),
        (b"x-empty", b""),
        (b"te", b"trailers"),
        (b"x-inner", b"a b\tc"),
        (b"cookie", b"a=1; b=2"),
    )


def test_host_alone_and_extended_connect_are_served() -> None:
    client = Client()
    (request, _) = client.request([GET[0], GET[1], GET[3], (b"host", b"h.test")])
    assert isinstance(request, RequestReceived)
    assert request.headers == ((b"host", b"h.test"),)
    client.conn.send_headers(3, connect(b"websocket"), end_stream=False)
    client.exchange()
    assert not client.server.closed


def test_checker_remembers_only_good_fields_and_is_bounded() -> None:
    checker = HeaderChecker()
    for index in range(MAX_GOOD_FIELDS + 10):
        checker.read_request([*GET, (b"x", b"%d" % index)])
    checker.read_request([*GET, (b"x-long", b"v" * MAX_KEPT_FIELD)])
    for _ in range(2):  # a bad block is never remembered, whole or by field
        with pytest.raises(MalformedHeaders):
            checker.read_request([*GET, (b"x", b"bad\n")])
    assert len(checker._good) <= MAX_GOOD_FIELDS
    assert (b"x-long", b"v" * MAX_KEPT_FIELD) not in checker._good
    assert len(checker._requests) <= MAX_REQUESTS


def test_a_repeated_request_is_read_once() -> None:
    checker = HeaderChecker()
    fields = [*GET, (b"cookie", b"a=1"), (b"cookie", b"b=2")]
    first = checker.read_request(fields)
    assert checker.read_request(list(fields)) is first
    assert first.headers == ((b"host", b"a.test"), (b"cookie", b"a=1; b=2"))
    big = [*GET, (b"x", b"v" * MAX_KEPT_REQUEST)]
    assert checker.read_request(big) == checker.read_request(big)
    assert tuple(big) not in checker._requests
