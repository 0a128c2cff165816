"""Pseudo-header and connection-field handling shared by HTTP/2 and HTTP/3."""

from __future__ import annotations

from hypercorn.worker.protocol.fields import (
    expects_continue,
    split_request_fields,
    strip_connection_fields,
)


def test_pseudo_headers_are_split_and_authority_becomes_host() -> None:
    fields = split_request_fields(
        [
            (b":method", b"POST"),
            (b":scheme", b"https"),
            (b":authority", b"example.com:8443"),
            (b":path", b"/a?b=1"),
            (b"user-agent", b"t"),
            (b"host", b"ignored.example"),
        ]
    )
    assert (fields.method, fields.path, fields.authority, fields.protocol) == (
        b"POST",
        b"/a?b=1",
        b"example.com:8443",
        b"",
    )
    assert fields.headers == ((b"host", b"example.com:8443"), (b"user-agent", b"t"))


def test_host_field_stands_in_for_a_missing_authority_and_protocol_is_kept() -> None:
    method, path, authority, protocol, headers = split_request_fields(
        [(b":method", b"CONNECT"), (b":protocol", b"websocket"), (b"host", b"h")]
    )
    assert (method, protocol, authority, path) == (b"CONNECT", b"websocket", b"h", b"")
    assert headers == ((b"host", b"h"),)
    assert split_request_fields([(b":method", b"GET")]).headers == ()


def test_expects_continue() -> None:
    assert expects_continue(((b"expect", b"100-Continue"),))
    assert not expects_continue(((b"expect", b"something"), (b"x", b"100-continue")))


def test_connection_specific_fields_are_stripped() -> None:
    headers = [
        (b"connection", b"close"),
        (b"keep-alive", b"5"),
        (b"proxy-connection", b"x"),
        (b"transfer-encoding", b"chunked"),
        (b"upgrade", b"h2c"),
        (b"te", b"gzip"),
        (b"te", b"trailers"),
        (b"content-type", b"text/plain"),
    ]
    assert list(strip_connection_fields(headers)) == [
        (b"te", b"trailers"),
        (b"content-type", b"text/plain"),
    ]
