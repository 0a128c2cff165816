"""WSGI (PEP 3333) over ASGI: the environ of a request, and the response side.

Theory of operation
-------------------
``WSGIWrapper`` (in ``wrappers``) reads the whole request body on the event
loop, builds the environ here, and runs ``WSGIResponder`` in a worker thread.
The responder calls the application, implements ``start_response`` and
``write``, and hands ASGI messages to ``send_messages``, a blocking callable
that runs the server's ``send`` on the loop and waits for it: a slow client
therefore holds the WSGI thread, which is the back-pressure WSGI expects.

Invariants:

* ``http.response.start`` is sent with the first non-empty body chunk, or when
  the iterable is exhausted (PEP 3333, "Buffering and Streaming"), so a status
  replaced through ``start_response(..., exc_info)`` before then wins.
* The iterable's ``close()`` is called whatever happens: success, application
  error, or a ``send`` that fails because the client is gone.
* An error before the head was sent becomes a 500 response, then propagates
  so the server logs it; an error after it propagates as is, and the server
  aborts the stream (a complete-looking truncated response would be a lie).
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from hypercorn.shared.headers import build_and_validate_headers
from hypercorn.typing import ASGISendEvent, HTTPScope

__all__ = ["SendMessages", "WSGIResponder", "build_environ"]

SendMessages = Callable[[list[ASGISendEvent]], None]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _path_info(path: str, root_path: str) -> str:
    if root_path and (path == root_path or path.startswith(root_path + "/")):
        path = path[len(root_path) :]
    # PEP 3333 "Unicode issues": native strings carry the bytes as latin-1.
    return path.encode("utf-8", "surrogateescape").decode("latin-1")


def build_environ(scope: HTTPScope, body: bytes) -> dict[str, Any]:
    """Build the PEP 3333 environ of an ASGI ``http`` request.

    Args:
        scope: the request's ASGI scope.
        body: the complete request body.

    Returns:
        The environ. Header names with ``_`` are left out, since ``HTTP_X_A``
        could otherwise be forged with ``x_a:`` where a proxy checked ``x-a:``;
        repeated headers are joined with ``", "`` (``cookie`` with ``"; "``).
    """
    scheme = scope.get("scheme", "http")
    server = scope.get("server")
    if server is not None and server[1] is not None:
        server_name, server_port = str(server[0]), str(server[1])
    else:
        server_name, server_port = "localhost", _DEFAULT_PORTS.get(scheme, "80")
    root_path = scope.get("root_path", "")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": root_path.encode("utf-8", "surrogateescape").decode("latin-1"),
        "PATH_INFO": _path_info(scope["path"], root_path),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    client = scope.get("client")
    if client is not None:
        environ["REMOTE_ADDR"] = str(client[0])
        environ["REMOTE_PORT"] = str(client[1])
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        if "_" in name or name.startswith(":"):
            continue
        value = raw_value.decode("latin-1")
        if name == "content-type":
            key = "CONTENT_TYPE"
        elif name == "content-length":
            key = "CONTENT_LENGTH"
        else:
            key = "HTTP_" + name.upper().replace("-", "_")
        if key in environ:
            separator = "; " if name == "cookie" else ", "
            value = environ[key] + separator + value
        environ[key] = value
    if body or "CONTENT_LENGTH" in environ:
        # The body is complete: its length is known even for a chunked request.
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _status_code(status: object) -> int:
    if not isinstance(status, str):
        raise TypeError(f"the WSGI status must be a str, not {type(status).__name__}")
    code, _, _ = status.partition(" ")
    if len(code) != 3 or not code.isdigit() or int(code) < 100:
        raise ValueError(f"invalid WSGI status {status!r}: expected e.g. '200 OK'")
    return int(code)


class WSGIResponder:
    """One WSGI call, run in a worker thread (see the module docstring)."""

    def __init__(self, app: WSGIApp, environ: dict[str, Any], send_messages: SendMessages):
        """Prepare the call.

        Args:
            app: the WSGI application.
            environ: the request's environ.
            send_messages: blocking; sends ASGI messages in order on the event loop.
        """
        self.app = app
        self.environ = environ
        self._send_messages = send_messages
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_sent = False
        self.send_failed = False

    def __call__(self) -> None:
        """Run the application and send its response.

        Raises:
            Exception: whatever the application or ``send`` raised.
        """
        try:
            self._run()
        except BaseException:
            if not self.headers_sent and not self.send_failed:
                self.status, self.headers = 500, [(b"content-length", b"0")]
                # The application's error is the one worth raising, not this one's.
                with contextlib.suppress(Exception):
                    self._emit(b"", more_body=False)
            raise

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """The ``start_response`` callable of PEP 3333.

        Args:
            status: e.g. ``"200 OK"``.
            headers: ``(name, value)`` pairs of ``str``.
            exc_info: ``sys.exc_info()`` when called from an error handler.

        Returns:
            The ``write`` callable.

        Raises:
            RuntimeError: a second call without ``exc_info``.
            BaseException: the ``exc_info`` error, when the head was already sent.
            TypeError, ValueError: an invalid status or header.
        """
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the frame <-> traceback cycle
        elif self.status is not None:
            raise RuntimeError("start_response() was already called (pass exc_info to retry)")
        code = _status_code(status)
        validated = build_and_validate_headers(headers)
        self.status, self.headers = code, validated
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy ``write`` callable of PEP 3333: send ``data`` now.

        Args:
            data: body bytes.

        Raises:
            RuntimeError: ``start_response`` was not called yet.
            TypeError: ``data`` is not bytes.
        """
        if self.status is None:
            raise RuntimeError("write() was called before start_response()")
        if data:
            self._emit(_as_bytes(data), more_body=True)

    def _run(self) -> None:
        result = self.app(self.environ, self.start_response)
        try:
            if isinstance(result, list | tuple):
                # A sequence's end is known: its last chunk ends the body, one send fewer.
                chunks = [_as_bytes(chunk) for chunk in result if chunk]
                for chunk in chunks[:-1]:
                    self._emit(chunk, more_body=True)
                self._emit(chunks[-1] if chunks else b"", more_body=False)
            else:
                for chunk in result:
                    if chunk:
                        self._emit(_as_bytes(chunk), more_body=True)
                self._emit(b"", more_body=False)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _emit(self, body: bytes, *, more_body: bool) -> None:
        messages: list[ASGISendEvent] = []
        if not self.headers_sent:
            if self.status is None:
                raise RuntimeError("the WSGI application did not call start_response()")
            messages.append(
                {"type": "http.response.start", "status": self.status, "headers": self.headers}
            )
            self.headers_sent = True
        messages.append({"type": "http.response.body", "body": body, "more_body": more_body})
        try:
            self._send_messages(messages)
        except BaseException:
            self.send_failed = True
            raise


def _as_bytes(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    raise TypeError(f"a WSGI body chunk must be bytes, not {type(chunk).__name__}")
