"""WSGI over ASGI: the PEP 3333 environ, start_response, the response stream,
and real Flask and Django applications.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import wsgiref.validate
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hypercorn.shared.wsgi import _status_code, build_environ
from tests.shared import test_wrappers
from tests.shared.test_wrappers import TIMEOUT, Channel, call, http_scope

pytestmark = pytest.mark.asyncio

wrapper_factory = test_wrappers.wrapper_factory


# -- the environ --------------------------------------------------------------------


async def test_environ_follows_pep_3333() -> None:
    scope = http_scope(
        method="POST",
        path="/app/caf\u00e9/x",
        root_path="/app",
        query_string=b"a=1&b=%20",
        headers=[
            (b"host", b"example.com:8000"),
            (b"content-type", b"text/plain"),
            (b"content-length", b"5"),
            (b"accept", b"text/html"),
            (b"accept", b"*/*"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
            (b"x_forwarded_for", b"spoofed"),
            (b"x-forwarded-for", b"10.0.0.1"),
        ],
        client=("10.1.2.3", 4321),
        server=("192.168.0.1", 8000),
        http_version="2",
        scheme="https",
    )
    environ = build_environ(scope, b"hello")
    assert environ.pop("wsgi.input").read() == b"hello"
    assert environ.pop("wsgi.errors") is sys.stderr
    assert environ == {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/app",
        "PATH_INFO": "/caf\u00c3\u00a9/x",  # the UTF-8 bytes, as latin-1
        "QUERY_STRING": "a=1&b=%20",
        "CONTENT_TYPE": "text/plain",
        "CONTENT_LENGTH": "5",
        "SERVER_NAME": "192.168.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/2",
        "REMOTE_ADDR": "10.1.2.3",
        "REMOTE_PORT": "4321",
        "HTTP_HOST": "example.com:8000",
        "HTTP_ACCEPT": "text/html, */*",
        "HTTP_COOKIE": "a=1; b=2",
        "HTTP_X_FORWARDED_FOR": "10.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input_terminated": True,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


@pytest.mark.parametrize(
    ("path", "root_path", "script_name", "path_info"),
    [
        ("/app", "/app", "/app", ""),
        ("/app/", "/app", "/app", "/"),
        ("/application", "/app", "/app", "/application"),  # not under the mount
        ("/x", "", "", "/x"),
        ("/x", "/app", "/app", "/x"),  # a path given relative to root_path
    ],
)
async def test_script_name_and_path_info(
    path: str, root_path: str, script_name: str, path_info: str
) -> None:
    environ = build_environ(http_scope(path=path, root_path=root_path), b"")
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script_name, path_info)


async def test_environ_without_client_server_or_length() -> None:
    environ = build_environ(http_scope(client=None, server=None, scheme="https"), b"")
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("localhost", "443")
    assert "REMOTE_ADDR" not in environ and "CONTENT_LENGTH" not in environ
    unix = build_environ(http_scope(server=("/tmp/s.sock", None)), b"")
    assert (unix["SERVER_NAME"], unix["SERVER_PORT"]) == ("localhost", "80")


async def test_chunked_body_gets_its_content_length() -> None:
    headers = [(b"host", b"x"), (b"transfer-encoding", b"chunked")]
    environ = build_environ(http_scope(method="POST", headers=headers), b"abc")
    assert environ["CONTENT_LENGTH"] == "3"


async def test_the_wsgiref_validator_accepts_our_environ_and_calls() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
        return iter([environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))])

    from hypercorn.shared.wrappers import WSGIWrapper

    wrapper = WSGIWrapper(wsgiref.validate.validator(app), 1024)
    channel = Channel({"type": "http.request", "body": b"data", "more_body": False})
    try:
        await call(wrapper, channel, http_scope(method="POST"))
    finally:
        wrapper.close()
    assert channel.status == 200 and channel.body == b"data"


# -- start_response and the response -----------------------------------------------


async def test_list_body_ends_with_its_last_chunk(wrapper_factory: Any) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("201 Created", [("X-A", "1")])
        return [b"", b"a", b"b"]

    channel = Channel()
    await call(wrapper_factory(app), channel)
    assert channel.sent == [
        {"type": "http.response.start", "status": 201, "headers": [(b"x-a", b"1")]},
        {"type": "http.response.body", "body": b"a", "more_body": True},
        {"type": "http.response.body", "body": b"b", "more_body": False},
    ]


async def test_empty_body(wrapper_factory: Any) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("204 No Content", [])
        return []

    channel = Channel()
    await call(wrapper_factory(app), channel)
    assert channel.status == 204 and channel.body == b"" and channel.complete
    assert len(channel.sent) == 2


async def test_write_callable_and_iterable_together(wrapper_factory: Any) -> None:
    def app(environ: Any, start_response: Any) -> Iterator[bytes]:
        write = start_response("200 OK", [])
        write(b"written,")
        write(b"")
        yield b"yielded"

    channel = Channel()
    await call(wrapper_factory(app), channel)
    assert channel.body == b"written,yielded" and channel.complete


async def test_second_start_response_without_exc_info_is_an_error(
    wrapper_factory: Any,
) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        start_response("404 Not Found", [])
        return []

    channel = Channel()
    with pytest.raises(RuntimeError, match="already called"):
        await call(wrapper_factory(app), channel)
    assert channel.status == 500 and channel.complete


async def test_exc_info_before_the_head_replaces_the_status(wrapper_factory: Any) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("X-Before", "1")])
        try:
            raise ValueError("handled")
        except ValueError:
            start_response("503 Service Unavailable", [("X-After", "1")], sys.exc_info())
        return [b"sorry"]

    channel = Channel()
    await call(wrapper_factory(app), channel)
    assert channel.status == 503 and channel.headers == [(b"x-after", b"1")]
    assert channel.body == b"sorry"


async def test_exc_info_after_the_head_reraises_and_aborts(wrapper_factory: Any) -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"partial"
            raise KeyError("mid-stream")

        def close(self) -> None:
            closed.append(True)

    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [])
        return Body()

    def middleware(environ: Any, start_response: Any) -> Iterator[bytes]:
        try:
            yield from app(environ, start_response)
        except KeyError:
            start_response("500 Internal Server Error", [], sys.exc_info())
            raise AssertionError("start_response should have re-raised") from None

    channel = Channel()
    with pytest.raises(KeyError, match="mid-stream"):
        await call(wrapper_factory(middleware), channel)
    assert channel.status == 200 and channel.body == b"partial"
    assert not channel.complete  # no end of body: the server aborts the stream


async def test_error_before_start_response_is_a_500_then_raised(wrapper_factory: Any) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        raise ZeroDivisionError("early")

    channel = Channel()
    with pytest.raises(ZeroDivisionError):
        await call(wrapper_factory(app), channel)
    assert channel.sent == [
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [(b"content-length", b"0")],
        },
        {"type": "http.response.body", "body": b"", "more_body": False},
    ]


@pytest.mark.parametrize(
    ("status", "headers", "body", "error"),
    [
        ("200", [], [b""], None),
        ("OK", [], [], ValueError),
        (200, [], [], TypeError),
        ("200 OK", [("Bad Name", "x")], [], ValueError),
        ("200 OK", [("x", "a\r\nb")], [], ValueError),
        ("200 OK", [], ["text"], TypeError),
    ],
)
async def test_invalid_responses_become_500(
    wrapper_factory: Any, status: Any, headers: Any, body: Any, error: type | None
) -> None:
    def app(environ: Any, start_response: Any) -> list[Any]:
        start_response(status, headers)
        return list(body)

    channel = Channel()
    if error is None:
        await call(wrapper_factory(app), channel)
        assert channel.status == 200
        return
    with pytest.raises(error):
        await call(wrapper_factory(app), channel)
    assert channel.status == 500


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("200 OK", 200),
        ("404 Not Found", 404),
        ("200", 200),
        ("599 Custom", 599),
        ("099 Low", ValueError),
        ("20 OK", ValueError),
        ("2000 OK", ValueError),
        ("OK 200", ValueError),
        ("", ValueError),
        (b"200 OK", TypeError),
    ],
)
async def test_a_status_line_gives_the_same_code_remembered_or_not(
    status: Any, expected: int | type[Exception]
) -> None:
    for _ in range(2):  # a valid line is read the first time, remembered the second
        if isinstance(expected, int):
            assert _status_code(status) == expected
        else:
            with pytest.raises(expected):
                _status_code(status)


async def test_no_start_response_is_a_500(wrapper_factory: Any) -> None:
    channel = Channel()
    with pytest.raises(RuntimeError, match="start_response"):
        await call(wrapper_factory(lambda environ, start_response: [b"x"]), channel)
    assert channel.status == 500


async def test_write_before_start_response(wrapper_factory: Any) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response.__self__.write(b"x")
        return []

    with pytest.raises(RuntimeError, match="before start_response"):
        await call(wrapper_factory(app), Channel())


class ClosingBody:
    def __init__(self, chunks: list[bytes], fail: bool = False) -> None:
        self.chunks, self.fail, self.closed = chunks, fail, 0

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.fail:
            raise OSError("disk gone")

    def close(self) -> None:
        self.closed += 1


@pytest.mark.parametrize("fail", [False, True])
async def test_close_is_called_on_success_and_error(wrapper_factory: Any, fail: bool) -> None:
    body = ClosingBody([b"a", b"b"], fail)

    def app(environ: Any, start_response: Any) -> ClosingBody:
        start_response("200 OK", [])
        return body

    channel = Channel()
    if fail:
        with pytest.raises(OSError, match="disk gone"):
            await call(wrapper_factory(app), channel)
    else:
        await call(wrapper_factory(app), channel)
    assert body.closed == 1 and channel.body == b"ab" and channel.complete is not fail


async def test_close_is_called_when_the_client_disconnects(wrapper_factory: Any) -> None:
    body = ClosingBody([b"a", b"b", b"c"])

    class Disconnecting(Channel):
        async def send(self, message: dict[str, Any]) -> None:
            if message.get("body") == b"b":
                raise ConnectionResetError("client gone")
            await super().send(message)

    def app(environ: Any, start_response: Any) -> ClosingBody:
        start_response("200 OK", [])
        return body

    channel = Disconnecting()
    with pytest.raises(ConnectionResetError):
        await call(wrapper_factory(app), channel)
    assert body.closed == 1
    assert [m.get("status", m.get("body")) for m in channel.sent] == [200, b"a"]


# -- real frameworks ------------------------------------------------------------------


def _flask_app() -> Any:
    from flask import Flask, Response, abort, request, stream_with_context

    app = Flask("hc_wsgi_test")

    @app.post("/form")
    def form() -> dict[str, Any]:
        return {"name": request.form["name"], "path": request.path, "root": request.root_path}

    @app.get("/stream")
    def stream() -> Response:
        def generate() -> Iterator[str]:
            yield "one,"
            yield "two"

        return Response(stream_with_context(generate()), mimetype="text/plain")

    @app.get("/missing")
    def missing() -> Any:
        abort(404)

    @app.get("/crash")
    def crash() -> Any:
        raise RuntimeError("flask view failed")

    return app


async def test_flask(wrapper_factory: Any) -> None:
    wrapper = wrapper_factory(_flask_app())
    body = b"name=caf%C3%A9"
    channel = Channel({"type": "http.request", "body": body, "more_body": False})
    headers = [(b"host", b"example.com"), (b"content-type", b"application/x-www-form-urlencoded")]
    scope = http_scope(method="POST", path="/api/form", root_path="/api", headers=headers)
    await call(wrapper, channel, scope)
    assert channel.status == 200
    assert json.loads(channel.body) == {"name": "caf\u00e9", "path": "/form", "root": "/api"}

    channel = Channel()
    await call(wrapper, channel, http_scope(path="/stream"))
    assert channel.body == b"one,two" and channel.complete

    channel = Channel()
    await call(wrapper, channel, http_scope(path="/missing"))
    assert channel.status == 404

    channel = Channel()
    await call(wrapper, channel, http_scope(path="/crash"))
    assert channel.status == 500  # Flask turns its own errors into a response


DJANGO_SCRIPT = """
import asyncio, json, sys
from django.conf import settings
from django.http import HttpResponse, StreamingHttpResponse
from django.urls import path

