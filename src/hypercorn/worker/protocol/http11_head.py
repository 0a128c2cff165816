"""Parse and validate one HTTP/1.1 request head (RFC 9112 sections 2 to 7).

The head is read in one pass of compiled regular expressions, on the hot
path of every HTTP/1.1 request. The grammar of the request-line and of the
field lines is h11's, character for character (``_REQUEST_LINE``, ``_FIELD``:
token methods and field names, a target of visible ASCII, field values of
anything but NUL and whitespace with inner spaces and tabs, optional white
space around them), so that the fast path accepts exactly what ``h11``
accepts; ``tests/worker/protocol/test_http11_head_h11.py`` checks the two
against each other. h11 is lenient or lossy in places that matter to a
server sitting behind proxies, so the framing rules are ours and run on the
raw bytes first:

- every line ends in CRLF (h11 also accepts a bare LF);
- no obs-fold continuation lines (h11 joins them);
- Content-Length: one field line, digits only (h11 merges duplicates and
  ``5, 5`` into one value, so it could not tell us they were there);
- Transfer-Encoding: exactly ``chunked``, never with Content-Length, never
  on HTTP/1.0 (h11 answers 501 for every other coding, we answer 400 when the
  framing is ambiguous and 501 only for a well-formed coding list that ends in
  ``chunked``, as RFC 9112 section 6.1 asks);
- versions other than 1.x answer 505; 1.x above 1.1 reads as 1.1;
- exactly one Host on HTTP/1.1, at most one on 1.0, with a valid value;
- origin-form, absolute-form (reduced to its path, its authority becoming
  the Host) and asterisk-form with OPTIONS only; CONNECT answers 405.

No request that another reading of the same bytes could frame differently
gets through: anything ambiguous is refused, and the connection then closes.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from hypercorn.worker.protocol.events import Headers

CHUNKED = -1
"""``RequestHead.body_length`` of a chunked body."""

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_TOKEN_RE = re.compile(_TOKEN)
# RFC 9110 section 5.5 as h11 reads it: field-vchar is anything but NUL and
# (ASCII) white space, so obs-text and other controls pass, as they do in h11.
# Written so that every line matches in one way only (spaces after the colon
# belong to the value's left OWS unless a value follows): no backtracking
# across lines, whatever a refused head holds.
_VCHARS = rb"[^\x00\s]+"
_VALUE = _VCHARS + rb"(?:[ \t]+" + _VCHARS + rb")*"
_FIELD_RE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(?:(" + _VALUE + rb")[ \t]*)?\r\n")
_FIELDS_RE = re.compile(rb"(?:" + _TOKEN + rb":[ \t]*(?:" + _VALUE + rb"[ \t]*)?\r\n)*\r\n")
_REQUEST_LINE_RE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])\r\n")
_DIGITS_RE = re.compile(rb"[0-9]{1,19}")
# Framing fields, found on the lower-cased head: a field line always follows a
# CRLF, so the request-line can never match.
_FRAMING_RE = re.compile(rb"\r\n(content-length|transfer-encoding):([^\r]*)")
_HOST_RE = re.compile(rb"(?:\[[0-9a-fA-F:.]+\]|[-a-zA-Z0-9._~!$&'()*+,;=%]*)(?::[0-9]*)?")
_ABSOLUTE_RE = re.compile(rb"(?i:https?)://([^/?#@]+)([/?][\x21-\x7e]*)?")


class HeadError(Exception):
    """The head is refused; the protocol answers ``status`` and closes."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class RequestHead(NamedTuple):
    """A validated request head, ready to become a ``RequestReceived``.

    A named tuple: it is built once per request, on the hot path.
    """

    method: str
    target: bytes
    headers: Headers
    http_version: str
    keep_alive: bool
    expects_continue: bool
    body_length: int  # bytes of Content-Length, or CHUNKED
    upgrade: bytes = b""  # lower-cased Upgrade value when Connection lists "upgrade"


def parse_head(head: bytes) -> RequestHead:
    """Parse a complete head: request-line, field lines and the blank line.

    Args:
        head: the bytes up to and including the CRLF CRLF that ends the head.

    Returns:
        The validated head.

    Raises:
        HeadError: the request must be answered with ``status`` and the
            connection closed.
    """
    if head.count(b"\n") != head.count(b"\r\n"):
        raise HeadError(400, "bare LF in request head")
    if b"\r\n " in head or b"\r\n\t" in head:
        raise HeadError(400, "obsolete line folding in request head")
    body_length = _framing(head)
    method_bytes, target, version, fields = split_head(head)
    headers, host_index, connection, expect, upgrade = _read_fields(fields)
    http_version = _version(version, body_length)
    if host_index < 0:
        if http_version == "1.1":
            raise HeadError(400, "missing Host")
    elif _HOST_RE.fullmatch(headers[host_index][1]) is None:
        raise HeadError(400, "invalid Host")
    method = method_bytes.decode("ascii")
    if target[0] != 0x2F:  # not origin-form
        target, headers = _other_form(method, target, headers, host_index)
    tokens = {token.strip(b" \t") for token in connection.split(b",")} if connection else ()
    if http_version == "1.1":
        keep_alive = b"close" not in tokens
        expects_continue = bool(expect) and b"100-continue" in {
            token.strip(b" \t") for token in expect.split(b",")
        }
    else:
        keep_alive = b"keep-alive" in tokens and b"close" not in tokens
        # RFC 9110 section 10.1.1: ignore 100-continue from an HTTP/1.0 client.
        expects_continue = False
    return RequestHead(
        method,
        target,
        headers,
        http_version,
        keep_alive,
        expects_continue,
        body_length,
        upgrade[1:] if upgrade and b"upgrade" in tokens else b"",
    )


