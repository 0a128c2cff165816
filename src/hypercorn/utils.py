"""Utilities for loading applications and running a server.

The public home of the helpers that the server itself uses: application
loading and wrapping, file watching, the PID file, socket addresses, header
checks, shutdown triggers, and the errors they raise.
"""

from __future__ import annotations

from hypercorn.shared.addresses import parse_socket_addr, repr_socket_addr
from hypercorn.shared.apploading import is_asgi, load_application, wrap_app
from hypercorn.shared.errors import (
    FrameTooLargeError,
    LifespanFailureError,
    LifespanTimeoutError,
    NoAppError,
    ShutdownError,
    UnexpectedMessageError,
)
from hypercorn.shared.files import check_for_updates, files_to_watch, write_pid_file
from hypercorn.shared.headers import (
    build_and_validate_headers,
    filter_pseudo_headers,
    suppress_body,
    valid_server_name,
)
from hypercorn.shared.shutdown import check_multiprocess_shutdown_event, raise_shutdown
from hypercorn.shared.wrappers import AppWrapper, ASGIWrapper, WSGIWrapper

__all__ = [
    "ASGIWrapper",
    "AppWrapper",
    "FrameTooLargeError",
    "LifespanFailureError",
    "LifespanTimeoutError",
    "NoAppError",
    "ShutdownError",
    "UnexpectedMessageError",
    "WSGIWrapper",
    "build_and_validate_headers",
    "check_for_updates",
    "check_multiprocess_shutdown_event",
    "files_to_watch",
    "filter_pseudo_headers",
    "is_asgi",
    "load_application",
    "parse_socket_addr",
    "raise_shutdown",
    "repr_socket_addr",
    "suppress_body",
    "valid_server_name",
    "wrap_app",
    "write_pid_file",
]
