"""The demo application served by ``make run``.

It answers every request with a page showing what the server received: the
protocol, the client, the headers, and the features the server offers.
Run it with ``make run`` and open http://127.0.0.1:8000, or ``curl`` it.
"""

from __future__ import annotations

import html
import json
from typing import Any

FEATURES = [
    "HTTP/1.1 with keep-alive, pipelining, chunked bodies and 100-continue",
    "ASGI 3 (http, lifespan) and WSGI applications",
    "TLS with ALPN",
    "asyncio or uvloop event loops",
    "strict request parsing against request smuggling",
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["requests"] = 0
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        more = message.get("more_body", False)
    seen = {
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "method": scope["method"],
        "path": scope["path"],
        "query_string": scope["query_string"].decode("latin-1"),
        "client": scope["client"],
        "server": scope["server"],
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "body_bytes": len(body),
    }
    accept = dict(scope["headers"]).get(b"accept", b"")
    if b"text/html" in accept:
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in seen.items()
        )
        features = "".join(f"<li>{html.escape(f)}</li>" for f in FEATURES)
        payload = (
            "<!doctype html><html><head><meta charset='utf-8'><title>hypercorn demo</title>"
            "</head><body><h1>hypercorn is serving</h1><h2>Your request</h2>"
            f"<table>{rows}</table><h2>Features</h2><ul>{features}</ul></body></html>"
        ).encode()
        content_type = b"text/html; charset=utf-8"
    else:
        payload = json.dumps({"request": seen, "features": FEATURES}, indent=2).encode() + b"\n"
        content_type = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(payload)).encode()),
                (b"x-demo", b"hypercorn"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
