"""Header helpers: validation of response headers, pseudo-headers, bodiless
responses, and the ``server_names`` check of a request's Host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from hypercorn.shared.header_rules import server_name_matches, validate_headers

__all__ = [
    "build_and_validate_headers",
    "filter_pseudo_headers",
    "suppress_body",
    "valid_server_name",
]

HeaderInput = Mapping[Any, Any] | Iterable[Any]


class ServerNamesConfig(Protocol):
    """What ``valid_server_name`` needs from the configuration."""

    @property
    def server_names(self) -> list[str]: ...


class HasHeaders(Protocol):
    """A request: ``headers`` is a mapping or an iterable of ``(name, value)`` pairs."""

    @property
    def headers(self) -> Any: ...


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
    return validate_headers(headers)


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
    return not names or server_name_matches(names, request.headers)
