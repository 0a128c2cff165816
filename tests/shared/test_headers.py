"""Header validation, pseudo-headers, bodiless responses and server names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hypercorn.shared import header_rules as headers_module
from hypercorn.shared.headers import (
    build_and_validate_headers,
    filter_pseudo_headers,
    suppress_body,
    valid_server_name,
)


class TestBuildAndValidateHeaders:
    def test_mapping_of_str(self) -> None:
        headers = {"Content-Type": "text/html", "server": "hypercorn"}
        assert build_and_validate_headers(headers) == [
            (b"content-type", b"text/html"),
            (b"server", b"hypercorn"),
        ]

    def test_pairs_of_bytes_str_and_lists_keep_order_and_repeats(self) -> None:
        headers: list[Any] = [
            (b"Set-Cookie", b"a=1"),
            ["set-cookie", "b=2"],
            ("X-Mixed", b"v"),
            (b"x-bytearray", bytearray(b"w")),
        ]
        assert build_and_validate_headers(headers) == [
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
            (b"x-mixed", b"v"),
            (b"x-bytearray", b"w"),
        ]

    def test_generator_and_empty(self) -> None:
        assert build_and_validate_headers(p for p in [(b"a", b"")]) == [(b"a", b"")]
        assert build_and_validate_headers([]) == []
        assert build_and_validate_headers({}) == []

    def test_latin1_value_is_encoded(self) -> None:
        assert build_and_validate_headers([("x", "caf\u00e9")]) == [(b"x", b"caf\xe9")]

    @pytest.mark.parametrize("name", [b":status", b":authority", ":path"])
    def test_pseudo_header_is_rejected(self, name: Any) -> None:
        with pytest.raises(ValueError, match="pseudo-header"):
            build_and_validate_headers([(name, b"x")])

    def test_empty_name_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="empty"):
            build_and_validate_headers([(b"", b"x")])

    @pytest.mark.parametrize(
        "name", [b"a b", b"a:b", b"a\tb", b"caf\xe9", b"a\r\nb", b"(x)", b'"q"', "na\u00efve"]
    )
    def test_name_outside_token_is_rejected(self, name: Any) -> None:
        with pytest.raises(ValueError):
            build_and_validate_headers([(name, b"x")])

    @pytest.mark.parametrize("value", [b"a\rb", b"a\nb", b"a\x00b", "a\r\nInjected: 1"])
    def test_value_with_cr_lf_nul_is_rejected(self, value: Any) -> None:
        with pytest.raises(ValueError, match="CR, LF or NUL"):
            build_and_validate_headers([(b"x", value)])

    @pytest.mark.parametrize("byte", range(256))
    def test_every_byte_of_a_value_is_judged_by_rfc_9110(self, byte: int) -> None:
        # Only CR, LF and NUL are refused, wherever they stand in the value.
        for value in (bytes([byte]), b"a" + bytes([byte]), bytes([byte]) + b"b", b"a%cb" % byte):
            if byte in (0x0D, 0x0A, 0x00):
                with pytest.raises(ValueError, match="CR, LF or NUL"):
                    build_and_validate_headers([(b"x", value)])
            else:
                assert build_and_validate_headers([(b"x", value)]) == [(b"x", value)]

    def test_value_outside_latin1_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="latin-1"):
            build_and_validate_headers([("x", "\u20ac")])

    @pytest.mark.parametrize(
        "headers",
        [
            [(b"a", b"b", b"c")],
            [(b"a",)],
            [b"ab"],
            ["ab"],
            [42],
            [(b"a", 1)],
            [(1, b"a")],
            [(None, b"a")],
            b"a: b",
            "a: b",
            42,
        ],
    )
    def test_non_pairs_are_type_errors(self, headers: Any) -> None:
        with pytest.raises(TypeError):
            build_and_validate_headers(headers)

    @given(
        st.lists(
            st.tuples(
                st.from_regex(rb"\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z"),
                st.binary().filter(lambda v: not any(c in v for c in b"\r\n\x00")),
            )
        )
    )
    def test_valid_headers_round_trip_with_lowered_names(
        self, headers: list[tuple[bytes, bytes]]
    ) -> None:
        assert build_and_validate_headers(headers) == [(n.lower(), v) for n, v in headers]


def test_filter_pseudo_headers_keeps_the_rest_in_order() -> None:
    headers = [
        (b":method", b"GET"),
        (b":path", b"/test"),
        (b"user-agent", b"test-client"),
        (b":authority", b"example.com"),
        (b"accept", b"*/*"),
    ]
    assert filter_pseudo_headers(headers) == [(b"user-agent", b"test-client"), (b"accept", b"*/*")]
    assert filter_pseudo_headers([]) == []


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        ("HEAD", 200, True),
        ("HEAD", 404, True),
        ("GET", 100, True),
        ("GET", 101, True),
        ("GET", 103, True),
        ("GET", 204, True),
        ("GET", 304, True),
        ("POST", 204, True),
        ("GET", 200, False),
        ("POST", 201, False),
        ("GET", 205, False),
        ("GET", 404, False),
        ("GET", 500, False),
        ("head", 200, False),  # methods are case-sensitive (RFC 9110 section 9.1)
    ],
)
def test_suppress_body(method: str, status: int, expected: bool) -> None:
    assert suppress_body(method, status) is expected


@dataclass
class Names:
    server_names: list[str] = field(default_factory=list)


@dataclass
class Request:
    headers: Any


def _valid(names: list[str], host: str | None, *, as_pairs: bool = True) -> bool:
    if host is None:
        headers: Any = [] if as_pairs else {}
    elif as_pairs:
        headers = [(b"accept", b"*/*"), (b"host", host.encode())]
    else:
        headers = {"Host": host}
    return valid_server_name(Names(names), Request(headers))


class TestValidServerName:
    def test_no_names_accepts_everything(self) -> None:
        assert _valid([], "anything.test")
        assert _valid([], None)

    @pytest.mark.parametrize("as_pairs", [True, False])
    def test_exact_match_ignores_case_and_port(self, as_pairs: bool) -> None:
        names = ["example.com"]
        assert _valid(names, "example.com", as_pairs=as_pairs)
        assert _valid(names, "EXAMPLE.com:8000", as_pairs=as_pairs)
        assert _valid(names, "example.com.", as_pairs=as_pairs)
        assert not _valid(names, "example.org", as_pairs=as_pairs)
        assert not _valid(names, "www.example.com", as_pairs=as_pairs)

    def test_entry_with_port_matches_that_host_and_port(self) -> None:
        assert _valid(["example.com:8000"], "example.com:8000")
        assert not _valid(["example.com:8000"], "example.com:9000")

    def test_wildcard_matches_one_or_more_labels_not_the_apex(self) -> None:
        names = ["*.example.com"]
        assert _valid(names, "api.example.com")
        assert _valid(names, "a.b.example.com:443")
        assert not _valid(names, "example.com")
        assert not _valid(names, ".example.com")
        assert not _valid(names, "a..example.com")
        assert not _valid(names, "badexample.com")

    def test_ipv6_literals(self) -> None:
        assert _valid(["[::1]"], "[::1]:8000")
        assert _valid(["::1"], "[::1]:8000")
        assert _valid(["::1"], "[::1]")
        assert not _valid(["::2"], "[::1]:8000")

    def test_missing_host_is_invalid(self) -> None:
        assert not _valid(["example.com"], None)
        assert not _valid(["example.com"], None, as_pairs=False)

    def test_authority_pseudo_header_stands_in_for_host(self) -> None:
        request = Request([(b":authority", b"example.com:443")])
        assert valid_server_name(Names(["example.com"]), request)

    def test_host_header_name_is_case_insensitive_in_pairs(self) -> None:
        request = Request([(b"Host", b"example.com")])
        assert valid_server_name(Names(["example.com"]), request)

    def test_bytes_mapping(self) -> None:
        request = Request({b"host": b"api.service.local"})
        assert valid_server_name(Names(["api.service.local"]), request)

    def test_the_seed_example(self) -> None:
        names = ["example.com", "*.example.com", "api.service.local"]
        hosts = ["example.com", "api.example.com", "invalid.com", "api.service.local"]
        results = [_valid(names, host, as_pairs=False) for host in hosts]
        assert results == [True, True, False, True]


def test_remembered_names_are_still_lowered_and_bounded() -> None:
    for _ in range(2):  # the second pass answers from the remembered names
        assert build_and_validate_headers([(b"X-Mixed-Case", b"1"), (b"x-mixed-case", b"2")]) == [
            (b"x-mixed-case", b"1"),
            (b"x-mixed-case", b"2"),
        ]
        with pytest.raises(ValueError, match="not a valid token"):
            build_and_validate_headers([(b"bad name", b"v")])
    for number in range(headers_module._VALID_NAMES_MAX + 10):
        build_and_validate_headers([(b"x-n-%d" % number, b"v")])
    assert len(headers_module._VALID_NAMES) <= headers_module._VALID_NAMES_MAX