settings.configure(
    DEBUG=False, ROOT_URLCONF=__name__, ALLOWED_HOSTS=["example.com"], SECRET_KEY="x" * 50,
    MIDDLEWARE=[],
)

def echo(request):
    body = request.body
    return HttpResponse(
        json.dumps({"method": request.method, "path": request.path,
                    "script": request.META["SCRIPT_NAME"], "body": body.decode(),
                    "q": request.GET.get("q"), "host": request.get_host()}),
        content_type="application/json",
    )

def stream(request):
    return StreamingHttpResponse(iter([b"a", b"b", b"c"]))

urlpatterns = [path("echo", echo), path("stream", stream)]

from django.core.wsgi import get_wsgi_application
from django.core.asgi import get_asgi_application
from hypercorn.utils import is_asgi, wrap_app
from tests.shared.test_wrappers import Channel, call, http_scope

async def main():
    application = get_wsgi_application()
    wrapper = wrap_app(application, 1024)
    results = {"wsgi_is_asgi": is_asgi(application),
               "asgi_is_asgi": is_asgi(get_asgi_application()),
               "wrapper": type(wrapper).__name__}
    channel = Channel({"type": "http.request", "body": b"x=1", "more_body": False})
    scope = http_scope(method="POST", path="/site/echo", root_path="/site",
                       query_string=b"q=%C3%A9",
                       headers=[(b"host", b"example.com"), (b"content-length", b"3")])
    await call(wrapper, channel, scope)
    results["echo"] = [channel.status, json.loads(channel.body)]
    channel = Channel()
    await call(wrapper, channel, http_scope(path="/stream"))
    results["stream"] = [channel.status, channel.body.decode(), channel.complete]
    channel = Channel()
    await call(wrapper, channel, http_scope(path="/echo", headers=[(b"host", b"evil.com")]))
    results["bad_host"] = channel.status
    wrapper.close()
    print(json.dumps(results))

asyncio.run(main())
"""


async def test_django_wsgi_application(tmp_path: Path) -> None:
    script = tmp_path / "django_wsgi.py"
    script.write_text(textwrap.dedent(DJANGO_SCRIPT))
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": f"{root}:{root / 'src'}", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert results["wsgi_is_asgi"] is False and results["asgi_is_asgi"] is True
    assert results["wrapper"] == "WSGIWrapper"
    assert results["echo"] == [
        200,
        {
            "method": "POST",
            "path": "/site/echo",
            "script": "/site",
            "body": "x=1",
            "q": "\u00e9",
            "host": "example.com",
        },
    ]
    assert results["stream"] == [200, "abc", True]
    assert results["bad_host"] == 400


async def test_input_is_a_fresh_bytesio_per_request() -> None:
    first = build_environ(http_scope(), b"one")["wsgi.input"]
    second = build_environ(http_scope(), b"one")["wsgi.input"]
    assert isinstance(first, io.BytesIO) and first is not second
    assert TIMEOUT > 0
