"""The ``HTTP2-Settings`` of an ``Upgrade: h2c`` request (RFC 7540 section 3.2.1).

A request that asks to upgrade a plain connection to HTTP/2 carries the
client's first SETTINGS payload in one ``HTTP2-Settings`` field, base64url
without padding. The server upgrades only when that field is present once and
its payload is a valid SETTINGS payload: a whole number of 6-byte settings,
each value within the range RFC 9113 section 6.5.2 gives it. Otherwise it
ignores the upgrade (RFC 9110 section 7.8 lets it) and answers the request
over HTTP/1.1, as a server without HTTP/2 would: the request itself is valid
HTTP/1.1, and the upgrade mechanism is deprecated (RFC 9113 section 3.1), so
a client's bad upgrade costs it the upgrade, not its request.
"""

from __future__ import annotations

import base64
import re

from hypercorn.worker.protocol.events import Headers
from hypercorn.worker.protocol.h2_frames import FrameError, parse_settings

_TOKEN68 = re.compile(rb"[A-Za-z0-9_-]*={0,2}")


def upgrade_settings(headers: Headers) -> bytes | None:
    """The ``HTTP2-Settings`` value to upgrade with, padded, or None to stay on HTTP/1.1.

    None when the field is absent, repeated, not base64url, or not a valid
    SETTINGS payload (a length that is not a multiple of 6, a value out of range).
    """
    values = [value for name, value in headers if name == b"http2-settings"]
    if len(values) != 1:
        return None
    value = values[0]
    if not _TOKEN68.fullmatch(value) or len(value.rstrip(b"=")) % 4 == 1:
        return None
    padded = value.rstrip(b"=") + b"=" * (-len(value.rstrip(b"=")) % 4)
    try:
        parse_settings(base64.urlsafe_b64decode(padded))
    except FrameError:
        return None
    return padded
