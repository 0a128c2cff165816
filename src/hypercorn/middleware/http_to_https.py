"""``HTTPToHTTPSRedirectMiddleware``: plain-text clients are sent to the secure URL.

An ``http`` request on an ``http`` scheme is answered ``307 Temporary
Redirect`` (RFC 9110 section 15.4.8, which keeps the method and body) to the
same URL on ``https``: the configured host, or the request's ``Host``, then
the raw path and the query string. The path is the one the client asked
for: ``root_path`` is put in front of it unless it already starts with it
(a proxy that strips the mount point sends the rest; the server's own
``root_path`` and ``DispatcherMiddleware`` leave the path whole). A ``ws`` WebSocket is
denied with the same 307 to ``wss`` (``https`` over HTTP/2, whose WebSockets
are extended CONNECT requests) when the server offers the denial-response
extension, and closed otherwise. Secure requests and other scopes, lifespan
included, pass through to the application. The messages are Hypercorn's, to
the key: an empty body and a close without a code take the ASGI defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlunsplit

if TYPE_CHECKING:
    from hypercorn.typing import (
        ASGIFramework,
        ASGIReceiveCallable,
        ASGISendCallable,
        ASGISendEvent,
        Scope,
        WWWScope,
    )

__all__ = ["HTTPToHTTPSRedirectMiddleware"]

_PATH_SAFE = "/:@!$&'()*+,;=-._~%"


def _minimal(message: dict[str, Any]) -> ASGISendEvent:
    """A message without its optional keys (the ASGI defaults apply), as Hypercorn sends it."""
    return cast("ASGISendEvent", message)


class HTTPToHTTPSRedirectMiddleware:
    """Redirect ``http``/``ws`` requests to ``https``/``wss``; serve the others."""

    def __init__(self, app: ASGIFramework, host: str | None) -> None:
        """Wrap ``app``.

        Args:
            app: the ASGI application that serves the secure requests.
            host: the host (and port, if not 443) to redirect to; None to keep
                the request's ``Host``.
        """
        self.app = app
        self.host = host

    def __repr__(self) -> str:
        return f"HTTPToHTTPSRedirectMiddleware({self.app!r}, host={self.host!r})"

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Serve one ASGI scope (see the module docstring).

        Raises:
            ValueError: no host is configured and the request names none.
        """
        if scope["type"] == "http" and scope["scheme"] == "http":
            headers = [(b"location", self._new_url("https", scope).encode("latin-1"))]
            await send({"type": "http.response.start", "status": 307, "headers": headers})
            await send(_minimal({"type": "http.response.body"}))
        elif scope["type"] == "websocket" and scope["scheme"] == "ws":
            if "websocket.http.response" in scope.get("extensions", {}):
                scheme = "https" if scope.get("http_version") == "2" else "wss"
                headers = [(b"location", self._new_url(scheme, scope).encode("latin-1"))]
                await send(
                    {"type": "websocket.http.response.start", "status": 307, "headers": headers}
                )
                await send(_minimal({"type": "websocket.http.response.body"}))
            else:
                await send(_minimal({"type": "websocket.close"}))
        else:
            await self.app(scope, receive, send)

    def _new_url(self, scheme: str, scope: WWWScope) -> str:
        """The URL to redirect to (Hypercorn's method, kept with its name and type)."""
        host = self.host
        if host is None:
            host = next(
                (value.decode("latin-1") for name, value in scope["headers"] if name == b"host"),
                None,
            )
        if not host:
            raise ValueError("Host to redirect to cannot be determined")
        root_path = quote(scope.get("root_path", ""), safe=_PATH_SAFE)
        path = scope["raw_path"].decode("latin-1")
        if root_path and not (path == root_path or path.startswith(root_path + "/")):
            path = root_path + path  # a proxy stripped the mount point from the path
        query = scope["query_string"].decode("latin-1")
        return urlunsplit((scheme, host, path, query, ""))
