"""The WebSocket frame reader and writer (RFC 6455 section 5, RFC 7692), with no loop.

Client frames are built here byte by byte (so that broken ones can be) or by a
wsproto client; every input is fed whole, byte by byte and in seeded random
chunks, and must give the same events.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, Pong, TextMessage
from wsproto.extensions import PerMessageDeflate

from hypercorn.worker.protocol.ws_frames import (
    OP_BINARY,
    OP_PING,
    OP_TEXT,
    Event,
    FrameReader,
    FrameWriter,
    close_frame,
    frame,
    parse_close,
    unmask,
)
from tests.splits import bytewise, random_chunks, whole

MASK = b"\x37\xfa\x21\x3d"


chunks = random_chunks(9)
SPLITS = [whole, bytewise, chunks]


def naive_mask(data: bytes, mask: bytes) -> bytes:
    return bytes(byte ^ mask[index % 4] for index, byte in enumerate(data))


def client_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length: bytes | None = None,
) -> bytes:
    """A client frame; ``length`` overrides the length field (7 bits plus extension)."""
    size = len(payload)
    if length is None:
        if size < 126:
            length = bytes((size,))
        elif size < 0x10000:
            length = bytes((126,)) + size.to_bytes(2, "big")
        else:
            length = bytes((127,)) + size.to_bytes(8, "big")
    head = bytes(((0x80 if fin else 0) | rsv | opcode,)) + bytes((length[0] | 0x80 * masked,))
    head += length[1:]
    if not masked:
        return head + payload
    return head + MASK + naive_mask(payload, MASK)


def read(
    data: bytes,
    split: Callable[[bytes], Iterator[bytes]] = whole,
    max_size: int = 1 << 20,
    deflate: PerMessageDeflate | None = None,
) -> tuple[list[Event], FrameReader]:
    reader = FrameReader(max_size, deflate)
    events: list[Event] = []
    for piece in split(data):
        events += reader.receive(piece)
    return events, reader


def error_code(
    data: bytes,
    split: Callable[[bytes], Iterator[bytes]] = whole,
    max_size: int = 1 << 20,
    deflate: PerMessageDeflate | None = None,
) -> int:
    _, reader = read(data, split, max_size, deflate)
    assert reader.error is not None
    assert reader.close is None
    return reader.error.code


def server_deflate(offer: str = "permessage-deflate") -> PerMessageDeflate:
    deflate = PerMessageDeflate()
    assert deflate.accept(offer) is not None
    return deflate


def client_deflate(answer: str = "permessage-deflate") -> Connection:
    deflate = PerMessageDeflate()
    deflate.finalize(answer)
    return Connection(ConnectionType.CLIENT, [deflate])


class TestUnmask:
    """RFC 6455 section 5.3: the client's masking key, XORed in turn over the payload."""

    @pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 32, 125, 2047, 2048, 2049, 4096, 70001])
    def test_matches_naive_xor(self, size: int) -> None:
        data = random.Random(size).randbytes(size)
        assert unmask(data, MASK) == naive_mask(data, MASK)

    @given(st.binary(max_size=5000), st.binary(min_size=4, max_size=4))
    def test_is_its_own_inverse(self, data: bytes, mask: bytes) -> None:
        assert unmask(unmask(data, mask), mask) == data


