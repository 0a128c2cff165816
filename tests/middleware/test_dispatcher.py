"""``DispatcherMiddleware``: first matching prefix, root_path, 404, lifespan fan-out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hypercorn.config import Config
from hypercorn.middleware import DispatcherMiddleware
from hypercorn.shared.errors import LifespanFailureError
from hypercorn.worker.asgi.lifespan import Lifespan, LifespanState
from tests.middleware.asgi_peer import Echo, call, http_scope, websocket_scope

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    ("path", "chosen", "root_path"),
    [
        ("/api/v2/items", "v2", "/mount/api/v2"),
        ("/api/v1", "api", "/mount/api"),
        ("/api", "api", "/mount/api"),
        ("/other", "catch-all", "/mount"),
    ],
)
async def test_the_first_matching_prefix_wins_and_extends_root_path(
    path: str, chosen: str, root_path: str
) -> None:
    apps = {"/api/v2": Echo("v2"), "/api": Echo("api"), "": Echo("catch-all")}
    recorder = await call(DispatcherMiddleware(apps), http_scope(path, root_path="/mount"))
    assert recorder.sent[1]["body"] == chosen.encode()
    (scope,) = next(app for app in apps.values() if app.name == chosen).scopes
    assert scope["root_path"] == root_path
    assert scope["path"] == path  # left whole, as Hypercorn does


async def test_mount_order_is_the_mappings_not_the_longest_prefix() -> None:
    apps = {"/api": Echo("api"), "/api/v2": Echo("v2")}
    recorder = await call(DispatcherMiddleware(apps), http_scope("/api/v2/x"))
    assert recorder.sent[1]["body"] == b"api"


async def test_an_unmatched_path_is_404() -> None:
    recorder = await call(DispatcherMiddleware({"/api": Echo()}), http_scope("/nope"))
    assert recorder.status == 404 and recorder.header(b"content-length") == b"0"
    assert recorder.sent[1] == {"type": "http.response.body"}  # empty and last


async def test_an_unmatched_websocket_is_denied_404_or_closed() -> None:
    app = DispatcherMiddleware({"/api": Echo()})
    denied = await call(app, websocket_scope("/nope"))
    assert denied.sent[0]["type"] == "websocket.http.response.start" and denied.status == 404
    closed = await call(app, websocket_scope("/nope", denial=False))
    assert [m["type"] for m in closed.sent] == ["websocket.close"]


async def test_a_websocket_is_dispatched_like_a_request() -> None:
    echo = Echo()
    recorder = await call(DispatcherMiddleware({"/ws": echo}), websocket_scope("/ws/chat"))
    assert recorder.sent == [{"type": "websocket.accept"}]
    assert echo.scopes[0]["root_path"] == "/ws"


class LifespanApp:
    """Answers each lifespan phase when its event is set (at once by default)."""

    def __init__(self, *, fail: str | None = None) -> None:
        self.startup_gate = asyncio.Event()
        self.startup_gate.set()
        self.fail = fail
        self.seen: list[str] = []
        self.scope: dict[str, Any] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            raise TypeError("http only")
        self.scope = scope
        while True:
            message = await receive()
            self.seen.append(message["type"])
            if message["type"] == "lifespan.startup":
                await self.startup_gate.wait()
                if self.fail is not None:
                    await send({"type": "lifespan.startup.failed", "message": self.fail})
                    return
                scope["state"][id(self)] = True
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return


def _lifespan(app: Any, state: dict[str, Any] | None = None) -> Lifespan:
    return Lifespan(app, Config.from_mapping(errorlog=None), {} if state is None else state)


async def test_lifespan_reaches_every_app_and_completes_once_all_did() -> None:
    slow, fast = LifespanApp(), LifespanApp()
    slow.startup_gate.clear()
    state: dict[str, Any] = {}
    lifespan = _lifespan(DispatcherMiddleware({"/slow": slow, "": fast}), state)
    startup = asyncio.create_task(lifespan.startup())
    deadline = asyncio.get_running_loop().time() + 5
    while fast.seen != ["lifespan.startup"] or slow.seen != ["lifespan.startup"]:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.01)
    assert not startup.done()  # the fast app answered; the slow one has not
    slow.startup_gate.set()
    await asyncio.wait_for(startup, 5)
    assert lifespan.state is LifespanState.STARTED
    assert state == {id(slow): True, id(fast): True}  # one shared state dict
    await asyncio.wait_for(lifespan.shutdown(), 5)
    assert lifespan.state is LifespanState.STOPPED
    assert fast.seen == slow.seen == ["lifespan.startup", "lifespan.shutdown"]


async def test_a_failed_startup_is_reported_with_its_mount() -> None:
    lifespan = _lifespan(
        DispatcherMiddleware({"/a": LifespanApp(), "/b": LifespanApp(fail="no db")})
    )
    with pytest.raises(LifespanFailureError, match="/b: no db"):
        await asyncio.wait_for(lifespan.startup(), 5)
    await lifespan.close()


async def _raises(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise TypeError("http only")


@pytest.mark.parametrize("silent", [Echo(), _raises], ids=["wrong-message", "raises"])
async def test_an_app_without_lifespan_does_not_hold_the_others(silent: Any) -> None:
    speaking = LifespanApp()
    lifespan = _lifespan(DispatcherMiddleware({"/wsgi-era": silent, "": speaking}))
    await asyncio.wait_for(lifespan.startup(), 5)
    assert lifespan.state is LifespanState.STARTED
    await asyncio.wait_for(lifespan.shutdown(), 5)
    assert speaking.seen == ["lifespan.startup", "lifespan.shutdown"]
