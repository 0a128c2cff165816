"""The checks on inbound HTTP/2 header blocks (RFC 9113 sections 8.2 and 8.3).

Theory of operation
-------------------
``H2Protocol`` calls ``HeaderChecker`` on every header block it receives. It
makes the checks the h2 library makes (which cost h2 seven nested generators
and a Python loop over every byte: a fifth of a hello request's CPU time) in
one pass, with h2's outcome: a malformed block raises ``MalformedHeaders``,
which the protocol turns into a connection error of type PROTOCOL_ERROR.

A field's own rules (the bytes a name and a value may hold) depend on the
field alone, so a field that passed once passes again: each connection keeps
the short fields it has seen pass, bounded, and a client that repeats its
headers (every client, thanks to HPACK) pays for a set lookup per field. The
rules that depend on the whole block (pseudo-header fields first, once each,
the ones a method needs; connection-specific fields; ``:authority`` against
``host``) run on every new block; ``read_request`` also remembers the last
few short blocks whole, with their reading by ``fields.split_request_fields``,
so a request repeated field for field is checked and read by one lookup.

Split ``cookie`` fields are joined into one, last, as h2's normalisation did
(RFC 9113 section 8.2.3).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from hypercorn.worker.protocol.fields import (
    CONNECTION_HEADERS,
    RequestFields,
    split_request_fields,
)

Field = tuple[bytes, bytes]

REQUEST_PSEUDO_HEADERS = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))
"""The pseudo-header fields a request may carry (RFC 9113 section 8.3.1, RFC 8441)."""

MAX_GOOD_FIELDS = 256
"""Most fields a connection remembers as well-formed (the cache is then emptied)."""

MAX_KEPT_FIELD = 256
"""Longest field (name and value) remembered: the caches stay small per connection."""

MAX_REQUESTS = 16
"""Most whole request blocks a connection remembers (the cache is then emptied)."""

MAX_KEPT_REQUEST = 2048
"""Longest request block (its names and values) remembered whole."""

_BAD_NAME = re.compile(rb"[^!-9;-@\[-~]")
"""RFC 9113 section 8.2.1: no byte in 0x00-0x20, 0x41-0x5a (upper case) or
0x7f-0xff, and no colon (searched from the second byte: pseudo-header names
start with one)."""

_NAME_START = frozenset(b":" + bytes(c for c in range(0x21, 0x7F) if not 0x41 <= c <= 0x5A))
"""The bytes a field name may start with: a name's bytes, or the colon of a pseudo-header."""

_BAD_VALUE = re.compile(rb"[\0\r\n]|\A[ \t]|[ \t]\Z")
"""RFC 9113 section 8.2.1: no NUL, CR or LF, no leading or trailing SP or HTAB."""


class MalformedHeaders(Exception):
    """A header block breaks a rule of RFC 9113 section 8.2 or 8.3."""


