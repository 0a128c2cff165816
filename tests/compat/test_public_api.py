"""The public names a Hypercorn 0.18 user imports, each importable from its Hypercorn path."""

from __future__ import annotations

import importlib

import pytest

PUBLIC = {
    "hypercorn.config": ["Config", "Sockets", "SocketTypeError", "BYTES", "OCTETS", "SECONDS"],
    "hypercorn.asyncio": ["serve"],
    "hypercorn.trio": ["serve"],
    "hypercorn.run": ["run"],
    "hypercorn.logging": ["Logger", "AccessLogAtoms"],
    "hypercorn.middleware": [
        "DispatcherMiddleware", "AsyncioDispatcherMiddleware", "HTTPToHTTPSRedirectMiddleware",
        "ProxyFixMiddleware", "AsyncioWSGIMiddleware", "TrioDispatcherMiddleware",
        "TrioWSGIMiddleware",
    ],
    "hypercorn.middleware.dispatcher": [
        "DispatcherMiddleware", "AsyncioDispatcherMiddleware", "TrioDispatcherMiddleware",
    ],
    "hypercorn.utils": [
        "load_application", "wrap_app", "is_asgi", "files_to_watch", "check_for_updates",
        "write_pid_file", "parse_socket_addr", "repr_socket_addr", "build_and_validate_headers",
        "filter_pseudo_headers", "suppress_body", "valid_server_name", "raise_shutdown",
        "check_multiprocess_shutdown_event", "NoAppError", "ShutdownError",
        "LifespanTimeoutError", "LifespanFailureError", "UnexpectedMessageError",
        "FrameTooLargeError",
    ],
    "hypercorn.typing": [
        "Scope", "HTTPScope", "WebsocketScope", "LifespanScope", "ASGIReceiveCallable",
        "ASGISendCallable", "ASGIFramework", "ConnectionState", "ResponseSummary",
    ],
}  # fmt: skip


def _pairs(table: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(module, name) for module, names in table.items() for name in names]


@pytest.mark.parametrize(("module", "name"), _pairs(PUBLIC))
def test_public_name(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name)


def test_config_is_one_class_under_both_paths() -> None:
    from hypercorn.config import Config
    from hypercorn.shared.config import Config as SharedConfig

    assert Config is SharedConfig
    assert importlib.import_module("hypercorn.middleware").AsyncioDispatcherMiddleware is (
        importlib.import_module("hypercorn.middleware").DispatcherMiddleware
    )
