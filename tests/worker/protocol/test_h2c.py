"""RFC 7540 section 3.2.1: which ``HTTP2-Settings`` fields an h2c upgrade accepts."""

from __future__ import annotations

import base64
import struct

import pytest

from hypercorn.worker.protocol.h2c import upgrade_settings


def encoded(*settings: tuple[int, int], pad: bool = False) -> bytes:
    payload = b"".join(struct.pack(">HI", identifier, value) for identifier, value in settings)
    value = base64.urlsafe_b64encode(payload)
    return value if pad else value.rstrip(b"=")


def field(value: bytes) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"host", b"a"), (b"http2-settings", value))


class TestAccepted:
    @pytest.mark.parametrize(
        "settings",
        [
            (),
            ((0x3, 100),),  # MAX_CONCURRENT_STREAMS: 6 bytes, 8 characters with padding
            ((0x3, 100), (0x4, 65535)),  # 12 bytes: no padding
            ((0x2, 0), (0x2, 1), (0x4, 2**31 - 1), (0x5, 2**14), (0x5, 2**24 - 1)),
            ((0x1, 0), (0x6, 2**32 - 1), (0xFF, 7)),  # any value; an unknown setting
        ],
    )
    def test_valid_payloads(self, settings: tuple[tuple[int, int], ...]) -> None:
        value = upgrade_settings(field(encoded(*settings)))
        assert value is not None
        payload = base64.urlsafe_b64decode(value)
        assert [struct.unpack(">HI", payload[i : i + 6]) for i in range(0, len(payload), 6)] == [
            *settings
        ]

    def test_padding_is_tolerated(self) -> None:
        assert upgrade_settings(field(encoded((0x3, 100), pad=True))) == encoded(
            (0x3, 100), pad=True
        )


class TestDeclined:
    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(b"!!!!", id="not base64url"),
            pytest.param(b"AAMAAABk+/==", id="base64 with + and /"),
            pytest.param(b"AAMAA", id="impossible base64 length"),
            pytest.param(base64.urlsafe_b64encode(b"\x00\x03\x00\x00\x00"), id="5 bytes"),
            pytest.param(encoded((0x2, 2)), id="ENABLE_PUSH=2"),
            pytest.param(encoded((0x4, 2**31)), id="INITIAL_WINDOW_SIZE=2^31"),
            pytest.param(encoded((0x5, 100)), id="MAX_FRAME_SIZE=100"),
            pytest.param(encoded((0x5, 2**24)), id="MAX_FRAME_SIZE=2^24"),
            pytest.param(encoded((0x8, 2)), id="ENABLE_CONNECT_PROTOCOL=2"),
        ],
    )
    def test_malformed(self, value: bytes) -> None:
        assert upgrade_settings(field(value)) is None

    def test_absent(self) -> None:
        assert upgrade_settings(((b"host", b"a"),)) is None

    def test_repeated(self) -> None:
        assert upgrade_settings((*field(b""), (b"http2-settings", b""))) is None
