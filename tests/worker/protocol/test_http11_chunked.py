"""The strict chunked decoder (RFC 9112 section 7.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hypercorn.worker.protocol.http11_chunked import ChunkedDecoder, ChunkedError

TOKEN = st.text("abcXYZ09-!#", min_size=1, max_size=5)
QUOTED = st.text('ab ;=,\\"\t', max_size=6).map(
    lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
)
EXTENSION = st.tuples(
    st.sampled_from(["", " ", "\t "]),
    TOKEN,
    st.one_of(st.just(""), st.tuples(st.sampled_from(["=", " = "]), TOKEN | QUOTED).map("".join)),
).map(lambda parts: f"{parts[0]};{parts[1]}{parts[2]}")
TRAILER = st.tuples(TOKEN, st.text("ab \t", max_size=5)).map(lambda t: f"{t[0]}:{t[1]}\r\n")


@st.composite
def chunked_bodies(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A chunked encoding with random extensions and trailers, and its data."""
    chunks = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=5))
    encoded = b""
    for chunk in chunks:
        size = draw(st.sampled_from(["%x", "%X", "00%x"])) % len(chunk)
        extensions = "".join(draw(st.lists(EXTENSION, max_size=2)))
        encoded += f"{size}{extensions}\r\n".encode() + chunk + b"\r\n"
    trailers = "".join(draw(st.lists(TRAILER, max_size=2)))
    encoded += f"0{''.join(draw(st.lists(EXTENSION, max_size=1)))}\r\n{trailers}\r\n".encode()
    return encoded, b"".join(chunks)


def decode(encoded: bytes, cuts: list[int], max_line: int = 1024) -> tuple[bytes, bytes]:
    """Decode ``encoded`` fed in pieces; return (data, bytes left over)."""
    decoder = ChunkedDecoder(max_line)
    buffer = bytearray()
    out: list[bytes] = []
    done = False
    previous = 0
    for cut in [*sorted(cuts), len(encoded)]:
        buffer += encoded[previous:cut]
        previous = cut
        if not done:
            done = decoder.feed(buffer, out)
    assert done
    assert all(out)
    return b"".join(out), bytes(buffer)


@given(chunked_bodies(), st.lists(st.integers(0, 400), max_size=8), st.binary(max_size=10))
def test_round_trip_whatever_the_split(
    body: tuple[bytes, bytes], cuts: list[int], after: bytes
) -> None:
    encoded, data = body
    cuts = [min(cut, len(encoded)) for cut in cuts]
    assert decode(encoded + after, cuts) == (data, after)


def test_empty_buffer_needs_more() -> None:
    decoder = ChunkedDecoder(100)
    assert not decoder.feed(bytearray(), [])
    assert not decoder.feed(bytearray(b"5\r"), [])


@pytest.mark.parametrize(
    "encoded",
    [
        b"a" * 50,  # no line end within the limit
        b"0;x=" + b"a" * 50 + b"\r\n",  # a complete line over the limit
        b"0\r\nx-trailer: " + b"a" * 20 + b"\r\nx-other: " + b"a" * 20 + b"\r\n\r\n",
    ],
)
def test_limits(encoded: bytes) -> None:
    with pytest.raises(ChunkedError):
        ChunkedDecoder(40).feed(bytearray(encoded), [])


def test_largest_size_is_accepted() -> None:
    out: list[bytes] = []
    assert not ChunkedDecoder(100).feed(bytearray(b"7FFFFFFFFFFFFFFF\r\nab"), out)
    assert out == [b"ab"]
