"""``ProxyFixMiddleware``: hop counting, legacy and RFC 7239 headers, untrusted input."""

from __future__ import annotations

from typing import Any

import pytest

from hypercorn.middleware import ProxyFixMiddleware
from tests.middleware.asgi_peer import Echo, call, http_scope, websocket_scope

pytestmark = pytest.mark.asyncio

ORIGINAL = ("10.0.0.9", 50000)


async def _fixed(
    headers: list[tuple[bytes, bytes]], *, scope: dict[str, Any] | None = None, **options: Any
) -> dict[str, Any]:
    echo = Echo()
    scope = scope or http_scope()
    scope["headers"] = [*scope["headers"], *headers]
    await call(ProxyFixMiddleware(echo, **options), scope)
    return echo.scopes[0]


def _host(scope: dict[str, Any]) -> list[bytes]:
    return [value for name, value in scope["headers"] if name == b"host"]


class TestLegacy:
    async def test_one_proxy_gives_client_scheme_and_host(self) -> None:
        scope = await _fixed(
            [
                (b"x-forwarded-for", b"203.0.113.7"),
                (b"x-forwarded-proto", b"https"),
                (b"x-forwarded-host", b"public.example"),
            ]
        )
        assert scope["client"] == ("203.0.113.7", 0)
        assert scope["scheme"] == "https"
        assert _host(scope) == [b"public.example"]

    @pytest.mark.parametrize(
        ("values", "hops", "client"),
        [
            ([b"spoofed, 203.0.113.7"], 1, "203.0.113.7"),  # the client wrote "spoofed"
            ([b"spoofed, 203.0.113.7, 10.1.1.1"], 2, "203.0.113.7"),
            ([b"spoofed, 203.0.113.7", b"10.1.1.1"], 2, "203.0.113.7"),  # repeated header
            ([b"203.0.113.7, 10.1.1.1"], 3, ORIGINAL[0]),  # fewer entries than hops: ignored
            ([b"203.0.113.7"], 0, ORIGINAL[0]),  # no trusted proxy
            ([b"2001:db8::7"], 1, "2001:db8::7"),
        ],
    )
    async def test_hops_are_counted_from_the_end(
        self, values: list[bytes], hops: int, client: str
    ) -> None:
        scope = await _fixed([(b"x-forwarded-for", v) for v in values], trusted_hops=hops)
        assert scope["client"][0] == client

    async def test_no_headers_leave_the_scope_alone(self) -> None:
        scope = await _fixed([])
        assert scope["client"] == ORIGINAL and scope["scheme"] == "http"
        assert _host(scope) == [b"example.com"]

    async def test_an_unknown_scheme_is_ignored(self) -> None:
        scope = await _fixed([(b"x-forwarded-proto", b"gopher")])
        assert scope["scheme"] == "http"

    async def test_a_websocket_gets_the_websocket_scheme(self) -> None:
        scope = await _fixed([(b"x-forwarded-proto", b"https")], scope=websocket_scope())
        assert scope["scheme"] == "wss"

    async def test_the_state_is_shared_not_copied(self) -> None:
        original = http_scope()
        scope = await _fixed([(b"x-forwarded-for", b"203.0.113.7")], scope=original)
        assert scope["state"] is original["state"] and original["client"] == ORIGINAL


class TestModern:
    async def test_forwarded_element_of_the_trusted_proxy(self) -> None:
        scope = await _fixed(
            [(b"forwarded", b'for=spoofed, For="[2001:db8::7]:4711";proto=https;host=pub.example')],
            mode="modern",
        )
        assert scope["client"] == ("2001:db8::7", 0)
        assert scope["scheme"] == "https" and _host(scope) == [b"pub.example"]

    async def test_two_hops_and_a_port(self) -> None:
        scope = await _fixed(
            [(b"forwarded", b"for=1.1.1.1, for=192.0.2.60:8080;proto=http, for=10.0.0.2")],
            mode="modern",
            trusted_hops=2,
        )
        assert scope["client"] == ("192.0.2.60", 0) and scope["scheme"] == "http"

    async def test_x_forwarded_headers_are_not_trusted_in_modern_mode(self) -> None:
        scope = await _fixed(
            [(b"x-forwarded-for", b"203.0.113.7"), (b"x-forwarded-proto", b"https")],
            mode="modern",
        )
        assert scope["client"] == ORIGINAL and scope["scheme"] == "http"


async def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="mode"):
        ProxyFixMiddleware(Echo(), mode="new")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="trusted_hops"):
        ProxyFixMiddleware(Echo(), trusted_hops=-1)
