"""Access-log atoms: every atom, its fallbacks, and whole format strings.

The atoms mean what Hypercorn 0.18's mean (``h`` is ``host:port``, ``r`` is
``METHOD path protocol``, ``st`` the phrase alone); gunicorn's lines are
written with other formats, shown in ``TestFormats``.
"""

from __future__ import annotations

import base64
import os
import re
import time
from typing import Any

import pytest

from hypercorn.logging import AccessLogAtoms


def http_scope(**changes: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/caf\u00e9 menu",
        "raw_path": b"/caf%C3%A9%20menu",
        "query_string": b"a=1&b=2",
        "root_path": "",
        "headers": [
            (b"host", b"example.com"),
            (b"User-Agent", b"curl/8.5"),
            (b"referer", b"https://example.com/start"),
            (b"x-multi", b"one"),
            (b"x-multi", b"two"),
        ],
        "client": ("192.0.2.7", 50123),
        "server": ("192.0.2.1", 443),
    }
    scope.update(changes)
    return scope


def render(log_format: str, atoms: AccessLogAtoms) -> str:
    """A line as the access log writes it: the format applied to the atoms."""
    return log_format % atoms


def response(status: int = 200, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"Content-Type", b"text/plain"), (b"content-length", b"42")],
    }
    message.update(extra)
    return message


