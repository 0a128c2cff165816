"""The PEP 3333 environ of an ASGI ``http`` request (``build_environ``).

Compiled with the serving core; ``shared.wsgi`` builds one per WSGI call and
re-exports ``build_environ``.
"""

from __future__ import annotations

import io
import sys
from typing import Any, Final

from hypercorn.typing import HTTPScope

__all__ = ["build_environ"]

# The module's tables are Final: compiled code reaches them without a lookup in the
# module's namespace.
_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}

_HEADER_KEYS: Final[dict[bytes, str | None]] = {
    b"content-type": "CONTENT_TYPE",
    b"content-length": "CONTENT_LENGTH",
}
"""Request header name -> environ key (None: left out), filled as names are seen."""

_HEADER_KEYS_MAX: Final = 1024
"""Names remembered in ``_HEADER_KEYS``: clients choose them, so the cache is bounded."""


def _path_info(path: str, root_path: str) -> str:
    if root_path and (path == root_path or path.startswith(root_path + "/")):
        path = path[len(root_path) :]
    # PEP 3333 "Unicode issues": native strings carry the bytes as latin-1.
    return path.encode("utf-8", "surrogateescape").decode("latin-1")


def _header_key(raw_name: bytes) -> str | None:
    name = raw_name.decode("latin-1").lower()
    key = None if "_" in name or name.startswith(":") else "HTTP_" + name.upper().replace("-", "_")
    if len(_HEADER_KEYS) < _HEADER_KEYS_MAX:
        _HEADER_KEYS[raw_name] = key
    return key


_TEMPLATE: Final[dict[str, Any]] = {
    "SCRIPT_NAME": "",
    "wsgi.version": (1, 0),
    "wsgi.input_terminated": True,
    "wsgi.multithread": True,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
}
"""What every environ holds: copied, then the request's own keys are set."""

_PROTOCOLS: Final = {"1.0": "HTTP/1.0", "1.1": "HTTP/1.1", "2": "HTTP/2", "3": "HTTP/3"}


def build_environ(scope: HTTPScope, body: bytes) -> dict[str, Any]:
    """Build the PEP 3333 environ of an ASGI ``http`` request.

    Args:
        scope: the request's ASGI scope.
        body: the complete request body.

    Returns:
        The environ. Header names with ``_`` are left out, since ``HTTP_X_A``
        could otherwise be forged with ``x_a:`` where a proxy checked ``x-a:``;
        repeated headers are joined with ``", "`` (``cookie`` with ``"; "``).
    """
    environ = _TEMPLATE.copy()
    scheme = scope.get("scheme", "http")
    server = scope.get("server")
    if server is not None and server[1] is not None:
        environ["SERVER_NAME"] = str(server[0])
        environ["SERVER_PORT"] = str(server[1])
    else:
        environ["SERVER_NAME"] = "localhost"
        environ["SERVER_PORT"] = _DEFAULT_PORTS.get(scheme, "80")
    path = scope["path"]
    root_path = scope.get("root_path", "")
    if root_path:
        environ["SCRIPT_NAME"] = root_path.encode("utf-8", "surrogateescape").decode("latin-1")
        environ["PATH_INFO"] = _path_info(path, root_path)
    else:
        environ["PATH_INFO"] = path if path.isascii() else _path_info(path, root_path)
    environ["REQUEST_METHOD"] = scope["method"]
    query = scope.get("query_string", b"")
    environ["QUERY_STRING"] = query.decode("latin-1") if query else ""
    version = scope.get("http_version", "1.1")
    environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(version) or f"HTTP/{version}"
    environ["wsgi.url_scheme"] = scheme
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.errors"] = sys.stderr
    client = scope.get("client")
    if client is not None:
        environ["REMOTE_ADDR"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    keys = _HEADER_KEYS
    for raw_name, raw_value in scope.get("headers", ()):
        key = keys[raw_name] if raw_name in keys else _header_key(raw_name)
        if key is None:
            continue
        value = raw_value.decode("latin-1")
        if key in environ:
            separator = "; " if key == "HTTP_COOKIE" else ", "
            value = environ[key] + separator + value
        environ[key] = value
    if body or "CONTENT_LENGTH" in environ:
        # The body is complete: its length is known even for a chunked request.
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ
