"""The errors the server raises about applications, lifespan and protocols.

Each error keeps the arguments it was built with as attributes and as
``args`` (so it survives pickling between processes), and renders a readable
message through ``__str__``.
"""

from __future__ import annotations

import enum

__all__ = [
    "FrameTooLargeError",
    "LifespanFailureError",
    "LifespanTimeoutError",
    "NoAppError",
    "ShutdownError",
    "UnexpectedMessageError",
    "WSGIClientGoneError",
]


class NoAppError(Exception):
    """Raised when an application cannot be loaded from its path.

    The module is not found, the attribute is missing, or the object found is
    not an application.
    """


class AppModeError(NoAppError, ValueError):
    """The application path forces a mode that is unknown or contradicts the app.

    A ``ValueError`` (as the mode check promises) and a ``NoAppError`` (so the
    command line reports it as an application that cannot be loaded).
    """


class ShutdownError(Exception):
    """Raised to unwind a server once its shutdown trigger has fired."""


class FrameTooLargeError(Exception):
    """Raised when a protocol frame or message exceeds its configured size limit."""


class LifespanTimeoutError(Exception):
    """Raised when the application does not answer a lifespan event in time."""

    def __init__(self, stage: str) -> None:
        """Build the error.

        Args:
            stage: the lifespan stage that timed out, ``"startup"`` or ``"shutdown"``.
        """
        super().__init__(stage)
        self.stage = stage

    def __str__(self) -> str:
        return (
            f"Timeout whilst awaiting lifespan {self.stage}: the application may not "
            "support the ASGI lifespan protocol correctly, or the "
            f"{self.stage}_timeout setting is too short."
        )


class LifespanFailureError(Exception):
    """Raised when the application reports that a lifespan stage failed."""

    def __init__(self, stage: str, message: str) -> None:
        """Build the error.

        Args:
            stage: the lifespan stage that failed, ``"startup"`` or ``"shutdown"``.
            message: the application's own description of the failure.
        """
        super().__init__(stage, message)
        self.stage = stage
        self.message = message

    def __str__(self) -> str:
        if self.message:
            return f"Lifespan failure in {self.stage}: {self.message}"
        return f"Lifespan failure in {self.stage} (the application gave no message)."


class UnexpectedMessageError(Exception):
    """Raised when an application sends an ASGI message its state does not allow."""

    def __init__(self, state: enum.Enum | str, message_type: str) -> None:
        """Build the error.

        Args:
            state: the state of the connection or stream when the message arrived,
                an ``Enum`` member or its name.
            message_type: the ``type`` of the unexpected message.
        """
        super().__init__(state, message_type)
        self.state = state
        self.message_type = message_type

    def __str__(self) -> str:
        state = self.state.name if isinstance(self.state, enum.Enum) else str(self.state)
        return f"Unexpected ASGI message type {self.message_type!r} in state {state}"


class ClientDisconnectedError(OSError):
    """Raised by ``send`` once the client has gone (ASGI HTTP spec 2.4).

    Defined here rather than beside the ASGI streams: their module is compiled,
    and a compiled class cannot derive from ``OSError``.
    """


class StreamStateError(RuntimeError):
    """The server tried to send an HTTP/2 frame its stream's state does not allow.

    Defined here rather than beside the stream states: their module is compiled,
    and a compiled class cannot derive from ``RuntimeError`` (which the ASGI
    stream catches to turn a refused response head into a 500).
    """


class WSGIClientGoneError(OSError):
    """Raised in a WSGI thread once its request was cancelled (the client left).

    Defined here rather than beside the WSGI hand-off (``shared/wsgi.py``, which
    re-exports it): that module is compiled, and a compiled class cannot derive
    from ``OSError``.
    """