class TestRequestAtoms:
    def test_remote_host_is_the_client_address(self) -> None:
        assert AccessLogAtoms(http_scope(), None, 0)["h"] == "192.0.2.7:50123"

    @pytest.mark.parametrize(
        ("client", "expected"),
        [
            (None, "-"),
            ("missing", "-"),
            (("", 0), "-"),
            (["/run/app.sock"], "/run/app.sock"),
            ("/run/app.sock", "/run/app.sock"),
            (["::1", 8000], "[::1]:8000"),
        ],
    )
    def test_remote_host_without_a_tcp_client(self, client: Any, expected: str) -> None:
        scope = http_scope(client=client)
        if client == "missing":
            del scope["client"]
        assert AccessLogAtoms(scope, None, 0)["h"] == expected

    def test_l_is_a_dash(self) -> None:
        assert AccessLogAtoms(http_scope(), None, 0)["l"] == "-"

    def test_user_from_basic_auth(self) -> None:
        token = base64.b64encode(b"alice:s3cret:with:colons").decode()
        headers = [(b"authorization", f"Basic {token}".encode())]
        assert AccessLogAtoms(http_scope(headers=headers), None, 0)["u"] == "alice"

    @pytest.mark.parametrize(
        "value",
        [None, b"Bearer abc", b"Basic !!!not-base64", b"Basic " + base64.b64encode(b"\xff:x")],
    )
    def test_user_is_a_dash_without_usable_basic_auth(self, value: bytes | None) -> None:
        headers = [] if value is None else [(b"authorization", value)]
        assert AccessLogAtoms(http_scope(headers=headers), None, 0)["u"] == "-"

    def test_time_is_common_log_format(self) -> None:
        before = time.time()
        stamp = AccessLogAtoms(http_scope(), None, 0)["t"]
        assert re.fullmatch(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", stamp)
        parsed = time.mktime(time.strptime(stamp[1:-7], "%d/%b/%Y:%H:%M:%S"))
        assert before - 2 <= parsed <= time.time() + 1

    def test_request_line_is_method_path_and_protocol(self) -> None:
        atoms = AccessLogAtoms(http_scope(), None, 0)
        assert atoms["r"] == "POST /caf\u00e9 menu 1.1"
        assert atoms["R"] == "POST /caf\u00e9 menu?a=1&b=2 1.1"

    def test_request_line_without_a_query(self) -> None:
        atoms = AccessLogAtoms(http_scope(query_string=b""), None, 0)
        assert atoms["r"] == atoms["R"] == "POST /caf\u00e9 menu 1.1"

    def test_method_path_and_query(self) -> None:
        atoms = AccessLogAtoms(http_scope(), None, 0)
        assert atoms["m"] == "POST"
        assert atoms["U"] == "/caf\u00e9 menu"
        assert atoms["q"] == "a=1&b=2"
        assert atoms["Uq"] == "/caf\u00e9 menu?a=1&b=2"

    def test_control_characters_cannot_forge_a_line(self) -> None:
        atoms = AccessLogAtoms(http_scope(path="/a\nb", raw_path=None), None, 0)
        assert "\n" not in atoms["U"] and "\n" not in atoms["r"]
        assert atoms["U"] == "/a\\nb"

    @pytest.mark.parametrize("version", ["1.0", "1.1", "2", "3"])
    def test_protocol_is_the_http_version(self, version: str) -> None:
        atoms = AccessLogAtoms(http_scope(http_version=version), None, 0)
        assert atoms["H"] == version
        assert atoms["r"].endswith(" " + version)

    def test_scheme(self) -> None:
        assert AccessLogAtoms(http_scope(), None, 0)["S"] == "https"

    def test_referer_and_user_agent(self) -> None:
        atoms = AccessLogAtoms(http_scope(), None, 0)
        assert atoms["f"] == "https://example.com/start"
        assert atoms["a"] == "curl/8.5"

    def test_referer_and_user_agent_default_to_a_dash(self) -> None:
        atoms = AccessLogAtoms(http_scope(headers=[]), None, 0)
        assert (atoms["f"], atoms["a"]) == ("-", "-")

    def test_request_headers_are_case_insensitive(self) -> None:
        atoms = AccessLogAtoms(http_scope(), None, 0)
        assert atoms["{host}i"] == "example.com"
        assert atoms["{Host}i"] == "example.com"
        assert atoms["{USER-AGENT}i"] == "curl/8.5"
        assert atoms["{x-absent}i"] == "-"

    def test_repeated_headers_are_joined(self) -> None:
        assert AccessLogAtoms(http_scope(), None, 0)["{X-Multi}i"] == "one,two"

    def test_header_lists_as_lists(self) -> None:
        scope = http_scope(headers=[[b"host", b"h.example"]])
        assert AccessLogAtoms(scope, None, 0)["{host}i"] == "h.example"

    def test_header_names_that_are_not_bytes(self) -> None:
        scope = http_scope(headers=[(memoryview(b"Host"), bytearray(b"m.example")), ("X-S", 1)])
        atoms = AccessLogAtoms(scope, None, 0)
        assert (atoms["{host}i"], atoms["{x-s}i"]) == ("m.example", "1")


class TestResponseAtoms:
    def test_status_and_phrase(self) -> None:
        atoms = AccessLogAtoms(http_scope(), response(404), 0)
        assert atoms["s"] == "404"
        assert atoms["st"] == "Not Found"

    def test_unregistered_status_is_marked(self) -> None:
        atoms = AccessLogAtoms(http_scope(), response(599), 0)
        assert (atoms["s"], atoms["st"]) == ("599", "<???599???>")

    def test_no_response(self) -> None:
        atoms = AccessLogAtoms(http_scope(), None, 0)
        assert (atoms["s"], atoms["st"], atoms["b"], atoms["B"]) == ("-", "-", "-", "0")
        assert atoms["{content-type}o"] == "-"

    def test_response_headers_are_case_insensitive(self) -> None:
        atoms = AccessLogAtoms(http_scope(), response(), 0)
        assert atoms["{content-type}o"] == "text/plain"
        assert atoms["{Content-Type}o"] == "text/plain"

    def test_length_from_content_length(self) -> None:
        atoms = AccessLogAtoms(http_scope(), response(), 0)
        assert (atoms["b"], atoms["B"]) == ("42", "42")

    def test_length_from_body_size_wins(self) -> None:
        atoms = AccessLogAtoms(http_scope(), response(body_size=7), 0)
        assert (atoms["b"], atoms["B"]) == ("7", "7")

    def test_empty_body_is_a_dash_in_b_and_zero_in_b_upper(self) -> None:
        atoms = AccessLogAtoms(http_scope(), response(204, headers=[], body_size=0), 0)
        assert (atoms["b"], atoms["B"]) == ("-", "0")

    def test_unknown_length(self) -> None:
        atoms = AccessLogAtoms(http_scope(), response(headers=[]), 0)
        assert (atoms["b"], atoms["B"]) == ("-", "0")


class TestDurationAndProcess:
    def test_durations(self) -> None:
        atoms = AccessLogAtoms(http_scope(), None, 2.0123456)
        assert atoms["T"] == 2
        assert atoms["D"] == 2_012_345
        assert atoms["L"] == "2.012346"

    def test_pid(self) -> None:
        assert AccessLogAtoms(http_scope(), None, 0)["p"] == f"<{os.getpid()}>"


class TestEnvironmentAndUnknownAtoms:
    def test_environment_variables(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HYPERCORN_TEST_ATOM", "value")
        atoms = AccessLogAtoms(http_scope(), None, 0)
        assert atoms["{HYPERCORN_TEST_ATOM}e"] == "value"
        assert atoms["{hypercorn_test_atom}e"] == "value"
        monkeypatch.setenv("Hypercorn_Mixed_Atom", "mixed")
        assert atoms["{hypercorn_mixed_atom}e"] == "mixed"
        monkeypatch.delenv("HYPERCORN_TEST_ATOM")
        assert atoms["{HYPERCORN_TEST_ATOM}e"] == "-"

    def test_unknown_atoms_are_a_dash(self) -> None:
        atoms = AccessLogAtoms(http_scope(), None, 0)
        assert atoms["zz"] == "-"
        assert render("%(zz)s %({nope}x)s", atoms) == "- -"


class TestWebsocket:
    def ws_scope(self) -> dict[str, Any]:
        scope = http_scope(type="websocket", scheme="wss", query_string=b"")
        del scope["method"]
        return scope

    def test_accepted(self) -> None:
        atoms = AccessLogAtoms(self.ws_scope(), {"status": 101, "headers": []}, 1.5)
        assert atoms["r"] == "GET /caf\u00e9 menu 1.1"
        assert (atoms["m"], atoms["S"], atoms["s"]) == ("GET", "wss", "101")
        assert atoms["st"] == "Switching Protocols"

    def test_denied(self) -> None:
        atoms = AccessLogAtoms(self.ws_scope(), {"status": 403, "headers": []}, 0)
        assert atoms["s"] == "403"

    def test_minimal_scope(self) -> None:
        atoms = AccessLogAtoms({"type": "websocket", "path": "/ws"}, None, 0)
        assert atoms["r"] == "GET /ws -"
        assert (atoms["h"], atoms["S"], atoms["H"]) == ("-", "ws", "-")


class TestFormats:
    def test_short_format(self) -> None:
        atoms = AccessLogAtoms(http_scope(), response(201, body_size=3), 0.25)
        line = render("%(h)s %(R)s %(s)s %(b)s %(D)s", atoms)
        assert line == "192.0.2.7:50123 POST /caf\u00e9 menu?a=1&b=2 1.1 201 3 250000"

    def test_header_format(self) -> None:
        atoms = AccessLogAtoms(http_scope(), response(), 0)
        line = render('"%({Host}i)s" "%({content-type}o)s" "%({x-nothing}o)s"', atoms)
        assert line == '"example.com" "text/plain" "-"'

    def test_default_format_is_hypercorns(self) -> None:
        from hypercorn.shared.settings import DEFAULT_ACCESS_LOG_FORMAT

        assert DEFAULT_ACCESS_LOG_FORMAT == (
            '%(h)s %(l)s %(l)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
        )
        atoms = AccessLogAtoms(http_scope(), response(), 0)
        pattern = (
            r'192\.0\.2\.7:50123 - - \[[^]]+\] "POST /caf\u00e9 menu 1\.1" 200 42 '
            r'"https://example\.com/start" "curl/8\.5"'
        )
        assert re.fullmatch(pattern, render(DEFAULT_ACCESS_LOG_FORMAT, atoms))

    def test_gunicorn_style_request_line(self) -> None:
        # gunicorn's "%(r)s" is "METHOD target HTTP/version"; here it is written so.
        atoms = AccessLogAtoms(http_scope(), response(), 0)
        line = render("%(m)s %(Uq)s HTTP/%(H)s", atoms)
        assert line == "POST /caf\u00e9 menu?a=1&b=2 HTTP/1.1"
