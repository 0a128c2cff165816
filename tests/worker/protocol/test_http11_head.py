"""Request-head parsing and validation (RFC 9112 sections 2 to 7)."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hypercorn.worker.protocol import http11_head
from hypercorn.worker.protocol.http11_head import (
    CHUNKED,
    HeadError,
    RequestHead,
    parse_head,
    read_head,
)


def head(*lines: str, version: str = "1.1") -> bytes:
    return (
        f"GET / HTTP/{version}\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n"
    ).encode()


class TestPersistence:
    """RFC 9112 section 9.3: which requests keep the connection open."""

    @pytest.mark.parametrize(
        ("lines", "version", "keep_alive"),
        [
            ((), "1.1", True),
            (("Connection: close",), "1.1", False),
            (("Connection: Upgrade,  CLOSE",), "1.1", False),
            (("Connection: keep-alive", "Connection: close"), "1.1", False),
            (("Connection: closed",), "1.1", True),
            ((), "1.0", False),
            (("Connection: keep-alive",), "1.0", True),
            (("Connection: foo, Keep-Alive",), "1.0", True),
            (("Connection: keep-alive, close",), "1.0", False),
        ],
    )
    def test_keep_alive(self, lines: tuple[str, ...], version: str, keep_alive: bool) -> None:
        assert parse_head(head("Host: a", *lines, version=version)).keep_alive is keep_alive


class TestExpect:
    """RFC 9110 section 10.1.1."""

    @pytest.mark.parametrize(
        ("lines", "expected"),
        [
            (("Expect: 100-continue",), True),
            (("Expect: 100-Continue",), True),
            (("Expect: foo, 100-continue",), True),
            (("Expect: 100-continued",), False),
            ((), False),
        ],
    )
    def test_expects_continue(self, lines: tuple[str, ...], expected: bool) -> None:
        assert parse_head(head("Host: a", *lines)).expects_continue is expected

    def test_http10_expectation_is_ignored(self) -> None:
        assert not parse_head(head("Expect: 100-continue", version="1.0")).expects_continue


class TestFraming:
    """RFC 9112 section 6.3: the length of the request body."""

    @pytest.mark.parametrize(
        ("lines", "length"),
        [
            ((), 0),
            (("Content-Length: 0",), 0),
            (("content-length:\t42\t",), 42),
            (("Content-Length: 9999999999999999999",), 9999999999999999999),
            (("Transfer-Encoding: chunked",), CHUNKED),
            (("TRANSFER-ENCODING:  CHUNKED ",), CHUNKED),
            (("X-Content-Length: 5",), 0),
        ],
    )
    def test_body_length(self, lines: tuple[str, ...], length: int) -> None:
        assert parse_head(head("Host: a", *lines)).body_length == length

    def test_twenty_digits_is_too_long(self) -> None:
        with pytest.raises(HeadError) as info:
            parse_head(head("Host: a", "Content-Length: " + "1" * 20))
        assert (info.value.status, info.value.reason) == (400, "invalid Content-Length")


class TestRefusals:
    """Which status and reason a refused head gets: the first rule it breaks.

    The grammar is checked first on the hot path, but the reasons keep their
    order: bare LF, obs-fold, framing, the grammar's own, then a second Host,
    the version, Host and the target.
    """

    @pytest.mark.parametrize(
        ("raw", "status", "reason"),
        [
            (b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF in request head"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\nb\r\n\r\n", 400, "bare LF in request head"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, "obsolete line folding"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400, "obsolete line folding"),
            # Framing is read on the raw bytes before the grammar names a line.
            (
                b"GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nX : y\r\n\r\n",
                501,
                "unsupported",
            ),
            (
                b"GET  / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n",
                400,
                "more than one Content",
            ),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "illegal request line"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", 400, "illegal header line"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0bb\r\n\r\n", 400, "illegal header line"),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, "illegal header line"),
            # A well-formed head: framing, then a second Host, version, Host, target.
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\nContent-Length: x\r\n\r\n",
                400,
                "invalid Content-Length",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                501,
                "unsupported",
            ),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
                "both",
            ),
            (
                b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
                400,
                "invalid Transfer",
            ),
            (b"GET / HTTP/2.0\r\nHost: a\r\nhost: b\r\n\r\n", 400, "more than one Host"),
            (b"GET / HTTP/2.0\r\n\r\n", 505, "unsupported HTTP version"),
            (
                b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nHost: a b\r\n\r\n",
                400,
                "Transfer-Encoding in",
            ),
            (b"CONNECT a:1 HTTP/1.1\r\n\r\n", 400, "missing Host"),
            (b"CONNECT a:1 HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host"),
            (b"CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r\n", 405, "CONNECT"),
            (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "asterisk-form"),
        ],
    )
    def test_first_rule_broken(self, raw: bytes, status: int, reason: str) -> None:
        with pytest.raises(HeadError) as info:
            parse_head(raw)
        assert (info.value.status, info.value.reason[: len(reason)]) == (status, reason)

    def test_a_valid_host_does_not_let_an_invalid_one_through(self) -> None:
        for _ in range(2):
            assert parse_head(head("Host: a.example:80")).body_length == 0
            with pytest.raises(HeadError) as info:
                parse_head(head("Host: a.example:80/x"))
            assert (info.value.status, info.value.reason) == (400, "invalid Host")

    def test_host_memory_is_bounded(self) -> None:
        for number in range(http11_head.HOSTS_MAX * 2 + 3):
            parse_head(head(f"Host: h{number}"))
        assert 0 < len(http11_head._HOSTS) <= http11_head.HOSTS_MAX


def test_parsed_head() -> None:
    parsed = parse_head(b"OPTIONS * HTTP/1.1\r\nHost: a:1\r\nX-A: b\r\n\r\n")
    assert parsed == RequestHead(
        "OPTIONS", b"*", ((b"host", b"a:1"), (b"x-a", b"b")), "1.1", True, False, 0
    )


def test_absolute_form_replaces_the_host_in_place() -> None:
    parsed = parse_head(b"GET http://b/p HTTP/1.1\r\nX: 1\r\nHost: a\r\nY: 2\r\n\r\n")
    assert parsed.target == b"/p"
    assert parsed.headers == ((b"x", b"1"), (b"host", b"b"), (b"y", b"2"))


# Round trip: whatever h11 writes as a client, we read back unchanged.
NAMES = st.text("abcdefghijklmnopqrstuvwxyz-0123456789", min_size=1, max_size=12).filter(
    lambda name: name not in {"host", "content-length", "transfer-encoding"}
)
VALUES = st.binary(max_size=20).map(
    lambda value: bytes(b if 0x21 <= b <= 0x7E or b >= 0x80 else 0x61 for b in value)
)
PATHS = st.text("abcxyz/%20?=&~.-_", max_size=30).map(lambda path: "/" + path)


@given(
    st.sampled_from(["GET", "POST", "DELETE", "PATCH", "X-CUSTOM"]),
    PATHS,
    st.lists(st.tuples(NAMES, VALUES), max_size=10),
)
def test_reads_what_h11_writes(method: str, path: str, fields: list[tuple[str, bytes]]) -> None:
    client = h11.Connection(h11.CLIENT)
    headers = [(b"Host", b"example.com"), *((name.encode(), value) for name, value in fields)]
    written = client.send(h11.Request(method=method, target=path, headers=headers))
    parsed = parse_head(written)
    assert parsed.method == method
    assert parsed.target == path.encode()
    expected = tuple((name.lower(), value) for name, value in headers)
    assert parsed.headers == expected
    assert parsed.body_length == 0


class TestReadHead:
    """``read_head`` remembers heads: same answers as ``parse_head``, bounded."""

    def test_a_repeated_head_is_answered_from_memory(self) -> None:
        head = b"GET /seen-%d HTTP/1.1\r\nHost: a\r\n\r\n" % id(self)
        first = read_head(head)
        assert first == parse_head(head)
        assert read_head(bytes(head)) is first  # equal bytes, not the same object

    def test_refused_heads_are_refused_every_time(self) -> None:
        head = b"GET / HTTP/1.1\r\n\r\n"  # no Host
        for _ in range(2):
            with pytest.raises(HeadError) as caught:
                read_head(head)
            assert caught.value.status == 400

    def test_memory_is_bounded(self) -> None:
        for number in range(http11_head.SEEN_MAX * 2 + 7):
            read_head(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % number)
        assert len(http11_head._SEEN) <= http11_head.SEEN_MAX
        big = b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"v" * http11_head.SEEN_HEAD_SIZE + b"\r\n\r\n"
        assert read_head(big) is not read_head(big)  # too large to remember
