"""``hypercorn.typing`` offers the names ASGI frameworks import from it."""

from __future__ import annotations

import hypercorn.typing

# Names imported by Quart, and the ASGI scope/event names of Hypercorn 0.18.
PUBLIC = {
    "ASGIFramework", "ASGIReceiveCallable", "ASGIReceiveEvent", "ASGISendCallable",
    "ASGISendEvent", "ASGIVersions", "ConnectionState", "Framework", "HTTPDisconnectEvent",
    "HTTPEarlyHintEvent", "HTTPRequestEvent", "HTTPResponseBodyEvent", "HTTPResponseStartEvent",
    "HTTPResponseTrailersEvent", "HTTPScope", "HTTPServerPushEvent", "LifespanScope",
    "LifespanShutdownCompleteEvent", "LifespanShutdownEvent", "LifespanShutdownFailedEvent",
    "LifespanStartupCompleteEvent", "LifespanStartupEvent", "LifespanStartupFailedEvent",
    "LifespanState", "ResponseSummary", "Scope", "WSGIFramework", "WWWScope",
    "WebsocketAcceptEvent", "WebsocketCloseEvent", "WebsocketConnectEvent",
    "WebsocketDisconnectEvent", "WebsocketReceiveEvent", "WebsocketResponseBodyEvent",
    "WebsocketResponseStartEvent", "WebsocketScope", "WebsocketSendEvent",
}  # fmt: skip


def test_public_names() -> None:
    assert set(hypercorn.typing.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(hypercorn.typing, name) is not None


def test_scope_keys_follow_the_asgi_spec() -> None:
    keys = set(hypercorn.typing.HTTPScope.__annotations__)
    assert {"type", "asgi", "http_version", "method", "scheme", "path", "raw_path"} <= keys
    assert {"query_string", "root_path", "headers", "client", "server", "state"} <= keys
