"""The server's errors keep their arguments, pickle, and read well."""

from __future__ import annotations

import enum
import pickle

import pytest

from hypercorn.shared.errors import (
    FrameTooLargeError,
    LifespanFailureError,
    LifespanTimeoutError,
    NoAppError,
    ShutdownError,
    UnexpectedMessageError,
)


class State(enum.Enum):
    WAITING = enum.auto()
    BODY = enum.auto()


@pytest.mark.parametrize("cls", [NoAppError, ShutdownError, FrameTooLargeError])
def test_plain_errors_are_exceptions(cls: type[Exception]) -> None:
    error = cls("why")
    assert isinstance(error, Exception)
    assert str(error) == "why"
    assert str(cls()) == ""


@pytest.mark.parametrize("stage", ["startup", "shutdown"])
def test_lifespan_timeout_names_the_stage_and_its_setting(stage: str) -> None:
    error = LifespanTimeoutError(stage)
    assert error.stage == stage
    assert f"lifespan {stage}" in str(error)
    assert f"{stage}_timeout" in str(error)


def test_lifespan_failure_names_stage_and_message() -> None:
    error = LifespanFailureError("startup", "database unreachable")
    assert (error.stage, error.message) == ("startup", "database unreachable")
    assert str(error) == "Lifespan failure in startup: database unreachable"


def test_lifespan_failure_without_a_message() -> None:
    error = LifespanFailureError("shutdown", "")
    assert "shutdown" in str(error) and "no message" in str(error)


def test_unexpected_message_names_type_and_enum_state() -> None:
    error = UnexpectedMessageError(State.BODY, "http.response.start")
    assert error.state is State.BODY
    assert error.message_type == "http.response.start"
    assert str(error) == "Unexpected ASGI message type 'http.response.start' in state BODY"


def test_unexpected_message_accepts_a_state_name() -> None:
    error = UnexpectedMessageError("CLOSED", "websocket.send")
    assert error.state == "CLOSED"
    assert "CLOSED" in str(error) and "'websocket.send'" in str(error)


@pytest.mark.parametrize(
    "error",
    [
        NoAppError("x"),
        ShutdownError(),
        FrameTooLargeError("big"),
        LifespanTimeoutError("startup"),
        LifespanFailureError("startup", "boom"),
        UnexpectedMessageError("BODY", "http.response.body"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_survive_pickling(error: Exception) -> None:
    # Errors cross from worker to master; the arguments must come back whole.
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert copy.args == error.args
    assert str(copy) == str(error)
