"""The rules behind ``shared/headers.py``, compiled with the serving core.

``hypercorn.shared.headers`` keeps the documented public functions (compiled
functions lose their docstrings) and calls these; the worker's streams call
these directly, on every response.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

# RFC 9110 section 5.6.2: token = 1*tchar.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")

_VALID_NAMES: dict[bytes, bytes] = {}
"""Header names found valid, with their lower-case form (apps repeat a few names)."""
_VALID_NAMES_MAX = 1024


def _to_bytes(item: object, what: str, encoding: str) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        try:
            return item.encode(encoding)
        except UnicodeEncodeError:
            raise ValueError(f"header {what} {item!r} is not {encoding}-encodable") from None
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    raise TypeError(f"header {what} must be str or bytes, not {type(item).__name__}")


def _pair(item: Any) -> tuple[bytes, bytes]:
    if isinstance(item, (str, bytes)) or not isinstance(item, (tuple, list)) or len(item) != 2:
        raise TypeError(f"a header must be a (name, value) pair, not {item!r}")
    return _to_bytes(item[0], "name", "ascii"), _to_bytes(item[1], "value", "latin-1")


def _invalid_name(name: bytes) -> ValueError:
    if name.startswith(b":"):
        return ValueError(f"pseudo-header {name!r} is not valid here")
    if not name:
        return ValueError("a header name must not be empty")
    return ValueError(f"header name {name!r} is not a valid token")


def validate_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    """``shared.headers.build_and_validate_headers``: see its documentation."""
    items: Iterable[Any]
    if type(headers) is list or type(headers) is tuple:
        items = headers  # what ASGI apps send: no ABC check needed
    elif isinstance(headers, Mapping):
        items = headers.items()
    else:
        items = headers
    if isinstance(items, (str, bytes)):
        raise TypeError("headers must be a mapping or an iterable of (name, value) pairs")
    validated: list[tuple[bytes, bytes]] = []
    valid_names = _VALID_NAMES
    for item in items:
        # Fast path: what ASGI apps send, a tuple of two bytes.
        if type(item) is tuple and len(item) == 2 and type(item[0]) is bytes:
            name: bytes = item[0]
            value = item[1]
            if type(value) is not bytes:
                name, value = _pair(item)
        else:
            name, value = _pair(item)
        lower = valid_names.get(name)
        if lower is None:
            if _TOKEN.fullmatch(name) is None:
                raise _invalid_name(name)
            lower = name.lower()
            if len(valid_names) < _VALID_NAMES_MAX:
                valid_names[name] = lower
        # RFC 9110 section 5.5: CR, LF and NUL are never valid in a field value.
        # Integer needles: a scan each (memchr), where a regular expression's
        # search costs several times as much on a short value.
        if 13 in value or 10 in value or 0 in value:
            raise ValueError(f"value of header {name!r} contains CR, LF or NUL")
        validated.append((lower, value))
    return validated


def _request_host(headers: Any) -> str | None:
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


def server_name_matches(names: list[str], headers: Any) -> bool:
    """``shared.headers.valid_server_name``: see its documentation."""
    if not names:
        return True
    host = _request_host(headers)
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