class TestDataFrames:
    """RFC 6455 sections 5.2 and 5.6: lengths in all three forms, text and binary."""

    @pytest.mark.parametrize("split", SPLITS)
    @pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
    def test_binary_lengths(self, split: Callable[[bytes], Iterator[bytes]], size: int) -> None:
        if split is bytewise and size > 1000:
            split = chunks  # byte by byte through 64 KiB proves nothing more
        payload = random.Random(size).randbytes(size)
        events, reader = read(client_frame(OP_BINARY, payload) * 2, split)
        assert events == [(OP_BINARY, payload)] * 2
        assert reader.error is None

    @pytest.mark.parametrize("split", SPLITS)
    def test_text(self, split: Callable[[bytes], Iterator[bytes]]) -> None:
        text = "héllo wörld ✓ 🎉"
        events, _ = read(client_frame(OP_TEXT, text.encode()), split)
        assert events == [(OP_TEXT, text)]

    @pytest.mark.parametrize("split", SPLITS)
    def test_fragments_with_control_frames_between(
        self, split: Callable[[bytes], Iterator[bytes]]
    ) -> None:
        encoded = "aé🎉z".encode()
        data = (
            client_frame(OP_TEXT, encoded[:2], fin=False)  # splits "é" across frames
            + client_frame(OP_PING, b"p1")
            + client_frame(0x0, encoded[2:5], fin=False)  # and the emoji
            + client_frame(0xA, b"unsolicited pong")
            + client_frame(0x0, b"", fin=False)
            + client_frame(0x0, encoded[5:])
            + client_frame(OP_BINARY, b"\x00", fin=False)
            + client_frame(0x0, b"\xff")
        )
        events, reader = read(data, split)
        assert events == [(OP_PING, b"p1"), (OP_TEXT, "aé🎉z"), (OP_BINARY, b"\x00\xff")]
        assert reader.error is None

    @pytest.mark.parametrize("split", SPLITS)
    def test_wsproto_client(self, split: Callable[[bytes], Iterator[bytes]]) -> None:
        peer = Connection(ConnectionType.CLIENT)
        big = "x" * 3000 + "é"
        data = (
            peer.send(TextMessage("one"))
            + peer.send(BytesMessage(b"two" * 100))
            + peer.send(TextMessage(big, message_finished=False))
            + peer.send(Ping(b"!"))
            + peer.send(TextMessage(big))
        )
        events, _ = read(data, split)
        assert events == [
            (OP_TEXT, "one"),
            (OP_BINARY, b"two" * 100),
            (OP_PING, b"!"),
            (OP_TEXT, big + big),
        ]

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.one_of(st.text(max_size=300), st.binary(max_size=300)),
            min_size=1,
            max_size=6,
        ),
        st.integers(min_value=0),
    )
    def test_chunking_invariance(self, messages: list[str | bytes], seed: int) -> None:
        data = b"".join(
            client_frame(OP_TEXT, m.encode()) if isinstance(m, str) else client_frame(OP_BINARY, m)
            for m in messages
        )
        rng = random.Random(seed)
        reader = FrameReader(1 << 20)
        events: list[Event] = []
        index = 0
        while index < len(data):
            step = rng.randint(1, 40)
            events += reader.receive(data[index : index + step])
            index += step
        assert events == [(OP_TEXT if isinstance(m, str) else OP_BINARY, m) for m in messages]


