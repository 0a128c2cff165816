"""The PEP 3333 environ of an ASGI ``http`` request (``build_environ``).

Compiled with the serving core; ``shared.wsgi`` builds one per WSGI call and
re-exports ``build_environ``.
"""

from __future__ import annotations

import io
import sys
from typing import Any, Final

from hypercorn.typing import HTTPScope

__all__ = ["EMPTY_INPUT", "EmptyInput", "build_environ"]

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


class EmptyInput:
    """The ``wsgi.input`` of every request without a body: a read-only empty file.

    One instance serves every such request (a ``BytesIO`` each cost an object,
    tracked by the garbage collector, per request), so it holds no state: it
    reads as a ``BytesIO(b"")`` does (``read``, ``read1``, ``readinto``,
    ``readline``, ``readlines``, iteration; PEP 3333 asks for the first four
    reading calls) and ``close()`` leaves it open for the next request.
    """

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all of them by default): always ``b""``."""
        _check_size(size)
        return b""

    def read1(self, size: int | None = -1) -> bytes:
        """As ``read``."""
        _check_size(size)
        return b""

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` with what is left: nothing, so ``0``."""
        if memoryview(buffer).readonly:  # a TypeError for a non-buffer, as BytesIO gives
            raise TypeError("readinto() argument must be read-write bytes-like object")
        return 0

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line: always ``b""``."""
        _check_size(size)
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """Read the lines that are left: none."""
        _check_size(hint)
        return []

    def __iter__(self) -> EmptyInput:
        return self

    def __next__(self) -> bytes:
        raise StopIteration

    def readable(self) -> bool:
        """True: a request body can be read."""
        return True

    def writable(self) -> bool:
        """False: a request body is not written to."""
        return False

    def seekable(self) -> bool:
        """False: there is nowhere to seek to."""
        return False

    def tell(self) -> int:
        """The position: always ``0``."""
        return 0

    @property
    def closed(self) -> bool:
        """False: it serves the next request, whoever closed it."""
        return False

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return "<hypercorn empty wsgi.input>"


def _check_size(size: object) -> None:
    if size is not None and not isinstance(size, int):
        raise TypeError(f"argument should be integer or None, not '{type(size).__name__}'")


EMPTY_INPUT: Final = EmptyInput()
"""The ``wsgi.input`` of a request without a body."""

_WSGI_VERSION: Final = (1, 0)

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
    scheme = scope.get("scheme", "http")
    server = scope.get("server")
    if server is not None and server[1] is not None:
        server_name = str(server[0])
        server_port = str(server[1])
    else:
        server_name = "localhost"
        server_port = _DEFAULT_PORTS.get(scheme, "80")
    path = scope["path"]
    root_path = scope.get("root_path", "")
    if root_path:
        script_name = root_path.encode("utf-8", "surrogateescape").decode("latin-1")
        path_info = _path_info(path, root_path)
    else:
        script_name = ""
        path_info = path if path.isascii() else _path_info(path, root_path)
    query = scope.get("query_string", b"")
    version = scope.get("http_version", "1.1")
    # One dict display: the dict is made at its size, where a copy of a template
    # and a key set at a time would grow it twice.
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query.decode("latin-1") if query else "",
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": _PROTOCOLS.get(version) or f"HTTP/{version}",
        "wsgi.version": _WSGI_VERSION,
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(body) if body else EMPTY_INPUT,
        "wsgi.errors": sys.stderr,
        "wsgi.input_terminated": True,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
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
