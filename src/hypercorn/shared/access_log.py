"""Access-log atoms: the values an access log format can name.

The atoms are Hypercorn's (after gunicorn's, themselves after Apache's log
formats) with Hypercorn's meanings, so a format written for Hypercorn gives
the same line here. The default format, ``'%(h)s %(l)s %(l)s %(t)s "%(r)s"
%(s)s %(b)s "%(f)s" "%(a)s"'``, is Hypercorn's. Where gunicorn gives an atom
another meaning (``h`` is the client's host alone there, ``r`` the raw request
line), ``docs/guide/logging.md`` shows the format that writes gunicorn's line.
``AccessLogAtoms`` is a ``dict`` so that ``format % atoms`` works, and so that
a formatter can serialise it whole.

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


def _remote_addr(client: Any) -> str:
    """The client's address as ``host:port`` (``[v6]:port``), a unix socket's name, or ``-``."""
    if not client:
        return "-"
    if isinstance(client, (tuple, list)):
        if len(client) >= 2:
            host = client[0]
            if host in (None, ""):
                return "-"
            host = f"[{host}]" if ":" in str(host) else host
            return f"{host}:{client[1]}"
        return str(client[0]) if client[0] not in (None, "") else "-"
    return str(client)


def _environ(name: str) -> str:
    """An environment variable by name, whatever its case (Hypercorn's ``{name}e``)."""
    value = os.environ.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    return next((v for k, v in os.environ.items() if k.lower() == lowered), "-")


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

    Keys: ``h`` remote address (``host:port``), ``l`` ``-``, ``u`` Basic-auth
    user, ``t`` time, ``r`` request line (``METHOD path protocol``, e.g.
    ``GET /a 1.1``), ``R`` the same with the query, ``m`` method, ``U`` path,
    ``Uq`` path and query, ``q`` query, ``H`` protocol (the ASGI
    ``http_version``: ``1.1``, ``2``, ``3``), ``s`` status, ``st`` the status's
    phrase (``OK``; ``<???599???>`` for a code with none), ``S`` scheme,
    ``B``/``b`` body bytes (``b`` is ``-`` for none or unknown), ``f`` referer,
    ``a`` user agent, ``T``/``D``/``L`` duration in seconds, microseconds and
    decimal seconds, ``p`` ``<pid>``, ``{name}i`` and ``{name}o`` request and
    response headers, ``{NAME}e`` environment variables (any case).
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
        protocol = str(scope.get("http_version") or "-")
        path = _printable(str(scope.get("path", "")))
        query = _printable(_text(scope.get("query_string") or b""))
        path_query = f"{path}?{query}" if query else path
        scheme = scope.get("scheme") or ("http" if is_http else "ws")

        if status is None:
            status_code = phrase = "-"
        else:
            status_code = str(status)
            known = _PHRASES.get(status) if isinstance(status, int) else None
            phrase = known or f"<???{status_code}???>"

        size = _body_size(response, self.get("{content-length}o"))
        get = self.get
        self.update(
            {
                "h": _remote_addr(scope.get("client")),
                "l": "-",
                "u": _user(get("{authorization}i")),
                "t": _log_time(),
                "r": f"{method} {path} {protocol}",
                "R": f"{method} {path_query} {protocol}",
                "m": method,
                "U": path,
                "Uq": path_query,
                "q": query,
                "H": protocol,
                "s": status_code,
                "st": phrase,
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
                return _environ(key[1:-2])
            lowered = key.lower()
            if lowered != key:
                return self.get(lowered, "-")
        return "-"
