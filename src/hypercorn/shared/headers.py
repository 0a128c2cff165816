"""Header helpers: validation of response headers, pseudo-headers, bodiless
responses, and the ``server_names`` check of a request's Host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

__all__ = [
    "build_and_validate_headers",
    "filter_pseudo_headers",
    "suppress_body",
    "valid_server_name",
]

# RFC 9110 section 5.6.2: token = 1*tchar.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 section 5.5: CR, LF and NUL are never valid in a field value.
_FORBIDDEN_IN_VALUE = re.compile(rb"[\r\n\x00]")

HeaderInput = Mapping[Any, Any] | Iterable[Any]


class ServerNamesConfig(Protocol):
    """What ``valid_server_name`` needs from the configuration."""

    @property
    def server_names(self) -> list[str]: ...


class HasHeaders(Protocol):
    """A request: ``headers`` is a mapping or an iterable of ``(name, value)`` pairs."""

    @property
    def headers(self) -> Any: ...


def _to_bytes(item: object, what: str, encoding: str) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        try:
            return item.encode(encoding)
        except UnicodeEncodeError:
            raise ValueError(f"header {what} {item!r} is not {encoding}-encodable") from None
    if isinstance(item, bytearray | memoryview):
        return bytes(item)
    raise TypeError(f"header {what} must be str or bytes, not {type(item).__name__}")


def _pair(item: Any) -> tuple[bytes, bytes]:
    if isinstance(item, str | bytes) or not isinstance(item, tuple | list) or len(item) != 2:
        raise TypeError(f"a header must be a (name, value) pair, not {item!r}")
    return _to_bytes(item[0], "name", "ascii"), _to_bytes(item[1], "value", "latin-1")


def _invalid_name(name: bytes) -> ValueError:
    if name.startswith(b":"):
        return ValueError(f"pseudo-header {name!r} is not valid here")
    if not name:
        return ValueError("a header name must not be empty")
    return ValueError(f"header name {name!r} is not a valid token")


_VALID_NAMES: dict[bytes, bytes] = {}
"""Header names found valid, with their lower-case form (apps repeat a few names)."""
_VALID_NAMES_MAX = 1024


def build_and_validate_headers(headers: HeaderInput) -> list[tuple[bytes, bytes]]:
    """Turn headers into validated ``(name, value)`` byte pairs with lower-case names.

    Args:
        headers: a mapping of names to values, or an iterable of ``(name, value)``
            pairs; names and values may be ``str`` (names ASCII, values latin-1)
            or ``bytes``.

    Returns:
        The headers, in order, as ``list[tuple[bytes, bytes]]``.

    Raises:
        ValueError: a pseudo-header (name starting with ``:``), an empty name, a
            name that is not an RFC 9110 token, or a value holding CR, LF or NUL.
        TypeError: an item that is not a pair of ``str``/``bytes``.
    """
    items: Iterable[Any]
    if type(headers) is list or type(headers) is tuple:
        items = headers  # what ASGI apps send: no ABC check needed
    elif isinstance(headers, Mapping):
        items = headers.items()
    else:
        items = headers
    if isinstance(items, str | bytes):
        raise TypeError("headers must be a mapping or an iterable of (name, value) pairs")
    validated: list[tuple[bytes, bytes]] = []
    append = validated.append
    token = _TOKEN.fullmatch
    valid_names = _VALID_NAMES
    forbidden = _FORBIDDEN_IN_VALUE.search
    for item in items:
        # Fast path: what ASGI apps send, a tuple of two bytes.
        if type(item) is tuple and len(item) == 2:
            name, value = item
            if type(name) is not bytes or type(value) is not bytes:
                name, value = _pair(item)
        else:
            name, value = _pair(item)
        lower = valid_names.get(name)
        if lower is None:
            if token(name) is None:
                raise _invalid_name(name)
            lower = name.lower()
            if len(valid_names) < _VALID_NAMES_MAX:
                valid_names[name] = lower
        if forbidden(value) is not None:
            raise ValueError(f"value of header {name!r} contains CR, LF or NUL")
        append((lower, value))
    return validated


def filter_pseudo_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Drop the HTTP/2 and HTTP/3 pseudo-headers (names starting with ``:``).

    Args:
        headers: ``(name, value)`` pairs.

    Returns:
        The other headers, in order.
    """
    return [(name, value) for name, value in headers if name[:1] not in (b":", ":")]


def suppress_body(method: str, status_code: int) -> bool:
    """Whether a response must be sent without a body (RFC 9110 section 6.4.1).

    Args:
        method: the request method (case-sensitive, RFC 9110 section 9.1).
        status_code: the response status.

    Returns:
        True for a response to HEAD, and for 1xx, 204 and 304 responses.
    """
    return method == "HEAD" or 100 <= status_code < 200 or status_code in (204, 304)


def _request_host(request: HasHeaders) -> str | None:
    headers = request.headers
    pairs: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    authority: str | None = None
    for name, value in pairs:
        key = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
        key = key.lower()
        if key == "host":
            return text
        if key == ":authority":
            authority = text
    return authority


def _host_forms(host: str) -> set[str]:
    """The host as sent, without its port, and an IPv6 literal without brackets."""
    host = host.strip().lower()
    forms = {host}
    if host.startswith("["):
        literal, bracket, _ = host.partition("]")
        if bracket:
            forms.update({literal + "]", literal[1:]})
    else:
        name, colon, port = host.rpartition(":")
        if colon and port.isdigit() and ":" not in name:
            forms.add(name)
    return {form.rstrip(".") for form in forms}


def _matches_wildcard(pattern: str, host: str) -> bool:
    suffix = pattern[1:]  # ".example.com"
    if not host.endswith(suffix) or len(host) == len(suffix):
        return False
    return all(host[: -len(suffix)].split("."))


def valid_server_name(config: ServerNamesConfig, request: HasHeaders) -> bool:
    """Whether the request's Host is one the server answers to.

    Args:
        config: has ``server_names``; empty means every name is served.
        request: has ``headers``, a mapping or ``(name, value)`` pairs (``str`` or
            ``bytes``); the Host header, else an ``:authority`` pseudo-header, is used.

    Returns:
        True when ``server_names`` is empty, or the host (any ``:port`` removed,
        compared case-insensitively) equals an entry or matches a ``*.domain``
        wildcard entry (one or more labels before ``domain``, not ``domain`` itself).
    """
    names = config.server_names
    if not names:
        return True
    host = _request_host(request)
    if host is None:
        return False
    forms = _host_forms(host)
    for entry in names:
        pattern = entry.strip().lower().rstrip(".")
        if pattern.startswith("*."):
            if any(_matches_wildcard(pattern, form) for form in forms):
                return True
        elif pattern in forms or pattern.strip("[]") in forms:
            return True
    return False
