"""The HTTP/1.1 response head encoder against a plain reference of its rules."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hypercorn.worker.protocol.events import Headers
from hypercorn.worker.protocol.http11_response import STATUS_LINES, Framing, response_head


def reference_head(
    status: int, headers: Headers, method: str, version: str
) -> tuple[bytes, Framing, int, bool]:
    """The head as RFC 9112 frames it, written plainly: the encoder's reference."""
    lines = [b"%s: %s\r\n" % (name, value) for name, value in headers]
    length, close = -1, False
    kept = []
    for (name, value), line in zip(headers, lines, strict=True):
        lower = name.lower()
        if lower == b"content-length":
            if not value.isdigit() or (length >= 0 and int(value) != length):
                raise ValueError
            length = int(value)
        elif lower == b"connection":
            close = close or b"close" in [t.strip(b" \t") for t in value.lower().split(b",")]
        elif lower != b"transfer-encoding":
            kept.append(line)
    head = STATUS_LINES[status] + b"".join(kept)
    if method == "HEAD" or status in (204, 304):
        if length >= 0 and status != 204:
            head += b"content-length: %d\r\n" % length
        return head, Framing.NONE, length, close
    if length >= 0:
        return head + b"content-length: %d\r\n" % length, Framing.LENGTH, length, close
    if version == "1.1":
        return head + b"transfer-encoding: chunked\r\n", Framing.CHUNKED, length, close
    return head, Framing.CLOSE, length, True


NAMES = [
    b"content-length",
    b"Content-Length",
    b"connection",
    b"transfer-encoding",
    b"x-abcdefghijklm",
]
NAMES += [b"x-abcdefgh", b"x-abcdefghijklmno", b"server", b"date"]
VALUES = [b"0", b"13", b"0013", b"00", b"65536", b"", b"1x", b"\xd9\xa1", b"close", b"a, Close"]
VALUES += [b"keep-alive", b"chunked", b"99999999999999999999999"]


@given(
    status=st.sampled_from([200, 204, 304, 404]),
    headers=st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=5),
    method=st.sampled_from(["GET", "HEAD"]),
    version=st.sampled_from(["1.0", "1.1"]),
)
@settings(max_examples=500, deadline=None)
def test_response_head_matches_the_reference(
    status: int, headers: list[tuple[bytes, bytes]], method: str, version: str
) -> None:
    try:
        expected: tuple[bytes, Framing, int, bool] | None = reference_head(
            status, tuple(headers), method, version
        )
    except ValueError:
        expected = None
    out: list[bytes] = []
    try:
        framing, length, close = response_head(out, status, tuple(headers), method, version)
    except ValueError:
        assert expected is None
        return
    assert (b"".join(out), framing, length, close) == expected
