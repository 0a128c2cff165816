"""The request-head grammar reads exactly as h11's (RFC 9112 sections 3 and 5).

``split_head`` is our own reading of the request-line and field lines, the
grammar and the splits ``parse_head`` runs on the hot path; h11 is the
reference: for every head (lines ending in CRLF, no obs-fold, which
``parse_head`` refuses for their own reasons), both accept or both refuse,
and an accepted head yields the same method, target, version and fields.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from hypercorn.worker.protocol.http11_head import HeadError, split_head

Reading = tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]]] | None


def h11_reading(head: bytes) -> Reading:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=len(head) + 1)
    conn.receive_data(head)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return None
    assert isinstance(event, h11.Request)
    return event.method, event.target, event.http_version, list(event.headers)


def our_reading(head: bytes) -> Reading:
    try:
        method, target, version, fields = split_head(head)
    except HeadError as exc:
        assert exc.status == 400
        return None
    return method, target, version, [(name.lower(), value) for name, value in fields]


# Bytes that sit on the grammar's edges: token and non-token, white space,
# controls, DEL, obs-text, the separators of a line.
EDGES = b"aZ09-!~|`'^_ \t\x00\x01\x0b\x0c\x1f\x7f\x80\xff:/?\"(),;=@[]{}\\\r"
PIECES = st.binary(max_size=8).map(lambda raw: bytes(EDGES[b % len(EDGES)] for b in raw))
METHODS = st.one_of(st.sampled_from([b"GET", b"POST", b"M-SEARCH", b"G~T", b""]), PIECES)
TARGETS = st.one_of(st.sampled_from([b"/", b"/a?b=c", b"*", b"http://x/y", b"/\x80"]), PIECES)
VERSIONS = st.sampled_from(
    [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.12", b"http/1.1", b"HTTP/1"]
)
NAMES = st.one_of(st.sampled_from([b"Accept", b"X-A", b"a b", b"", b"a\x00"]), PIECES)
VALUES = st.one_of(st.sampled_from([b"", b" x ", b"\tx\ty\t", b"a  b", b"\x80\xff"]), PIECES)
SEPARATORS = st.sampled_from([b": ", b":", b" : ", b":\t", b""])


def assemble(
    method: bytes, target: bytes, version: bytes, fields: list[tuple[bytes, bytes, bytes]]
) -> bytes:
    lines = [method + b" " + target + b" " + version, b"Host: example.com"]
    lines += [name + separator + value for name, separator, value in fields]
    return b"\r\n".join(lines) + b"\r\n\r\n"


@given(
    METHODS,
    TARGETS,
    VERSIONS,
    st.lists(st.tuples(NAMES, SEPARATORS, VALUES), max_size=6),
)
def test_reads_as_h11_reads(
    method: bytes, target: bytes, version: bytes, fields: list[tuple[bytes, bytes, bytes]]
) -> None:
    head = assemble(method, target, version, fields)
    # What parse_head refuses before reading the lines, or reads as framing.
    assume(head.count(b"\n") == head.count(b"\r\n"))
    assume(b"\r\n " not in head and b"\r\n\t" not in head)
    assume(head.find(b"\r\n\r\n") == len(head) - 4)
    for name, _, _ in fields:
        assume(name.lower().strip() not in (b"host", b"content-length", b"transfer-encoding"))
    assert our_reading(head) == h11_reading(head)


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX:\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX:    \t \r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a \x01 b\x7f\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
        b"GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: a\r\n\r\n",
    ],
)
def test_edges(head: bytes) -> None:
    assert our_reading(head) == h11_reading(head)


def test_refused_head_is_linear() -> None:
    """Many lines of white space before a bad line: one way to match each line."""
    lines = [b"X-%d:%s" % (n, b" " * 40) for n in range(200)]
    head = b"GET / HTTP/1.1\r\n" + b"\r\n".join([*lines, b"Y: \x00"]) + b"\r\n\r\n"
    with pytest.raises(HeadError):
        split_head(head)