class HeaderChecker:
    """Checks one connection's inbound header blocks, remembering good fields."""

    __slots__ = ("_good", "_requests")

    def __init__(self) -> None:
        self._good: set[Field] = set()
        self._requests: dict[tuple[Field, ...], RequestFields] = {}

    def read_request(self, fields: Sequence[Field]) -> RequestFields:
        """Check a request's header block (``request``) and read it
        (``fields.split_request_fields``).

        Raises:
            MalformedHeaders: as ``request``.
        """
        key = tuple(fields)
        if (hit := self._requests.get(key)) is not None:
            return hit
        read = split_request_fields(self.request(fields))
        if sum(len(name) + len(value) for name, value in key) <= MAX_KEPT_REQUEST:
            if len(self._requests) >= MAX_REQUESTS:
                self._requests.clear()
            self._requests[key] = read
        return read

    def request(self, fields: Sequence[Field]) -> Sequence[Field]:
        """Check a request's header block.

        Args:
            fields: the decoded block, in order.

        Returns:
            The block, with ``cookie`` fields joined into one at the end.

        Raises:
            MalformedHeaders: a field or the block is malformed (RFC 9113
                sections 8.2.1, 8.2.2 and 8.3.1; RFC 8441 section 4).
        """
        good = self._good
        pseudo: dict[bytes, bytes] = {}
        regular = False
        host: bytes | None = None
        cookies = 0
        for field in fields:
            if field not in good:
                self._check_field(field)
            name = field[0]
            if name[0] == 0x3A:  # ":"
                if regular:
                    raise MalformedHeaders(f"pseudo-header field after a regular one: {name!r}")
                if name in pseudo:
                    raise MalformedHeaders(f"repeated pseudo-header field {name!r}")
                if name not in REQUEST_PSEUDO_HEADERS:
                    raise MalformedHeaders(f"pseudo-header field not for requests: {name!r}")
                pseudo[name] = field[1]
                continue
            regular = True
            if name in CONNECTION_HEADERS:
                raise MalformedHeaders(f"connection-specific field {name!r}")
            if name == b"te":
                if field[1].lower() != b"trailers":
                    raise MalformedHeaders("te other than trailers")
            elif name == b"host":
                if host is not None:
                    raise MalformedHeaders("repeated host field")
                host = field[1]
            elif name == b"cookie":
                cookies += 1
        _check_pseudo(pseudo, host)
        if cookies > 1:
            return _join_cookies(fields)
        return fields

    def trailers(self, fields: Sequence[Field]) -> None:
        """Check a trailer block: regular fields only.

        Raises:
            MalformedHeaders: a field is malformed or is a pseudo-header,
                connection-specific, or ``te`` (RFC 9113 sections 8.1 and 8.2.2).
        """
        for field in fields:
            if field not in self._good:
                self._check_field(field)
            name = field[0]
            if name[0] == 0x3A:
                raise MalformedHeaders(f"pseudo-header field in trailers: {name!r}")
            if name in CONNECTION_HEADERS or (name == b"te" and field[1].lower() != b"trailers"):
                raise MalformedHeaders(f"connection-specific field {name!r}")

    def _check_field(self, field: Field) -> None:
        name, value = field
        if not name or _BAD_NAME.search(name, 1) or name[0] not in _NAME_START:
            raise MalformedHeaders(f"malformed field name {name!r}")
        if value and _BAD_VALUE.search(value):
            raise MalformedHeaders(f"malformed value of {name!r}")
        if len(name) + len(value) <= MAX_KEPT_FIELD:
            if len(self._good) >= MAX_GOOD_FIELDS:
                self._good.clear()
            self._good.add((bytes(name), bytes(value)))


def _check_pseudo(pseudo: dict[bytes, bytes], host: bytes | None) -> None:
    """The pseudo-header fields a request needs (RFC 9113 section 8.3.1, RFC 8441 section 4)."""
    method = pseudo.get(b":method")
    if method is None:
        raise MalformedHeaders("no :method")
    if method == b"CONNECT" and b":protocol" not in pseudo:
        if b":scheme" in pseudo or b":path" in pseudo:
            raise MalformedHeaders("CONNECT with :scheme or :path")
    else:
        if b":scheme" not in pseudo or b":path" not in pseudo:
            raise MalformedHeaders("no :scheme or no :path")
        if b":protocol" in pseudo and method != b"CONNECT":
            raise MalformedHeaders(":protocol without CONNECT")
    path = pseudo.get(b":path")
    if path is not None and not path:
        raise MalformedHeaders("empty :path")
    authority = pseudo.get(b":authority")
    if authority is None:
        if host is None:
            raise MalformedHeaders("neither :authority nor host")
    elif host is not None and host != authority:
        raise MalformedHeaders(":authority and host differ")


def _join_cookies(fields: Sequence[Field]) -> list[Field]:
    """RFC 9113 section 8.2.3: split ``cookie`` fields become one, joined with "; "."""
    rest = [field for field in fields if field[0] != b"cookie"]
    rest.append((b"cookie", b"; ".join(field[1] for field in fields if field[0] == b"cookie")))
    return rest
