"""The WSGI path's shortcuts give what their reference path gives.

``EMPTY_INPUT`` (the ``wsgi.input`` of a bodiless request) reads as a
``BytesIO(b"")``; the remembered header pairs of ``start_response`` give what
``validate_headers`` gives, errors included, the first time and every time.
"""

from __future__ import annotations

import asyncio
import io
import wsgiref.validate
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from hypercorn.shared import wsgi
from hypercorn.shared.header_rules import validate_headers
from hypercorn.shared.wsgi_environ import EMPTY_INPUT, build_environ
from tests.shared.test_wrappers import http_scope

# (method, arguments): every reading call of a file, with sizes and hints.
READS: list[tuple[str, tuple[Any, ...]]] = [
    ("read", ()),
    ("read", (-1,)),
    ("read", (None,)),
    ("read", (0,)),
    ("read", (5,)),
    ("read", (True,)),
    ("read", (1.5,)),
    ("read", ("5",)),
    ("read1", ()),
    ("read1", (3,)),
    ("read1", (None,)),
    ("readline", ()),
    ("readline", (-1,)),
    ("readline", (None,)),
    ("readline", (4,)),
    ("readline", (2.0,)),
    ("readlines", ()),
    ("readlines", (-1,)),
    ("readlines", (None,)),
    ("readlines", (10,)),
    ("readlines", ("x",)),
    ("readinto", (bytearray(4),)),
    ("readinto", (memoryview(bytearray(2)),)),
    ("readinto", (b"read-only",)),
    ("readinto", (3,)),
    ("readable", ()),
    ("tell", ()),
]


def outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("value", call())
    except Exception as error:
        return ("error", type(error))


@pytest.mark.parametrize(("method", "args"), READS)
def test_empty_input_reads_as_an_empty_bytesio(method: str, args: tuple[Any, ...]) -> None:
    reference = io.BytesIO(b"")
    ours = outcome(lambda: getattr(EMPTY_INPUT, method)(*args))
    assert ours == outcome(lambda: getattr(reference, method)(*args))
    # Shared by every bodiless request: reading twice gives the same again.
    assert outcome(lambda: getattr(EMPTY_INPUT, method)(*args)) == ours


def test_empty_input_iterates_and_outlives_close() -> None:
    assert list(EMPTY_INPUT) == list(io.BytesIO(b"")) == []
    assert iter(EMPTY_INPUT) is EMPTY_INPUT
    with pytest.raises(StopIteration):
        next(EMPTY_INPUT)
    EMPTY_INPUT.close()  # one request closing it leaves it open for the next
    assert not EMPTY_INPUT.closed and EMPTY_INPUT.read() == b""
    # Read-only, unlike a BytesIO: it is shared, so no request may change it.
    assert not EMPTY_INPUT.seekable() and not EMPTY_INPUT.writable()
    assert not hasattr(EMPTY_INPUT, "write") and not hasattr(EMPTY_INPUT, "seek")


def test_bodiless_requests_share_the_empty_input_and_bodies_get_their_own() -> None:
    first, second = build_environ(http_scope(), b""), build_environ(http_scope(), b"")
    assert first["wsgi.input"] is second["wsgi.input"] is EMPTY_INPUT
    assert "CONTENT_LENGTH" not in first
    with_body = build_environ(http_scope(), b"abc")["wsgi.input"]
    assert isinstance(with_body, io.BytesIO) and with_body.read() == b"abc"


def test_the_wsgiref_validator_accepts_the_empty_input() -> None:
    # wsgiref's checks of wsgi.input and of every call an application makes on it.
    environ = build_environ(http_scope(), b"")
    wrapped = wsgiref.validate.InputWrapper(environ["wsgi.input"])
    assert wrapped.read(0) == wrapped.readline() == b""
    assert not wrapped.readlines() and not list(wrapped)


