"""HTTP/2 frames on the wire (RFC 9113 sections 4 and 6): round trips and payload rules.

Frames built by ``h2_frames`` are read back by ``FrameReader`` whole, byte by
byte and in seeded chunks; hyperframe (h2's own frame library) parses what we
build and builds what we parse, so the two agree on the wire format.
"""

from __future__ import annotations

import struct

import hyperframe.frame
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypercorn.worker.protocol.h2_frames import (
    CONTINUATION,
    DATA,
    ENABLE_PUSH,
    END_HEADERS,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    HEADERS,
    INITIAL_WINDOW_SIZE,
    MAX_FRAME_SIZE,
    PADDED,
    PROTOCOL_ERROR,
    PUSH_PROMISE,
    FrameError,
    FrameReader,
    frame,
    goaway_frame,
    header_frames,
    parse_goaway,
    parse_priority,
    parse_settings,
    parse_window_update,
    rst_stream_frame,
    settings_frame,
    unpad,
    window_update_frame,
)
from tests.splits import bytewise, random_chunks, whole

SPLITS = [whole, bytewise, random_chunks(40)]

frames_strategy = st.lists(
    st.tuples(
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 2**31 - 1),
        st.binary(max_size=300),
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(frames=frames_strategy, split=st.sampled_from(SPLITS))
def test_frames_read_back_however_split(
    frames: list[tuple[int, int, int, bytes]], split: object
) -> None:
    data = b"".join(frame(*one) for one in frames)
    reader = FrameReader(16384)
    read: list[tuple[int, int, int, bytes]] = []
    for piece in split(data):  # type: ignore[operator]
        read += reader.feed(piece)
    assert read == frames and reader.buffered == 0


def test_reserved_bit_is_ignored() -> None:
    """RFC 9113 section 4.1: the R bit of the stream identifier is not part of it."""
    raw = struct.pack(">I", 8)[1:] + bytes((6, 0)) + struct.pack(">I", 0x80000003) + b"x" * 8
    assert FrameReader(16384).feed(raw) == [(6, 0, 3, b"x" * 8)]


@pytest.mark.parametrize("split", SPLITS)
def test_a_frame_above_the_limit_is_refused_from_its_header(split: object) -> None:
    """FRAME_SIZE_ERROR as soon as the header is read: the payload is never buffered."""
    reader = FrameReader(16384)
    head = frame(DATA, 0, 1, b"x" * 16385)[:9]
    with pytest.raises(FrameError) as error:
        for piece in split(head):  # type: ignore[operator]
            reader.feed(piece)
    assert error.value.code == FRAME_SIZE_ERROR


@settings(max_examples=100, deadline=None)
@given(
    kind=st.sampled_from([1, 3, 4, 6, 7, 8]),
    stream_id=st.integers(1, 2**31 - 1),
    payload=st.binary(max_size=64),
)
def test_hyperframe_reads_what_we_write(kind: int, stream_id: int, payload: bytes) -> None:
    built = {
        3: lambda: rst_stream_frame(stream_id, 7),
        4: lambda: settings_frame([(INITIAL_WINDOW_SIZE, 100), (ENABLE_PUSH, 0)]),
        6: lambda: frame(6, 1, 0, payload[:8].ljust(8, b"\0")),
        7: lambda: goaway_frame(stream_id, 11),
        8: lambda: window_update_frame(stream_id, 1 + len(payload)),
        1: lambda: frame(HEADERS, END_HEADERS, max(stream_id, 1), payload),
    }[kind]()
    parsed, length = hyperframe.frame.Frame.parse_frame_header(memoryview(built[:9]))
    parsed.parse_body(memoryview(built[9 : 9 + length]))
    assert parsed.serialize() == built


@settings(max_examples=100, deadline=None)
@given(block=st.binary(max_size=3000), size=st.integers(16, 1000), end=st.booleans())
def test_a_header_block_splits_into_continuations(block: bytes, size: int, end: bool) -> None:
    frames = FrameReader(16384).feed(b"".join(header_frames(5, block, end, size)))
    assert frames[0][0] == HEADERS and all(kind == CONTINUATION for kind, *_ in frames[1:])
    assert all(len(payload) <= size and stream == 5 for _, _, stream, payload in frames)
    assert b"".join(payload for *_, payload in frames) == block
    assert [bool(flags & END_HEADERS) for _, flags, _, _ in frames] == [
        index == len(frames) - 1 for index in range(len(frames))
    ]
    assert bool(frames[0][1] & END_STREAM) == end
    assert not any(flags & END_STREAM for _, flags, _, _ in frames[1:])


def test_push_promise_never_ends_the_stream() -> None:
    [(kind, flags, stream, payload)] = FrameReader(16384).feed(
        b"".join(header_frames(1, b"\0\0\0\x02\x82", True, 16384, PUSH_PROMISE))
    )
    assert (kind, flags, stream, payload) == (PUSH_PROMISE, END_HEADERS, 1, b"\0\0\0\x02\x82")


@pytest.mark.parametrize(
    ("flags", "payload", "expected"),
    [
        (0, b"abc", b"abc"),
        (PADDED, b"\x00abc", b"abc"),
        (PADDED, b"\x02abc\0\0", b"abc"),
        (PADDED, b"\x03\0\0\0", b""),
        (PADDED, b"\x04\0\0\0", PROTOCOL_ERROR),  # padding as long as the payload
        (PADDED, b"", PROTOCOL_ERROR),
    ],
)
def test_padding(flags: int, payload: bytes, expected: bytes | int) -> None:
    """RFC 9113 sections 6.1 and 6.2."""
    if isinstance(expected, int):
        with pytest.raises(FrameError) as error:
            unpad(flags, payload)
        assert error.value.code == expected
    else:
        assert unpad(flags, payload) == expected


SETTING = struct.Struct(">HL")


@pytest.mark.parametrize(
    ("settings", "code"),
    [
        ([(ENABLE_PUSH, 0), (ENABLE_PUSH, 1), (0xFF, 7)], None),  # unknown ids are kept, ignored
        ([(ENABLE_PUSH, 2)], PROTOCOL_ERROR),
        ([(0x8, 2)], PROTOCOL_ERROR),  # ENABLE_CONNECT_PROTOCOL
        ([(INITIAL_WINDOW_SIZE, 2**31 - 1)], None),
        ([(INITIAL_WINDOW_SIZE, 2**31)], FLOW_CONTROL_ERROR),
        ([(MAX_FRAME_SIZE, 16383)], PROTOCOL_ERROR),
        ([(MAX_FRAME_SIZE, 16384), (MAX_FRAME_SIZE, 2**24 - 1)], None),
        ([(MAX_FRAME_SIZE, 2**24)], PROTOCOL_ERROR),
    ],
)
def test_settings_values(settings: list[tuple[int, int]], code: int | None) -> None:
    """RFC 9113 section 6.5.2."""
    payload = b"".join(SETTING.pack(*one) for one in settings)
    if code is None:
        assert parse_settings(payload) == settings
    else:
        with pytest.raises(FrameError) as error:
            parse_settings(payload)
        assert error.value.code == code


@pytest.mark.parametrize(
    ("parse", "payload"),
    [
        (parse_settings, b"\0\x03\0"),
        (parse_window_update, b"\0\0\x01"),
        (parse_goaway, b"\0\0\0\0\0\0\0"),
        (lambda payload: parse_priority(1, payload), b"\0\0\0"),
    ],
)
def test_payloads_of_the_wrong_length(parse: object, payload: bytes) -> None:
    with pytest.raises(FrameError) as error:
        parse(payload)  # type: ignore[operator]
    assert error.value.code == FRAME_SIZE_ERROR


def test_a_stream_cannot_depend_on_itself() -> None:
    """RFC 9113 section 5.3.1."""
    parse_priority(3, struct.pack(">IB", 1, 16))
    with pytest.raises(FrameError) as error:
        parse_priority(3, struct.pack(">IB", 0x80000003, 16))  # exclusive bit set
    assert error.value.code == PROTOCOL_ERROR


def test_window_update_and_goaway_values() -> None:
    assert parse_window_update(struct.pack(">I", 0x80000005)) == 5  # reserved bit dropped
    assert parse_goaway(struct.pack(">II", 0x80000007, 11) + b"debug") == (7, 11)
