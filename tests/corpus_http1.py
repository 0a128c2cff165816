"""The HTTP/1.1 request corpus: raw requests and the outcome each must have.

Each case is one file ``tests/data/http1/NAME.txt``::

    # Comment lines start with "#".
    expect-request: {"method": "POST", "target": "/", "headers": [["host", "a"]], "body": "hi"}
    expect-status: 400
    ---
    POST / HTTP/1.1\\r\\n
    Host: a\\r\\n
    ...

Above the ``---`` line, fields:

``expect-request``  (repeatable, in order) a request the application must
                    receive complete: ``method``, ``target`` (after any
                    absolute-form reduction), ``headers`` (lower-cased names,
                    in order), ``body`` and ``version`` (default ``"1.1"``).
                    Strings stand for bytes in latin-1.
``expect-status``   the status the server itself answers with, after the
                    expected requests, before it closes the connection.
                    Absent: every request is served and nothing is refused.
``description``     free text.

Below it, the raw bytes. The file's own line breaks are not data; CR, LF,
NUL and every other byte outside printable ASCII are written as escapes, so
a bare LF (``\\n`` without ``\\r``) is always visible:

``\\r`` ``\\n`` ``\\t`` ``\\0`` ``\\\\`` ``\\xHH``   the byte
``\\{N*TEXT}``                             TEXT (no ``}`` or ``\\``) N times

A raw line may not end in a space or tab (write ``\\x20``): editors strip
them silently.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS_DIR = Path(__file__).resolve().parent / "data" / "http1"

_ESCAPE_RE = re.compile(r"\\(?:x([0-9a-fA-F]{2})|\{([0-9]+)\*([^}\\]*)\}|(.))", re.DOTALL)
_SIMPLE = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}


@dataclass(frozen=True)
class ExpectedRequest:
    """A request the application must receive, body complete."""

    method: str
    target: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    http_version: str = "1.1"


@dataclass(frozen=True)
class Case:
    """One corpus file."""

    name: str
    raw: bytes
    expected_requests: tuple[ExpectedRequest, ...]
    expected_status: int | None
    description: str = ""


def decode_raw(text: str) -> bytes:
    """Turn the raw section of a case file into the bytes it stands for.

    Raises:
        ValueError: an unknown escape, a non-ASCII character or a line
            ending in whitespace.
    """
    out = bytearray()
    for number, line in enumerate(text.split("\n"), 1):
        if line != line.rstrip(" \t"):
            raise ValueError(f"raw line {number} ends in whitespace; write \\x20")
        position = 0
        for match in _ESCAPE_RE.finditer(line):
            out += _literal(line[position : match.start()])
            hex_byte, count, repeated, simple = match.groups()
            if hex_byte is not None:
                out.append(int(hex_byte, 16))
            elif count is not None:
                out += _literal(repeated) * int(count)
            elif simple in _SIMPLE:
                out += _SIMPLE[simple]
            else:
                raise ValueError(f"raw line {number}: unknown escape \\{simple}")
            position = match.end()
        out += _literal(line[position:])
    return bytes(out)


def _literal(text: str) -> bytes:
    if not text.isascii() or not text.isprintable():
        raise ValueError(f"write non-printable or non-ASCII characters as escapes: {text!r}")
    return text.encode("ascii")


def parse_case(name: str, text: str) -> Case:
    """Parse the text of one case file."""
    fields, separator, raw = text.partition("\n---\n")
    if not separator:
        raise ValueError(f"{name}: no '---' line")
    requests: list[ExpectedRequest] = []
    status: int | None = None
    description = ""
    for line in fields.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, value = line.partition(":")
        value = value.strip()
        if key == "expect-request":
            requests.append(_expected_request(json.loads(value)))
        elif key == "expect-status":
            status = int(value)
        elif key == "description":
            description = value
        else:
            raise ValueError(f"{name}: unknown field {key!r}")
    if not requests and status is None:
        raise ValueError(f"{name}: expects nothing")
    return Case(name, decode_raw(raw.rstrip("\n")), tuple(requests), status, description)


def _expected_request(data: dict[str, Any]) -> ExpectedRequest:
    unknown = set(data) - {"method", "target", "headers", "body", "version"}
    if unknown:
        raise ValueError(f"unknown request fields {unknown}")
    return ExpectedRequest(
        method=data["method"],
        target=data["target"].encode("latin-1"),
        headers=tuple(
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in data["headers"]
        ),
        body=data.get("body", "").encode("latin-1"),
        http_version=data.get("version", "1.1"),
    )


def load_cases(directory: Path = CORPUS_DIR) -> list[Case]:
    """Every case of the corpus, sorted by name."""
    return [
        parse_case(path.stem, path.read_text(encoding="ascii"))
        for path in sorted(directory.glob("*.txt"))
    ]