HEADER_LISTS: list[Any] = [
    [("Content-Type", "text/plain"), ("Content-Length", "13")],
    [("X-Empty", "")],
    [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
    [("Latin", "caf\u00e9")],
    [("Content-Type", "text/plain"), ("Bad Name", "x")],
    [("X-A", "bad\r\nvalue")],
    [("X-A", "nul\x00")],
    [("", "empty name")],
    [(":status", "200")],
    [("X-Euro", "\u20ac")],  # not latin-1
    [("X-Int", 5)],
    [(b"X-Bytes", "v")],
    [["X-List", "v"]],
    [("X-Three", "a", "b")],
    [("X-Unhashable", ["v"])],
    ["X-Str"],
    [None],
    [],
    (("X-Tuple", "v"),),  # not a list: validate_headers itself
    {"X-Dict": "v"},
]


@pytest.mark.parametrize("headers", HEADER_LISTS)
def test_remembered_header_pairs_give_what_validate_headers_gives(headers: Any) -> None:
    wsgi._HEADER_PAIRS.clear()

    def reference() -> Any:
        return validate_headers(headers)

    expected = outcome(reference)
    if expected[0] == "error":  # the same error type, and the same message
        with pytest.raises(expected[1]) as reference_error:
            reference()
        with pytest.raises(expected[1]) as our_error:
            wsgi._wsgi_headers(headers)
        assert str(our_error.value) == str(reference_error.value)
    for _ in range(2):  # unknown, then remembered
        assert outcome(lambda: wsgi._wsgi_headers(headers)) == expected
    assert all(type(pair[1]) is str for pair in wsgi._HEADER_PAIRS)


def test_a_bad_pair_is_never_remembered_and_the_cache_is_bounded() -> None:
    wsgi._HEADER_PAIRS.clear()
    with pytest.raises(ValueError):
        wsgi._wsgi_headers([("X-Ok", "1"), ("X-A", "b\nc")])
    assert list(wsgi._HEADER_PAIRS) == [("X-Ok", "1")]
    long = "v" * (wsgi._HEADER_VALUE_CACHED_MAX + 1)
    assert wsgi._wsgi_headers([("X-Long", long)]) == [(b"x-long", long.encode())]
    assert ("X-Long", long) not in wsgi._HEADER_PAIRS
    for n in range(wsgi._HEADER_PAIRS_MAX + 10):
        assert wsgi._wsgi_headers([("X-N", str(n))]) == [(b"x-n", str(n).encode())]
        assert len(wsgi._HEADER_PAIRS) <= wsgi._HEADER_PAIRS_MAX


@pytest.mark.asyncio
async def test_start_response_uses_the_remembered_pairs_with_its_checks() -> None:
    wsgi._HEADER_PAIRS.clear()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b""]

    inbox = wsgi.Inbox(asyncio.get_running_loop())
    for _ in range(2):
        responder = wsgi.WSGIResponder(app, build_environ(http_scope(), b""), inbox)
        responder.start_response("200 OK", [("Content-Type", "text/plain")])
        assert responder.headers == [(b"content-type", b"text/plain")]
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            responder.start_response("500 Oops", [("X-A", "a\rb")], exc_info=_exc_info())


def _exc_info() -> Any:
    try:
        raise RuntimeError("retry")
    except RuntimeError as error:
        return (type(error), error, error.__traceback__)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "chunk", [b"body", b"", "", None, "text", bytearray(b"ab"), memoryview(b"mv"), 5]
)
async def test_a_one_chunk_list_is_sent_as_the_same_chunk_in_a_tuple(chunk: Any) -> None:
    """``[chunk]`` takes its own path; ``(chunk,)`` the general one: same messages."""
    from hypercorn.shared.wrappers import WSGIWrapper
    from tests.shared.test_wrappers import Channel, call

    def outcome_of(body: Iterable[Any]) -> Callable[..., Any]:
        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            start_response("200 OK", [("Content-Type", "text/plain")])
            return body

        return app

    results = []
    for body in ([chunk], (chunk,)):
        wrapper = WSGIWrapper(outcome_of(body), 1024)
        channel = Channel()
        try:
            error = outcome(lambda: None)
            try:
                await call(wrapper, channel)
            except Exception as exc:
                error = ("error", type(exc))
        finally:
            wrapper.close()
        results.append((channel.sent, error))
    assert results[0] == results[1]