def _encoded(message: str | bytes, parts: int, pings: bool) -> bytes:
    """``message`` as ``parts`` client frames (a ping between each, if asked)."""
    payload = message.encode() if isinstance(message, str) else message
    opcode = OP_TEXT if isinstance(message, str) else OP_BINARY
    size = -(-len(payload) // parts) or 1
    pieces = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
    frames = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        frames.append(client_frame(opcode if index == 0 else 0, piece, fin=last))
        if pings and not last:
            frames.append(client_frame(OP_PING, b"p%d" % index))
    return b"".join(frames)


_MESSAGES = st.lists(
    st.tuples(
        st.one_of(st.text(max_size=200), st.binary(max_size=200)),
        st.integers(min_value=1, max_value=4),
        st.booleans(),
    ),
    min_size=1,
    max_size=5,
)
_TAILS = st.sampled_from(
    [
        b"",
        client_frame(OP_TEXT, b"ok \xc3\x28"),  # 1007
        client_frame(OP_BINARY, b"x" * 150),  # 1009 at max_size=120
        client_frame(0x3),  # 1002
        client_frame(0x8, (1000).to_bytes(2, "big")),  # the close
    ]
)


def _code(reader: FrameReader) -> int | None:
    return reader.error.code if reader.error is not None else None


class TestFastAndReferencePaths:
    """``_fast_message`` (a whole unfragmented message in one read) and the
    reference path (``_data_frame``, ``_payload``) give the same events and the
    same error, however the bytes are cut: split reads never take the fast path."""

    @settings(max_examples=150, deadline=None)
    @given(_MESSAGES, _TAILS, st.lists(st.integers(min_value=1, max_value=60), max_size=40))
    def test_any_cutting_reads_the_same(
        self, messages: list[tuple[str | bytes, int, bool]], tail: bytes, cuts: list[int]
    ) -> None:
        data = b"".join(_encoded(*message) for message in messages) + tail
        whole_events, whole_reader = read(data, max_size=120)
        reader = FrameReader(120)
        events: list[Event] = []
        index = 0
        for step in [*cuts, len(data)]:
            events += reader.receive(data[index : index + step])
            index += step
        assert events == whole_events
        assert _code(reader) == _code(whole_reader)
        assert reader.close == whole_reader.close
        # Byte by byte no frame is ever whole: the reference path reads it all.
        assert read(data, bytewise, max_size=120)[0] == whole_events


class TestFramingErrors:
    """RFC 6455 sections 5.1 to 5.5: what fails the connection with 1002."""

    @pytest.mark.parametrize("split", SPLITS)
    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(client_frame(OP_TEXT, b"hi", masked=False), id="unmasked"),
            pytest.param(client_frame(OP_BINARY, b"x", length=b"\x7e\x00\x01"), id="long-16"),
            pytest.param(
                client_frame(OP_BINARY, b"x", length=b"\x7f" + (300).to_bytes(8, "big")),
                id="long-64",
            ),
            pytest.param(
                client_frame(OP_BINARY, b"", length=b"\x7f" + (1 << 63).to_bytes(8, "big")),
                id="64-bit-msb",
            ),
            *(
                pytest.param(client_frame(op, b"x"), id=f"opcode-{op:x}")
                for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)
            ),
            *(
                pytest.param(client_frame(OP_TEXT, b"x", rsv=r), id=f"rsv-{r:x}")
                for r in (16, 32, 64)
            ),
            pytest.param(client_frame(OP_PING, b"x", fin=False), id="fragmented-ping"),
            pytest.param(client_frame(0x8, b"", fin=False), id="fragmented-close"),
            pytest.param(client_frame(OP_PING, b"x" * 126), id="ping-126"),
            pytest.param(client_frame(0xA, b"x", rsv=64), id="pong-rsv"),
            pytest.param(client_frame(0x0, b"x"), id="continuation-first"),
            pytest.param(
                client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_TEXT, b"b"),
                id="text-inside-text",
            ),
            pytest.param(
                client_frame(OP_BINARY, b"a", fin=False) + client_frame(OP_BINARY, b"b"),
                id="binary-inside-binary",
            ),
            pytest.param(
                client_frame(OP_TEXT, b"a") + client_frame(0x0, b"b"),
                id="continuation-after-end",
            ),
        ],
    )
    def test_protocol_error(self, data: bytes, split: Callable[[bytes], Iterator[bytes]]) -> None:
        assert error_code(data, split) == 1002

    def test_fails_on_the_header_alone(self) -> None:
        # A bad header is refused before its payload arrives.
        assert error_code(client_frame(OP_PING, b"x" * 200)[:4]) == 1002
        assert error_code(client_frame(0x3, b"x" * 200)[:6]) == 1002

    def test_events_before_the_error_are_kept(self) -> None:
        data = client_frame(OP_TEXT, b"ok") + client_frame(OP_PING) + client_frame(0x3)
        events, reader = read(data)
        assert events == [(OP_TEXT, "ok"), (OP_PING, b"")]
        assert reader.error is not None

    def test_nothing_is_read_after_a_framing_error(self) -> None:
        reader = FrameReader(100)
        assert reader.receive(client_frame(0x3) + client_frame(OP_TEXT, b"late")) == []
        assert reader.receive(client_frame(OP_TEXT, b"later") + client_frame(0x8)) == []
        assert reader.close is None


class TestAfterFailure:
    """RFC 6455 section 7.1.7: after any error nothing more is read, not even a close."""

    @pytest.mark.parametrize("split", SPLITS)
    @pytest.mark.parametrize(
        ("failing", "code"),
        [
            pytest.param(client_frame(OP_BINARY, b"x" * 300), 1009, id="too-big"),
            pytest.param(
                client_frame(OP_TEXT, b"x" * 50, fin=False) + client_frame(0x0, b"y" * 60),
                1009,
                id="too-big-fragments",
            ),
            pytest.param(client_frame(OP_TEXT, b"\xff" + b"x" * 80), 1007, id="utf8"),
            pytest.param(
                client_frame(OP_TEXT, b"\xff", fin=False) + client_frame(0x0, b"x" * 80),
                1007,
                id="utf8-fragments",
            ),
            pytest.param(client_frame(0x3), 1002, id="reserved-opcode"),
        ],
    )
    def test_nothing_after_the_failure(
        self, failing: bytes, code: int, split: Callable[[bytes], Iterator[bytes]]
    ) -> None:
        data = (
            client_frame(OP_TEXT, b"before")
            + failing
            + client_frame(OP_TEXT, b"dropped")
            + client_frame(OP_PING, b"dropped")
            + client_frame(0x8, (1000).to_bytes(2, "big") + b"bye")
        )
        events, reader = read(data, split, max_size=100)
        assert events == [(OP_TEXT, "before")]
        assert reader.error is not None
        assert reader.error.code == code
        assert reader.close is None
        assert reader.receive(client_frame(0x8)) == []
        assert reader.close is None

    def test_invalid_close_reason_stops_reading(self) -> None:
        data = client_frame(0x8, b"\x03\xe8\xff") + client_frame(0x8)
        _, reader = read(data)
        assert reader.error is not None
        assert reader.error.code == 1007
        assert reader.close is None