def _read_fields(
    fields: list[tuple[bytes, bytes]],
) -> tuple[Headers, int, bytes, bytes, bytes]:
    """Lower-case the names; find Host and gather Connection, Expect and Upgrade.

    Returns:
        The headers, the index of Host (-1 if none) and the Connection, Expect
        and Upgrade values, lower-cased, each list led by a comma.

    Raises:
        HeadError: 400 for a second Host.
    """
    host_index = -1
    connection = expect = upgrade = b""
    headers: list[tuple[bytes, bytes]] = []
    for raw_name, value in fields:
        name = raw_name.lower()
        if name == b"host":
            if host_index >= 0:
                raise HeadError(400, "more than one Host")
            host_index = len(headers)
        elif name == b"connection":
            connection += b"," + value.lower()
        elif name == b"expect":
            expect += b"," + value.lower()
        elif name == b"upgrade":
            upgrade += b"," + value.lower()
        elif name == b"transfer-encoding":
            value = value.lower()  # as h11 hands it out: the coding names are case-insensitive
        headers.append((name, value))
    return tuple(headers), host_index, connection, expect, upgrade


def _version(version: bytes, body_length: int) -> str:
    """The request's HTTP version as served ("1.1" or "1.0").

    Raises:
        HeadError: 505 for a major version other than 1; 400 for a chunked
            HTTP/1.0 request.
    """
    if version == b"1.1" or version == b"1.0":
        http_version = version.decode()
    elif version[:2] == b"1.":
        http_version = "1.1"  # RFC 9112 section 2.3: a higher minor version reads as ours
    else:
        raise HeadError(505, "unsupported HTTP version")
    if body_length == CHUNKED and http_version == "1.0":
        raise HeadError(400, "Transfer-Encoding in an HTTP/1.0 request")
    return http_version


_SEEN: dict[bytes, RequestHead] = {}
SEEN_MAX = 256
"""Heads remembered by ``read_head``; the memory is emptied when it is full."""
SEEN_HEAD_SIZE = 1024
"""Largest head ``read_head`` remembers."""


def read_head(head: bytes) -> RequestHead:
    """``parse_head``, remembering the heads parsed lately.

    Clients repeat heads byte for byte (keep-alive polling, health checks,
    load generators); ``parse_head`` is a pure function of the bytes, so a
    head seen before is not read again. Refused heads are not remembered.

    Raises:
        HeadError: as ``parse_head``.
    """
    parsed = _SEEN.get(head)
    if parsed is None:
        parsed = parse_head(head)
        if len(head) <= SEEN_HEAD_SIZE:
            if len(_SEEN) >= SEEN_MAX:
                _SEEN.clear()
            _SEEN[head] = parsed
    return parsed


def split_head(head: bytes) -> tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]]]:
    """Read a head with h11's grammar: the request-line and every field line.

    Args:
        head: a complete head in which every line ends in CRLF.

    Returns:
        The method, the target, the version (``b"1.1"``) and the field lines
        as (name, value) pairs, names as sent and values without their OWS.

    Raises:
        HeadError: a line breaks the grammar (400).
    """
    line = _REQUEST_LINE_RE.match(head)
    if line is None:
        raise HeadError(400, "illegal request line")
    start = line.end()
    if _FIELDS_RE.fullmatch(head, start) is None:
        raise HeadError(400, "illegal header line")
    return line[1], line[2], line[3], _FIELD_RE.findall(head, start)


def _framing(head: bytes) -> int:
    """Return the body length the framing fields announce (or ``CHUNKED``)."""
    lower = head.lower()
    if b"\r\ncontent-length:" not in lower and b"\r\ntransfer-encoding:" not in lower:
        return 0
    lengths: list[bytes] = []
    codings: list[bytes] = []
    for match in _FRAMING_RE.finditer(lower):
        value = match[2].strip(b" \t")
        if match[1] == b"content-length":
            lengths.append(value)
        else:
            codings.extend(coding.strip(b" \t") for coding in value.split(b","))
    if codings:
        if lengths:
            raise HeadError(400, "both Content-Length and Transfer-Encoding")
        if codings == [b"chunked"]:
            return CHUNKED
        # RFC 9112 section 6.3: chunked must be the final coding, applied once.
        if (
            codings[-1] == b"chunked"
            and b"chunked" not in codings[:-1]
            and all(_TOKEN_RE.fullmatch(coding) for coding in codings)
        ):
            raise HeadError(501, "unsupported transfer coding")
        raise HeadError(400, "invalid Transfer-Encoding")
    if len(lengths) > 1:
        raise HeadError(400, "more than one Content-Length")
    if _DIGITS_RE.fullmatch(lengths[0]) is None:
        raise HeadError(400, "invalid Content-Length")
    return int(lengths[0])


def _other_form(
    method: str, target: bytes, headers: Headers, host_index: int
) -> tuple[bytes, Headers]:
    """Reduce an asterisk-form or absolute-form target (RFC 9112 section 3.2)."""
    if method == "CONNECT":
        raise HeadError(405, "CONNECT is not supported")
    if target == b"*":
        if method != "OPTIONS":
            raise HeadError(400, "asterisk-form target without OPTIONS")
        return target, headers
    match = _ABSOLUTE_RE.fullmatch(target)
    if match is None or _HOST_RE.fullmatch(match[1]) is None:
        raise HeadError(400, "invalid request target")
    path = match[2] or b"/"
    if path[0] == 0x3F:  # "?query" with an empty path
        path = b"/" + path
    # RFC 9112 section 3.2.2: the target's authority replaces any Host field.
    host = (b"host", match[1])
    if host_index < 0:
        return path, (*headers, host)
    return path, (*headers[:host_index], host, *headers[host_index + 1 :])
