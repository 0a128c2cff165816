"""``CachingDecoder`` decodes every block exactly as ``hpack.Decoder`` does (RFC 7541)."""

from __future__ import annotations

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hypercorn.worker.protocol.h2_hpack import (
    MAX_BLOCKS,
    CachingDecoder,
    CachingEncoder,
    indexed_only,
)


class TestIndexedOnly:
    """RFC 7541 sections 5.1 and 6.1: indexed field representations."""

    @pytest.mark.parametrize(
        "block",
        [b"", b"\x82\x84\x86", b"\xbe\xbf", b"\xff\x00", b"\x82\xff\x81\x01\x84", b"\xfe"],
    )
    def test_indexed_blocks(self, block: bytes) -> None:
        assert indexed_only(block)

    @pytest.mark.parametrize(
        "block",
        [
            b"\x82\x41\x01a",  # literal with incremental indexing
            b"\x82\x04\x01a",  # literal without indexing
            b"\x3f\xe1\x1f",  # dynamic table size update
            b"\x82\x10\x01a\x01b",  # literal never indexed
            b"\xff",  # truncated index
            b"\xff\x80",  # truncated index
        ],
    )
    def test_other_blocks(self, block: bytes) -> None:
        assert not indexed_only(block)


FIELDS = st.lists(
    st.tuples(
        st.sampled_from([b":method", b":path", b"accept", b"x-a", b"x-b", b"cookie"]),
        st.sampled_from([b"GET", b"/", b"/a", b"*/*", b"1", b"2" * 40]),
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(
    requests=st.lists(st.tuples(FIELDS, st.integers(0, 3)), min_size=1, max_size=25),
    table_sizes=st.lists(st.sampled_from([0, 64, 256, 4096]), max_size=3),
)
def test_decodes_as_hpack_does(
    requests: list[tuple[list[tuple[bytes, bytes]], int]], table_sizes: list[int]
) -> None:
    """Repeated, varied and table-resizing blocks decode to hpack's fields."""
    encoder = hpack.Encoder()
    reference = hpack.Decoder()
    decoder = CachingDecoder(65536)
    sizes = iter(table_sizes)
    for fields, repeat in requests:
        if repeat == 3 and (size := next(sizes, None)) is not None:
            encoder.header_table_size = size
        for _ in range(repeat + 1):
            block = encoder.encode(fields)
            assert decoder.decode(block, raw=True) == reference.decode(block, raw=True)
    assert len(decoder._blocks) <= MAX_BLOCKS


def test_a_repeated_block_is_decoded_once() -> None:
    encoder = hpack.Encoder()
    decoder = CachingDecoder(65536)
    fields = [(b":method", b"GET"), (b"x-a", b"1")]
    decoder.decode(encoder.encode(fields), raw=True)  # adds x-a to the table
    block = encoder.encode(fields)
    assert indexed_only(block)
    first = decoder.decode(block, raw=True)
    assert decoder.decode(block, raw=True) == first == [(b":method", b"GET"), (b"x-a", b"1")]
    assert list(decoder._blocks) == [block]


def test_a_changing_block_empties_the_cache() -> None:
    encoder = hpack.Encoder()
    decoder = CachingDecoder(65536)
    decoder.decode(encoder.encode([(b"x-a", b"1")]), raw=True)
    decoder.decode(encoder.encode([(b"x-a", b"1")]), raw=True)
    assert decoder._blocks
    decoder.decode(encoder.encode([(b"x-b", b"2")]), raw=True)
    assert not decoder._blocks


def test_a_smaller_limit_is_applied_to_a_kept_block() -> None:
    encoder = hpack.Encoder()
    decoder = CachingDecoder(65536)
    fields = [(b"x-a", b"1" * 100)]
    decoder.decode(encoder.encode(fields), raw=True)
    block = encoder.encode(fields)
    decoder.decode(block, raw=True)
    decoder.max_header_list_size = 50
    with pytest.raises(hpack.OversizedHeaderListError):
        decoder.decode(block, raw=True)


def test_a_failing_block_is_not_kept() -> None:
    decoder = CachingDecoder(65536)
    for _ in range(2):
        with pytest.raises(hpack.HPACKDecodingError):
            decoder.decode(b"\xbe", raw=True)  # index 62: the dynamic table is empty
    assert not decoder._blocks


@settings(max_examples=150, deadline=None)
@given(
    responses=st.lists(st.tuples(FIELDS, st.integers(0, 3)), min_size=1, max_size=25),
    table_sizes=st.lists(st.sampled_from([0, 64, 256, 4096]), max_size=3),
)
def test_encodes_as_hpack_does(
    responses: list[tuple[list[tuple[bytes, bytes]], int]], table_sizes: list[int]
) -> None:
    """Repeated and varied field lists, and table size changes from the peer,
    encode to hpack's bytes, which a decoder reads back."""
    reference = hpack.Encoder()
    encoder = CachingEncoder()
    decoder = hpack.Decoder()
    sizes = iter(table_sizes)
    for fields, repeat in responses:
        if repeat == 3 and (size := next(sizes, None)) is not None:
            reference.header_table_size = encoder.header_table_size = size
        for _ in range(repeat + 1):
            block = encoder.encode(list(fields))
            assert block == reference.encode(list(fields))
            assert decoder.decode(block, raw=True) == fields
    assert len(encoder._blocks) <= MAX_BLOCKS


def test_a_repeated_head_is_encoded_once() -> None:
    encoder = CachingEncoder()
    head = [(b":status", b"200"), (b"content-type", b"text/plain")]
    encoder.encode(list(head))  # adds content-type to the table
    block = encoder.encode(list(head))
    assert indexed_only(block) and encoder._blocks
    assert encoder.encode(list(head)) is block


def test_a_table_resize_is_announced_before_a_kept_block() -> None:
    """RFC 7541 section 4.2: the size update starts the next block."""
    encoder = CachingEncoder()
    head = [(b":status", b"200")]
    block = encoder.encode(list(head))
    assert encoder.encode(list(head)) is block
    encoder.header_table_size = 0
    resized = encoder.encode(list(head))
    assert resized != block and resized.endswith(block) and not encoder._blocks
