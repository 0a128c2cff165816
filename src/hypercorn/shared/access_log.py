"""Access-log atoms: the values an access log format can name.

The atoms follow gunicorn's documentation (itself after Apache's combined log
format), so ``'%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'``
gives a line that log analyzers read. ``AccessLogAtoms`` is a ``dict`` so that
``format % atoms`` works, and so that a formatter can serialise it whole.

Cost matters: one is built per logged request. Request and response headers
are copied in eagerly (a handful of entries); environment variables, asked for
rarely, are looked up only when a ``{NAME}e`` atom is read. Any atom that is
not known reads as ``-`` rather than failing the log call.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

__all__ = ["AccessLogAtoms"]

_PHRASES = {status.value: status.phrase for status in HTTPStatus}

_time_cache: tuple[int, str] = (0, "")


def _log_time() -> str:
    """The current local time as ``[10/Oct/2000:13:55:36 -0700]``, formatted once a second."""
    global _time_cache
    now = time.time()
    second = int(now)
    if _time_cache[0] != second:
        _time_cache = (second, time.strftime("[%d/%b/%Y:%H:%M:%S %z]", time.localtime(now)))
    return _time_cache[1]


def _remote_host(client: Any) -> str:
    """The client's address: the host of a TCP peer, a unix socket's name, else ``-``."""
    if not client:
        return "-"
    if isinstance(client, (tuple, list)):
        return str(client[0]) if client[0] not in (None, "") else "-"
    return str(client)


def _user(authorization: str | None) -> str:
    """The user name of an HTTP Basic ``Authorization`` header (RFC 7617), else ``-``."""
    if not authorization:
        return "-"
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "basic":
        return "-"
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "-"
    user = decoded.partition(":")[0]
    return _printable(user) if user else "-"


def _printable(text: str) -> str:
    """``text`` with control characters escaped, so that a value cannot forge a log line."""
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    return str(value)


def _add_headers(atoms: dict[str, Any], headers: Iterable[Any], suffix: str) -> None:
    get = atoms.get
    for name, value in headers:
        try:  # ASGI headers are bytes; anything else takes the slow path
            key = f"{{{name.decode('latin-1').lower()}}}{suffix}"
            text = value.decode("latin-1")
        except AttributeError:
            key = f"{{{_text(name).lower()}}}{suffix}"
            text = _text(value)
        previous = get(key)
        atoms[key] = text if previous is None else f"{previous},{text}"


def _body_size(response: Mapping[str, Any] | None, content_length: str | None) -> int | None:
    if response is not None:
        size = response.get("body_size")
        if isinstance(size, int) and not isinstance(size, bool):
            return size
    if content_length is not None and content_length.isdigit():
        return int(content_length)
    return None


class AccessLogAtoms(dict[str, Any]):
    """The atoms of one request, keyed by name.

    Args:
        request_scope: the ASGI ``http`` or ``websocket`` scope.
        response: the ``http.response.start`` message (``status`` and ``headers``),
            optionally with an ``int`` ``body_size`` (the body bytes sent); for a
            WebSocket, ``status`` is 101 when accepted or the denial's status.
            ``None`` when no response started.
        request_time: seconds from the request's arrival to its end.

    Keys: ``h`` remote host, ``l`` ``-``, ``u`` Basic-auth user, ``t`` time,
    ``r``/``R`` request line, ``m`` method, ``U`` path, ``Uq`` path and query,
    ``q`` query, ``H`` protocol, ``s`` status, ``st`` status and phrase,
    ``S`` scheme, ``B``/``b`` body bytes (``b`` is ``-`` for none or unknown),
    ``f`` referer, ``a`` user agent, ``T``/``D``/``L`` duration in seconds,
    microseconds and decimal seconds, ``p`` ``<pid>``, ``{name}i`` and ``{name}o``
    request and response headers, ``{NAME}e`` environment variables.
    """

    def __init__(
        self,
        request_scope: Mapping[str, Any],
        response: Mapping[str, Any] | None,
        request_time: float,
    ) -> None:
        super().__init__()
        scope = request_scope
        _add_headers(self, scope.get("headers") or (), "i")
        status: Any = None
        if response is not None:
            _add_headers(self, response.get("headers") or (), "o")
            status = response.get("status")

        is_http = scope.get("type", "http") == "http"
        method = str(scope.get("method", "GET")) if is_http else "GET"
        version = scope.get("http_version")
        protocol = f"HTTP/{version}" if version else "-"
        path = str(scope.get("path", ""))
        raw_path = scope.get("raw_path")
        target = _text(raw_path) if raw_path else quote(path, safe="/%:@!$&'()*+,;=-._~")
        query = _text(scope.get("query_string") or b"")
        if query:
            target = f"{target}?{query}"
        request_line = _printable(f"{method} {target} {protocol}")
        scheme = scope.get("scheme") or ("http" if is_http else "ws")

        if status is None:
            status_code = status_line = "-"
        else:
            status_code = str(status)
            phrase = _PHRASES.get(status) if isinstance(status, int) else None
            status_line = f"{status_code} {phrase}" if phrase else status_code

        size = _body_size(response, self.get("{content-length}o"))
        get = self.get
        self.update(
            {
                "h": _remote_host(scope.get("client")),
                "l": "-",
                "u": _user(get("{authorization}i")),
                "t": _log_time(),
                "r": request_line,
                "R": request_line,
                "m": method,
                "U": _printable(path),
                "Uq": _printable(f"{path}?{query}" if query else path),
                "q": _printable(query),
                "H": protocol,
                "s": status_code,
                "st": status_line,
                "S": scheme,
                "B": str(size) if size is not None else "0",
                "b": str(size) if size else "-",
                "f": get("{referer}i", "-"),
                "a": get("{user-agent}i", "-"),
                "T": int(request_time),
                "D": int(request_time * 1_000_000),
                "L": f"{request_time:.6f}",
                "p": f"<{os.getpid()}>",
            }
        )

    def __missing__(self, key: str) -> Any:
        if key.startswith("{"):
            if key.endswith("}e"):
                return os.environ.get(key[1:-2], os.environ.get(key[1:-2].upper(), "-"))
            lowered = key.lower()
            if lowered != key:
                return self.get(lowered, "-")
        return "-"