class TestClose:
    """RFC 6455 sections 5.5.1 and 7.4: the peer's close frame."""

    @pytest.mark.parametrize("split", SPLITS)
    def test_close_stops_reading(self, split: Callable[[bytes], Iterator[bytes]]) -> None:
        close = client_frame(0x8, (4000).to_bytes(2, "big") + "bye é".encode())
        data = client_frame(OP_TEXT, b"first") + close + client_frame(OP_TEXT, b"after")
        events, reader = read(data, split)
        assert events == [(OP_TEXT, "first")]
        assert reader.close == (4000, "bye é")
        assert reader.error is None
        assert reader.receive(client_frame(OP_TEXT, b"more")) == []

    def test_close_without_code(self) -> None:
        assert read(client_frame(0x8))[1].close == (1005, "")

    @pytest.mark.parametrize(
        "code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999]
    )
    def test_valid_codes(self, code: int) -> None:
        assert parse_close(code.to_bytes(2, "big")) == (code, "")

    @pytest.mark.parametrize(
        "code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
    )
    def test_invalid_codes(self, code: int) -> None:
        assert error_code(client_frame(0x8, code.to_bytes(2, "big"))) == 1002

    def test_one_byte_payload(self) -> None:
        assert error_code(client_frame(0x8, b"\x03")) == 1002

    def test_reason_not_utf8(self) -> None:
        assert error_code(client_frame(0x8, b"\x03\xe8\xc3\x28")) == 1007


