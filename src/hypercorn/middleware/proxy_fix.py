"""``ProxyFixMiddleware``: the client, scheme and host as a trusted reverse proxy saw them.

Theory of operation
-------------------
Behind ``trusted_hops`` proxies, each proxy appends what it saw to the
forwarding headers, so only the last ``trusted_hops`` entries were written
by proxies we trust; anything before them came from the client and may be
forged. The middleware takes the entry ``trusted_hops`` from the end (the one
the outermost trusted proxy appended, describing the real client) and
ignores the rest. A header with fewer entries than ``trusted_hops`` did not
pass through every trusted proxy and is ignored whole, as is everything with
``trusted_hops=0``.

``legacy`` mode reads ``X-Forwarded-For`` (the client), ``X-Forwarded-Proto``
(the scheme) and ``X-Forwarded-Host`` (the host), each counted on its own,
repeated headers joined as one list. ``modern`` mode reads the RFC 7239
``Forwarded`` header only (``for``, ``proto`` and ``host`` of one element);
the ``X-Forwarded-*`` headers are then ignored, since a trusted proxy that
writes ``Forwarded`` would not vouch for them.

The scope is copied: ``client`` becomes ``(address, 0)``, ``scheme`` the
forwarded one (``http``/``https``, as ``ws``/``wss`` for a WebSocket; other
values are ignored) and the ``host`` header the forwarded host.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from hypercorn.typing import (
        ASGIFramework,
        ASGIReceiveCallable,
        ASGISendCallable,
        Scope,
        WWWScope,
    )

__all__ = ["ProxyFixMiddleware"]

_WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


class ProxyFixMiddleware:
    """Trust the forwarding headers of ``trusted_hops`` reverse proxies."""

    def __init__(
        self,
        app: ASGIFramework,
        mode: Literal["legacy", "modern"] = "legacy",
        trusted_hops: int = 1,
    ) -> None:
        """Wrap ``app``.

        Args:
            app: the ASGI application.
            mode: ``"legacy"`` for ``X-Forwarded-For/Proto/Host``, ``"modern"``
                for the RFC 7239 ``Forwarded`` header.
            trusted_hops: how many proxies in front of the server append to
                the headers (0 trusts none).

        Raises:
            ValueError: an unknown mode or a negative ``trusted_hops``.
        """
        if mode not in {"legacy", "modern"}:
            raise ValueError(f"mode must be 'legacy' or 'modern', not {mode!r}")
        if trusted_hops < 0:
            raise ValueError(f"trusted_hops must be 0 or more, not {trusted_hops!r}")
        self.app = app
        self.mode = mode
        self.trusted_hops = trusted_hops

    def __repr__(self) -> str:
        return (
            f"ProxyFixMiddleware({self.app!r}, mode={self.mode!r}, "
            f"trusted_hops={self.trusted_hops})"
        )

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Serve one ASGI scope with the forwarded values applied."""
        if scope["type"] == "http" or scope["type"] == "websocket":
            scope = self._fix(scope)
        await self.app(scope, receive, send)

    def _fix(self, scope: WWWScope) -> WWWScope:
        headers = list(scope["headers"])
        if self.mode == "modern":
            element = _trusted(_header_values(headers, b"forwarded"), self.trusted_hops)
            pairs = _forwarded_pairs(element) if element is not None else {}
            client, scheme, host = pairs.get("for"), pairs.get("proto"), pairs.get("host")
        else:
            client = _trusted(_header_values(headers, b"x-forwarded-for"), self.trusted_hops)
            scheme = _trusted(_header_values(headers, b"x-forwarded-proto"), self.trusted_hops)
            host = _trusted(_header_values(headers, b"x-forwarded-host"), self.trusted_hops)
        if client is None and scheme is None and host is None:
            return scope
        fixed: WWWScope = {**scope}  # type: ignore[assignment]
        if client:
            fixed["client"] = (_strip_port(client), 0)
        if scheme:
            schemes = _WEBSOCKET_SCHEMES if scope["type"] == "websocket" else _HTTP_SCHEMES
            fixed["scheme"] = schemes.get(scheme.lower(), scope["scheme"])
        if host:
            headers = [(name, value) for name, value in headers if name.lower() != b"host"]
            headers.append((b"host", host.encode("latin-1")))
            fixed["headers"] = headers
        return fixed


def _header_values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[str]:
    """The comma-separated entries of every ``name`` header, in order."""
    values: list[str] = []
    for key, value in headers:
        if key.lower() == name:
            values.extend(_split(value.decode("latin-1"), ","))
    return values


def _trusted(values: list[str], trusted_hops: int) -> str | None:
    """The entry the outermost trusted proxy appended, if every trusted proxy appended one."""
    if trusted_hops == 0 or len(values) < trusted_hops:
        return None
    return values[-trusted_hops] or None


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside double quotes (RFC 7239 quoted-string values)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def _forwarded_pairs(element: str) -> dict[str, str]:
    """The ``name=value`` pairs of one ``Forwarded`` element (RFC 7239 section 4)."""
    pairs: dict[str, str] = {}
    for pair in _split(element, ";"):
        name, equals, value = pair.partition("=")
        if not equals:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        pairs.setdefault(name.strip().lower(), value)
    return pairs


def _strip_port(node: str) -> str:
    """The address of a node: ``[2001:db8::1]:80`` -> ``2001:db8::1``, ``192.0.2.1:80`` -> ..."""
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else node
    if node.count(":") == 1:
        return node.partition(":")[0]
    return node
