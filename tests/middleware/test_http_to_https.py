"""``HTTPToHTTPSRedirectMiddleware``: 307 with the whole URL, WebSocket denial or close."""

from __future__ import annotations

from typing import Any

import pytest

from hypercorn.middleware import HTTPToHTTPSRedirectMiddleware
from tests.middleware.asgi_peer import Echo, call, http_scope, websocket_scope

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    ("host", "scope", "location"),
    [
        (None, http_scope("/a/b"), b"https://example.com/a/b"),
        (None, http_scope("/a", query=b"x=1&y=%20"), b"https://example.com/a?x=1&y=%20"),
        ("secure.test:8443", http_scope("/", query=b"q"), b"https://secure.test:8443/?q"),
        (None, http_scope("/p%2Fq", root_path="/app"), b"https://example.com/app/p%2Fq"),
        (None, http_scope("/x", root_path="/caf\u00e9"), b"https://example.com/caf%C3%A9/x"),
        (None, http_scope("/app/x", root_path="/app"), b"https://example.com/app/x"),
        (None, http_scope("/app", root_path="/app"), b"https://example.com/app"),
        (
            None,
            http_scope("/application", root_path="/app"),
            b"https://example.com/app/application",
        ),
    ],
)
async def test_http_is_redirected_307_keeping_path_query_and_root_path(
    host: str | None, scope: dict[str, Any], location: bytes
) -> None:
    echo = Echo()
    recorder = await call(HTTPToHTTPSRedirectMiddleware(echo, host), scope)
    assert recorder.status == 307 and recorder.header(b"location") == location
    assert recorder.sent[1]["type"] == "http.response.body" and not echo.scopes


async def test_https_and_lifespan_reach_the_app() -> None:
    echo = Echo()
    middleware = HTTPToHTTPSRedirectMiddleware(echo, None)
    recorder = await call(middleware, http_scope("/", scheme="https"))
    assert recorder.status == 200
    recorder = await call(middleware, websocket_scope("/", scheme="wss"))
    assert recorder.sent == [{"type": "websocket.accept"}]
    assert [scope["scheme"] for scope in echo.scopes] == ["https", "wss"]


@pytest.mark.parametrize(("http_version", "scheme"), [("1.1", b"wss"), ("2", b"https")])
async def test_a_websocket_is_denied_with_a_redirect(http_version: str, scheme: bytes) -> None:
    scope = websocket_scope("/chat", query=b"room=1")
    scope["http_version"] = http_version
    recorder = await call(HTTPToHTTPSRedirectMiddleware(Echo(), None), scope)
    assert recorder.sent[0]["type"] == "websocket.http.response.start"
    assert recorder.status == 307
    assert recorder.header(b"location") == scheme + b"://example.com/chat?room=1"


async def test_a_websocket_without_the_denial_extension_is_closed() -> None:
    recorder = await call(
        HTTPToHTTPSRedirectMiddleware(Echo(), None), websocket_scope(denial=False)
    )
    assert [m["type"] for m in recorder.sent] == ["websocket.close"]


async def test_no_host_anywhere_is_an_error() -> None:
    scope = http_scope("/")
    scope["headers"] = []
    with pytest.raises(ValueError, match="Host"):
        await call(HTTPToHTTPSRedirectMiddleware(Echo(), None), scope)