class TestUtf8:
    """RFC 6455 section 8.1: text must be UTF-8; fail as soon as it cannot be."""

    @pytest.mark.parametrize("split", SPLITS)
    def test_invalid_single_frame(self, split: Callable[[bytes], Iterator[bytes]]) -> None:
        assert error_code(client_frame(OP_TEXT, b"ok \xc3\x28"), split) == 1007

    @pytest.mark.parametrize(
        "payload", [b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xff"]
    )
    def test_surrogates_overlongs_and_out_of_range(self, payload: bytes) -> None:
        assert error_code(client_frame(OP_TEXT, payload)) == 1007

    def test_truncated_at_message_end(self) -> None:
        data = client_frame(OP_TEXT, b"a\xc3", fin=False) + client_frame(0x0, b"")
        assert error_code(data) == 1007

    def test_fails_fast_in_the_first_fragment(self) -> None:
        # The message is not finished, but it can no longer be valid.
        assert error_code(client_frame(OP_TEXT, b"ok\xed\xa0\x80", fin=False)) == 1007

    def test_fails_fast_inside_a_frame(self) -> None:
        data = client_frame(OP_TEXT, b"valid" + b"\xf8" + b"x" * 100)
        # The frame is cut right after the invalid byte: its rest never arrives.
        assert error_code(data[: 6 + 8 + 6]) == 1007

    def test_binary_is_not_checked(self) -> None:
        assert read(client_frame(OP_BINARY, b"\xc3\x28"))[0] == [(OP_BINARY, b"\xc3\x28")]


class TestMaxSize:
    """``max_size``: bytes of binary, characters of text; 1009 (RFC 6455 section 7.4.1)."""

    @pytest.mark.parametrize("split", SPLITS)
    def test_at_and_over_the_limit(self, split: Callable[[bytes], Iterator[bytes]]) -> None:
        assert read(client_frame(OP_BINARY, b"x" * 10), split, max_size=10)[0] == [
            (OP_BINARY, b"x" * 10)
        ]
        assert error_code(client_frame(OP_BINARY, b"x" * 11), split, max_size=10) == 1009

    def test_refused_on_the_header(self) -> None:
        # Only the header of a 1 MiB frame: refused before any payload is buffered.
        head = client_frame(OP_BINARY, b"x" * (1 << 20))[:14]
        assert error_code(head, max_size=1000) == 1009

    def test_text_counts_characters(self) -> None:
        assert read(client_frame(OP_TEXT, ("é" * 10).encode()), max_size=10)[0] == [
            (OP_TEXT, "é" * 10)
        ]
        assert error_code(client_frame(OP_TEXT, ("é" * 11).encode()), max_size=10) == 1009
        data = client_frame(OP_TEXT, ("é" * 6).encode(), fin=False) + client_frame(
            0x0, ("é" * 5).encode()
        )
        assert error_code(data, max_size=10) == 1009

    @pytest.mark.parametrize("split", SPLITS)
    def test_fragments_add_up(self, split: Callable[[bytes], Iterator[bytes]]) -> None:
        data = client_frame(OP_BINARY, b"x" * 6, fin=False) + client_frame(0x0, b"x" * 5)
        events, reader = read(data, split, max_size=10)
        assert events == []
        assert reader.error is not None
        assert reader.error.code == 1009


class TestDeflate:
    """RFC 7692: permessage-deflate, inflated within ``max_size``."""

    @pytest.mark.parametrize("split", [whole, chunks])
    @pytest.mark.parametrize(
        "answer",
        [
            "permessage-deflate",
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits=9; server_max_window_bits=10",
        ],
    )
    def test_round_trip(self, answer: str, split: Callable[[bytes], Iterator[bytes]]) -> None:
        server = server_deflate(answer)
        peer = client_deflate(answer)
        texts = ["compress me " * 100, "again " * 50, "é" * 40, ""]
        data = b"".join(peer.send(TextMessage(text)) for text in texts)
        data += peer.send(BytesMessage(b"\x00" * 500, message_finished=False))
        data += peer.send(BytesMessage(b"\x01" * 500))
        events, reader = read(data, split, deflate=server)
        assert reader.error is None
        assert events == [(OP_TEXT, text) for text in texts] + [
            (OP_BINARY, b"\x00" * 500 + b"\x01" * 500)
        ]
        writer = FrameWriter(server)
        out = b"".join(writer.message(text) for text in texts) + writer.message(b"\x02" * 300)
        assert len(out) < 300
        peer.receive_data(out)
        got = [e.data for e in peer.events() if isinstance(e, Message)]
        assert got == [*texts, b"\x02" * 300]

    def test_uncompressed_message_when_negotiated(self) -> None:
        events, _ = read(client_frame(OP_TEXT, b"plain"), deflate=server_deflate())
        assert events == [(OP_TEXT, "plain")]

    def test_rsv1_on_continuation_or_control(self) -> None:
        deflate = server_deflate()
        data = client_frame(OP_TEXT, b"", fin=False, rsv=64) + client_frame(0x0, b"", rsv=64)
        assert error_code(data, deflate=deflate) == 1002
        assert error_code(client_frame(OP_PING, rsv=64), deflate=server_deflate()) == 1002

    def test_bomb_is_refused(self) -> None:
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        payload = compressor.compress(b"\x00" * 100_000) + compressor.flush(zlib.Z_SYNC_FLUSH)
        data = client_frame(OP_BINARY, payload[:-4], rsv=64)
        assert len(data) < 200
        assert error_code(data, max_size=1000, deflate=server_deflate()) == 1009

    def test_invalid_deflate_data(self) -> None:
        data = client_frame(OP_BINARY, b"\xff\xff\xff\xff", rsv=64)
        assert error_code(data, deflate=server_deflate()) == 1007


class TestWriter:
    """RFC 6455 section 5.2: unmasked server frames, read back by a wsproto client."""

    @pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
    def test_lengths(self, size: int) -> None:
        writer = FrameWriter()
        peer = Connection(ConnectionType.CLIENT)
        peer.receive_data(writer.message(b"b" * size) + writer.message("t" * size))
        got = [(type(e), e.data) for e in peer.events() if isinstance(e, Message)]
        assert got == [(BytesMessage, b"b" * size), (TextMessage, "t" * size)]

    def test_control_frames(self) -> None:
        writer = FrameWriter()
        peer = Connection(ConnectionType.CLIENT)
        peer.receive_data(writer.ping(b"hi") + writer.pong(b"yo"))
        [ping, pong] = peer.events()
        assert isinstance(ping, Ping)
        assert ping.payload == b"hi"
        assert isinstance(pong, Pong)
        assert pong.payload == b"yo"

    def test_close_frames(self) -> None:
        assert close_frame(1005, "ignored") == b"\x88\x00"
        assert close_frame(1006) == frame(0x88, b"\x03\xe8")
        assert close_frame(1015) == frame(0x88, b"\x03\xe8")
        long = close_frame(4000, "é" * 100)  # 200 bytes of UTF-8, cut to 122
        assert len(long) == 2 + 2 + 122
        peer = Connection(ConnectionType.CLIENT)
        peer.receive_data(long)
        [close] = peer.events()
        assert isinstance(close, CloseConnection)
        assert (close.code, close.reason) == (4000, "é" * 61)

    def test_close_code_must_fit(self) -> None:
        with pytest.raises(OverflowError):
            close_frame(70000)
