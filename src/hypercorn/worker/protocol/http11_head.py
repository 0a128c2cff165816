"""Parse and validate one HTTP/1.1 request head (RFC 9112 sections 2 to 7).

On the hot path of every HTTP/1.1 request a head is read in two passes: one
regular expression (``_HEAD_RE``) validates the whole head, then plain
splits (lines, the request-line's three parts, each field at its colon) take
it apart, and one loop over the fields lower-cases the names and picks up
Host, the framing fields, Connection, Expect and Upgrade. The grammar of the
request-line and of the field lines is h11's (token methods and field names,
a target of visible ASCII, field values of anything but NUL and white space
with inner spaces and tabs, optional white space around them), so that the
reader accepts exactly what ``h11`` accepts;
``tests/worker/protocol/test_http11_head_h11.py`` checks the two against each
other. h11 is lenient or lossy in places that matter to a server sitting
behind proxies, so the rules below are ours, and a head that breaks several
is refused for the first of them in this order. The first two break the
grammar too: only once the grammar has refused a head does ``_refuse`` look
for them, and for the framing fields on the raw bytes, before naming the
line the grammar refused.

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
from typing import Final, NoReturn

from hypercorn.worker.protocol.events import Event, Headers

CHUNKED = -1
"""``RequestHead.body_length`` of a chunked body."""

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_TOKEN_RE = re.compile(_TOKEN)
# RFC 9110 section 5.5 as h11 reads it: field-vchar is anything but NUL and
# (ASCII) white space, so obs-text and other controls pass, as they do in h11;
# a value is runs of them parted by spaces and tabs, with optional white space
# around it. Those lines are exactly the lines whose every byte after the
# colon is a space, a tab or a field-vchar, the class below: one way to match
# each line, no backtracking, whatever a refused head holds.
_FIELDS = rb"(?:" + _TOKEN + rb":[^\x00\n\r\x0b\x0c]*\r\n)*\r\n"
_REQUEST_LINE = _TOKEN + rb" [\x21-\x7e]+ HTTP/[0-9]\.[0-9]\r\n"
_REQUEST_LINE_RE = re.compile(_REQUEST_LINE)
_HEAD_RE = re.compile(_REQUEST_LINE + _FIELDS)
_DIGITS_RE = re.compile(rb"[0-9]{1,19}")
# Framing fields, found on the lower-cased head: a field line always follows a
# CRLF, so the request-line can never match.
_FRAMING_RE = re.compile(rb"\r\n(content-length|transfer-encoding):([^\r]*)")
_HOST_RE = re.compile(rb"(?:\[[0-9a-fA-F:.]+\]|[-a-zA-Z0-9._~!$&'()*+,;=%]*)(?::[0-9]*)?")
_ABSOLUTE_RE = re.compile(rb"(?i:https?)://([^/?#@]+)([/?][\x21-\x7e]*)?")
_HOSTS: set[bytes] = set()
HOSTS_MAX = 64
"""Valid Host values remembered (clients name the same few hosts again and again)."""


class HeadError(Exception):
    """The head is refused; the protocol answers ``status`` and closes."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class RequestHead(Event):
    """A validated request head, ready to become a ``RequestReceived``.

    Not an event itself, but made as the events are (a native class with
    ``Final`` fields, equal by value): compiled, it is built by a C call, once
    per request on the hot path.
    """

    __match_args__ = (
        "method",
        "target",
        "headers",
        "http_version",
        "keep_alive",
        "expects_continue",
        "body_length",
        "upgrade",
    )
    __slots__ = __match_args__
    method: Final[str]
    target: Final[bytes]
    headers: Final[Headers]
    http_version: Final[str]
    keep_alive: Final[bool]
    expects_continue: Final[bool]
    body_length: Final[int]  # bytes of Content-Length, or CHUNKED
    upgrade: Final[bytes]  # lower-cased Upgrade value when Connection lists "upgrade"

    def __init__(
        self,
        method: str,
        target: bytes,
        headers: Headers,
        http_version: str,
        keep_alive: bool,
        expects_continue: bool,
        body_length: int,
        upgrade: bytes = b"",
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.expects_continue = expects_continue
        self.body_length = body_length
        self.upgrade = upgrade


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
    if _HEAD_RE.fullmatch(head) is None:
        _refuse(head)
    method_bytes, target, version, lines = _lines(head)
    host_index = hosts = -1
    host = connection = expect = upgrade = b""
    lengths: list[bytes] = []
    codings: list[bytes] = []
    headers: list[tuple[bytes, bytes]] = []
    for index, line in enumerate(lines):
        name, value = split_field(line)
        name = name.lower()
        if name == b"host":
            hosts += 1
            host_index = index
            host = value
        elif name == b"connection":
            connection += b"," + value.lower()
        elif name == b"expect":
            expect += b"," + value.lower()
        elif name == b"upgrade":
            upgrade += b"," + value.lower()
        elif name == b"content-length":
            lengths.append(value)
        elif name == b"transfer-encoding":
            value = value.lower()  # as h11 hands it out: the coding names are case-insensitive
            codings.extend([coding.strip(b" \t") for coding in value.split(b",")])
        headers.append((name, value))
    body_length = _body_length(lengths, codings) if lengths or codings else 0
    if hosts > 0:
        raise HeadError(400, "more than one Host")
    return _request_head(
        method_bytes,
        target,
        version,
        tuple(headers),
        host_index,
        host,
        body_length,
        connection,
        expect,
        upgrade,
    )


def _request_head(
    method_bytes: bytes,
    target: bytes,
    version: bytes,
    headers: Headers,
    host_index: int,
    host: bytes,
    body_length: int,
    connection: bytes,
    expect: bytes,
    upgrade: bytes,
) -> RequestHead:
    """Check the version, Host and target; read persistence and expectations.

    Raises:
        HeadError: as ``parse_head``.
    """
    http_version = _version(version, body_length)
    if host_index < 0:
        if http_version == "1.1":
            raise HeadError(400, "missing Host")
    elif host not in _HOSTS:
        if _HOST_RE.fullmatch(host) is None:
            raise HeadError(400, "invalid Host")
        if len(_HOSTS) >= HOSTS_MAX:
            _HOSTS.clear()
        _HOSTS.add(host)
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


def split_field(line: bytes) -> tuple[bytes, bytes]:
    """A field line of a head ``_HEAD_RE`` accepted: its name as sent, its value without OWS."""
    name, _, value = line.partition(b":")
    return name, value.strip(b" \t")


def _version(version: bytes, body_length: int) -> str:
    """The request's HTTP version as served ("1.1" or "1.0").

    Raises:
        HeadError: 505 for a major version other than 1; 400 for a chunked
            HTTP/1.0 request.
    """
    if version == b"1.1":
        http_version = "1.1"
    elif version == b"1.0":
        http_version = "1.0"
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
    if _HEAD_RE.fullmatch(head) is None:
        if _REQUEST_LINE_RE.match(head) is None:
            raise HeadError(400, "illegal request line")
        raise HeadError(400, "illegal header line")
    method, target, version, lines = _lines(head)
    return method, target, version, [split_field(line) for line in lines]


def _lines(head: bytes) -> tuple[bytes, bytes, bytes, list[bytes]]:
    """Split a head ``_HEAD_RE`` accepted: method, target, version and the field lines."""
    lines = head.split(b"\r\n")
    method, target, version = lines[0].split(b" ")
    return method, target, version[5:], lines[1:-2]


def _refuse(head: bytes) -> NoReturn:
    """Say why a head breaks the grammar: the first of the checks it fails.

    The order is the reading's: bare LF, obs-fold, the framing fields as the
    raw bytes announce them, then the request-line and the field lines.

    Raises:
        HeadError: always.
    """
    if head.count(b"\n") != head.count(b"\r\n"):
        raise HeadError(400, "bare LF in request head")
    if head.find(b"\r\n ") >= 0 or head.find(b"\r\n\t") >= 0:
        raise HeadError(400, "obsolete line folding in request head")
    _framing(head)
    split_head(head)
    raise AssertionError("a head the grammar refused was read")  # pragma: no cover


def _framing(head: bytes) -> int:
    """Return the body length the framing fields of the raw head announce."""
    lengths: list[bytes] = []
    codings: list[bytes] = []
    for match in _FRAMING_RE.finditer(head.lower()):
        value = match[2].strip(b" \t")
        if match[1] == b"content-length":
            lengths.append(value)
        else:
            codings.extend([coding.strip(b" \t") for coding in value.split(b",")])
    return _body_length(lengths, codings) if lengths or codings else 0


def _body_length(lengths: list[bytes], codings: list[bytes]) -> int:
    """The body length that Content-Length values or transfer codings announce.

    Raises:
        HeadError: 400 for ambiguous or invalid framing, 501 for a
            well-formed coding list other than ``chunked`` alone.
    """
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
