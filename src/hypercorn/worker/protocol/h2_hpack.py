"""HPACK that remembers the header blocks a connection repeats (RFC 7541).

Theory of operation
-------------------
A client that sends the same request again sends, once its dynamic table
holds every field, the same short header block made only of indexed field
representations (RFC 7541 section 6.1). Such a block leaves the dynamic
table as it was, so while the table does not change it always decodes to the
same fields. ``CachingDecoder`` keeps those blocks with what they decoded to;
``CachingEncoder`` does the same the other way, for the response heads a
server repeats (the same status, type and length, the same ``date`` within
a second).

The table changes only through a block that is not made of indexed fields
alone (a literal with incremental indexing, a table size update), so every
such block empties the cache before it is decoded, and a block is kept only
if it is indexed-only. A block found in the cache was therefore decoded
against the table as it still is; the limits it was checked against
(``max_header_list_size``, ``max_allowed_table_size``) are compared too.
A block whose decoding fails is not kept. The encoder's table also changes
size when the peer's SETTINGS say so: a table of another size, or one with a
size update still to announce, is never served from the cache. Everything
else is ``hpack``'s.
"""

from __future__ import annotations

from typing import Any

import hpack

MAX_BLOCKS = 64
"""Most header blocks a connection keeps (the cache is then emptied)."""

MAX_BLOCK_SIZE = 256
"""Longest header block kept: indexed-only blocks are a byte or two per field."""

_ONE_BYTE_INDEXED = bytes(range(0x80, 0xFF))
"""The bytes that are each a whole indexed field representation (index 0 to 126;
0x80, index 0, is an error that ``hpack`` raises before the block is kept)."""


def indexed_only(block: bytes) -> bool:
    """True if ``block`` is a sequence of indexed field representations only.

    Args:
        block: an HPACK header block.

    Returns:
        Whether decoding it reads the dynamic table without changing it
        (RFC 7541 section 6.1).
    """
    if not block.translate(None, _ONE_BYTE_INDEXED):
        return True  # the common case: every index fits in the first byte
    index = 0
    size = len(block)
    while index < size:
        octet = block[index]
        if not octet & 0x80:
            return False
        index += 1
        if octet == 0xFF:  # the index continues (RFC 7541 section 5.1)
            while index < size and block[index] & 0x80:
                index += 1
            index += 1
    return index == size


class CachingDecoder(hpack.Decoder):
    """An ``hpack.Decoder`` that decodes a repeated indexed-only block once."""

    def __init__(self, max_header_list_size: int) -> None:
        super().__init__(max_header_list_size)
        self._blocks: dict[bytes, tuple[Any, ...]] = {}
        self._limits = (max_header_list_size, self.max_allowed_table_size)

    def decode(self, data: bytes, raw: bool = False) -> list[Any]:
        """Decode ``data`` as ``hpack.Decoder.decode`` does.

        Raises:
            hpack.HPACKDecodingError: as ``hpack.Decoder.decode``.
        """
        blocks = self._blocks
        limits = (self.max_header_list_size, self.max_allowed_table_size)
        if limits != self._limits:
            blocks.clear()
            self._limits = limits
        elif raw and (hit := blocks.get(data)) is not None:
            return list(hit)
        if not indexed_only(data):
            blocks.clear()  # the dynamic table may change
            return list(super().decode(data, raw))
        headers = list(super().decode(data, raw))
        if raw and len(data) <= MAX_BLOCK_SIZE:
            if len(blocks) >= MAX_BLOCKS:
                blocks.clear()
            blocks[bytes(data)] = tuple(headers)
        return headers


class CachingEncoder(hpack.Encoder):
    """An ``hpack.Encoder`` that encodes a repeated, fully indexed field list once."""

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[tuple[Any, ...], bytes] = {}
        self._table_size = self.header_table_size

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        """Encode ``headers`` as ``hpack.Encoder.encode`` does.

        Args:
            headers: the fields, a sequence of (name, value) pairs (or what
                ``hpack`` takes).
            huffman: whether literals are Huffman-coded.

        Returns:
            The header block.
        """
        table = self.header_table
        if type(headers) is not list or table.resized or table.maxsize != self._table_size:
            self._blocks.clear()
            self._table_size = table.maxsize
            return super().encode(headers, huffman)
        blocks = self._blocks
        key = (huffman, *headers)
        if (hit := blocks.get(key)) is not None:
            return hit
        block = super().encode(headers, huffman)
        if not indexed_only(block):
            blocks.clear()  # the dynamic table changed
        elif len(block) <= MAX_BLOCK_SIZE:
            if len(blocks) >= MAX_BLOCKS:
                blocks.clear()
            blocks[key] = block
        return block
