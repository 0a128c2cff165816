"""A minimal ASGI peer for calling middleware directly: scopes, receive, recorded sends."""

from __future__ import annotations

from typing import Any


def http_scope(
    path: str = "/",
    *,
    query: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    scheme: str = "http",
    root_path: str = "",
    client: tuple[str, int] | None = ("10.0.0.9", 50000),
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": root_path,
        "headers": [(b"host", b"example.com"), *(headers or [])],
        "client": client,
        "server": ("127.0.0.1", 8000),
        "state": {},
        "extensions": {},
    }


def websocket_scope(path: str = "/", *, denial: bool = True, **kwargs: Any) -> dict[str, Any]:
    scope = http_scope(path, **{"scheme": "ws", **kwargs})
    scope["type"] = "websocket"
    del scope["method"]
    scope["subprotocols"] = []
    scope["extensions"] = {"websocket.http.response": {}} if denial else {}
    return scope


class Recorder:
    """``receive`` hands out one request; ``send`` records every message."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.sent[0].get("headers", []) if k == name), None)


async def call(app: Any, scope: dict[str, Any]) -> Recorder:
    recorder = Recorder()
    await app(scope, recorder.receive, recorder.send)
    return recorder


class Echo:
    """An ASGI app that answers 200 and keeps the scope it was called with."""

    def __init__(self, name: str = "echo") -> None:
        self.name = name
        self.scopes: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        if scope["type"] == "websocket":
            await send({"type": "websocket.accept"})
            return
        body = self.name.encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body, "more_body": False})
