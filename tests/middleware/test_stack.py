"""The middleware stacked in front of a real server: WSGI mount, dispatch, lifespan."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hypercorn.middleware import (
    AsyncioWSGIMiddleware,
    DispatcherMiddleware,
    HTTPToHTTPSRedirectMiddleware,
    ProxyFixMiddleware,
)
from tests.e2e.conftest import running_server, scaled

pytestmark = pytest.mark.asyncio


def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}|{environ['QUERY_STRING']}"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            scope["state"]["started"] = True
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = f"{scope['client'][0]} {scope['state'].get('started')}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_a_stack_of_middleware_over_a_real_socket() -> None:
    wsgi = AsyncioWSGIMiddleware(wsgi_app, max_body_size=10)
    assert wsgi.max_body_size == 10
    app = DispatcherMiddleware(
        {
            "/legacy": wsgi,
            "/old": HTTPToHTTPSRedirectMiddleware(asgi_app, "secure.test"),
            "": ProxyFixMiddleware(asgi_app),
        }
    )
    async with running_server(app) as server, httpx.AsyncClient(timeout=scaled(5)) as client:
        response = await client.get(f"{server.url}/legacy/a/b?x=1")
        assert response.text == "/legacy|/a/b|x=1"
        response = await client.post(f"{server.url}/legacy/", content=b"x" * 11)
        assert response.status_code == 413
        response = await client.get(f"{server.url}/old/page?q=2")
        assert response.status_code == 307
        assert response.headers["location"] == "https://secure.test/old/page?q=2"
        response = await client.get(server.url, headers={"x-forwarded-for": "192.0.2.1"})
        assert response.text == "192.0.2.1 True"  # lifespan state reached the request
