"""A WebSocket echo server: every text or binary message comes straight back.

Run it with ``hypercorn examples/echo.py:app``. HTTP requests get a short page.
The Autobahn conformance test and the WebSocket benchmark drive this app.
"""

from __future__ import annotations

from typing import Any


async def app(scope: Any, receive: Any, send: Any) -> None:
    """Echo WebSocket messages; answer HTTP with a one-line page."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send(
                {"type": "websocket.send", "bytes": message["bytes"], "text": message["text"]}
            )
    elif scope["type"] == "http":
        while (await receive()).get("more_body"):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        await send({"type": "http.response.body", "body": b"WebSocket echo server\n"})
