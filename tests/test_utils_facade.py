"""``hypercorn.utils`` is the public API of the seed: its names and signatures are pinned."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import hypercorn.utils as utils
from hypercorn.config import Config
from hypercorn.shared import addresses, apploading, errors, files, headers, shutdown, wrappers

PUBLIC = {
    # name: (implementation module, parameter names)
    "load_application": (apploading, ["path", "wsgi_max_body_size"]),
    "wrap_app": (apploading, ["app", "wsgi_max_body_size", "mode"]),
    "is_asgi": (apploading, ["app"]),
    "files_to_watch": (files, ["extra_paths"]),
    "check_for_updates": (files, ["files"]),
    "write_pid_file": (files, ["pid_path"]),
    "parse_socket_addr": (addresses, ["family", "address"]),
    "repr_socket_addr": (addresses, ["family", "address"]),
    "build_and_validate_headers": (headers, ["headers"]),
    "filter_pseudo_headers": (headers, ["headers"]),
    "suppress_body": (headers, ["method", "status_code"]),
    "valid_server_name": (headers, ["config", "request"]),
    "raise_shutdown": (shutdown, ["shutdown_event"]),
    "check_multiprocess_shutdown_event": (shutdown, ["shutdown_event", "sleep"]),
}

EXCEPTIONS = {
    "NoAppError": [],
    "ShutdownError": [],
    "FrameTooLargeError": [],
    "LifespanTimeoutError": ["stage"],
    "LifespanFailureError": ["stage", "message"],
    "UnexpectedMessageError": ["state", "message_type"],
}

WRAPPERS = ["ASGIWrapper", "WSGIWrapper", "AppWrapper"]


def test_all_lists_exactly_the_public_names() -> None:
    assert sorted(utils.__all__) == sorted([*PUBLIC, *EXCEPTIONS, *WRAPPERS])
    for name in utils.__all__:
        assert hasattr(utils, name), name


@pytest.mark.parametrize("name", PUBLIC)
def test_functions_are_the_shared_implementations(name: str) -> None:
    module, parameters = PUBLIC[name]
    function = getattr(utils, name)
    assert function is getattr(module, name)
    assert list(inspect.signature(function).parameters) == parameters
    assert function.__doc__ and "Args:" in function.__doc__


@pytest.mark.parametrize("name", ["raise_shutdown", "check_multiprocess_shutdown_event"])
def test_shutdown_helpers_are_coroutine_functions(name: str) -> None:
    assert inspect.iscoroutinefunction(getattr(utils, name))


@pytest.mark.parametrize("name", EXCEPTIONS)
def test_exceptions(name: str) -> None:
    cls = getattr(utils, name)
    assert cls is getattr(errors, name)
    assert issubclass(cls, Exception)
    if EXCEPTIONS[name]:
        init = inspect.signature(cls.__init__)
        assert list(init.parameters)[1:] == EXCEPTIONS[name]


def test_wrappers_are_exported() -> None:
    assert utils.ASGIWrapper is wrappers.ASGIWrapper
    assert utils.WSGIWrapper is wrappers.WSGIWrapper


def test_wrap_app_mode_defaults_to_detection() -> None:
    assert inspect.signature(utils.wrap_app).parameters["mode"].default is None


def test_valid_server_name_with_the_real_config() -> None:
    class Request:
        def __init__(self, host: str) -> None:
            self.headers: Any = [(b"host", host.encode())]

    config = Config()
    assert utils.valid_server_name(config, Request("anything"))
    config.server_names = ["example.com", "*.example.com"]
    assert utils.valid_server_name(config, Request("www.example.com:8080"))
    assert not utils.valid_server_name(config, Request("example.org"))
