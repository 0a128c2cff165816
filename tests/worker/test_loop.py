"""Event-loop choice: asyncio or uvloop, one code path."""

from __future__ import annotations

import asyncio

import pytest

from hypercorn.shared.validators import ConfigError
from hypercorn.worker import loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


@pytest.mark.parametrize(("worker_class", "module"), [("asyncio", "asyncio"), ("uvloop", "uvloop")])
def test_run_uses_the_worker_class_loop(worker_class: str, module: str) -> None:
    assert loop.run(_loop_module(), worker_class).startswith(module)


def test_unknown_worker_class_is_a_config_error_and_closes_the_coroutine() -> None:
    coroutine = _loop_module()
    with pytest.raises(ConfigError, match="worker_class"):
        loop.run(coroutine, "trio")
    assert coroutine.cr_frame is None  # closed, so no "never awaited" warning


def test_factory_returns_new_loops() -> None:
    factory = loop.loop_factory("asyncio")
    first, second = factory(), factory()
    try:
        assert first is not second
    finally:
        first.close()
        second.close()
