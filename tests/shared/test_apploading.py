"""Application paths, ASGI/WSGI detection and wrapping, on real modules."""

from __future__ import annotations

import functools
import itertools
import os
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hypercorn.shared.apploading import is_asgi, load_application, wrap_app
from hypercorn.shared.errors import NoAppError
from hypercorn.shared.wrappers import ASGIWrapper, WSGIWrapper

_counter = itertools.count()

MODULE = """
async def app(scope, receive, send):
    pass

def wsgi_app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]

class Holder:
    inner = app

not_an_app = 42

def create_app(*args, **kwargs):
    async def made(scope, receive, send):
        pass
    made.args = args
    made.kwargs = kwargs
    return made

def create_wsgi():
    return wsgi_app

async def async_factory():
    return app
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh cwd that is not on ``sys.path``; modules imported here are forgotten after."""
    monkeypatch.chdir(tmp_path)
    cwd = os.getcwd()
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", cwd)])
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write_module(directory: Path, source: str = MODULE, *, name: str | None = None) -> str:
    """Write a uniquely named module; returns its name."""
    name = name or f"hc_app_{next(_counter)}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    return name


def load(path: str) -> Any:
    return load_application(path, 1024)


class TestPathForms:
    def test_module_alone_means_attribute_app(self, project: Path) -> None:
        name = write_module(project)
        wrapped = load(name)
        assert isinstance(wrapped, ASGIWrapper)
        assert wrapped.app is sys.modules[name].app

    def test_module_and_attribute(self, project: Path) -> None:
        name = write_module(project)
        wrapped = load(f"{name}:wsgi_app")
        assert isinstance(wrapped, WSGIWrapper)
        assert wrapped.app is sys.modules[name].wsgi_app
        assert wrapped.max_body_size == 1024

    def test_imports_from_the_current_directory(self, project: Path) -> None:
        name = write_module(project)
        assert os.getcwd() not in sys.path
        load(f"{name}:app")
        assert sys.path[0] == os.getcwd()
        load(f"{name}:app")
        assert sys.path.count(os.getcwd()) == 1

    def test_dotted_attribute(self, project: Path) -> None:
        name = write_module(project)
        assert load(f"{name}:Holder.inner").app is sys.modules[name].app

    @pytest.mark.parametrize(("mode", "cls"), [("asgi", ASGIWrapper), ("wsgi", WSGIWrapper)])
    def test_mode_prefix(self, project: Path, mode: str, cls: type) -> None:
        name = write_module(project)
        attribute = "app" if mode == "asgi" else "wsgi_app"
        assert isinstance(load(f"{mode}:{name}:{attribute}"), cls)

    def test_invalid_mode_is_a_value_error(self, project: Path) -> None:
        name = write_module(project)
        with pytest.raises(ValueError, match="'trio'"):
            load(f"trio:{name}:app")

    def test_mode_contradicting_the_app_is_a_value_error(self, project: Path) -> None:
        name = write_module(project)
        with pytest.raises(ValueError, match="ASGI"):
            load(f"wsgi:{name}:app")
        with pytest.raises(ValueError, match="WSGI"):
            load(f"asgi:{name}:wsgi_app")

    def test_package_submodule(self, project: Path) -> None:
        package = f"hc_pkg_{next(_counter)}"
        (project / package).mkdir()
        (project / package / "__init__.py").write_text("")
        write_module(project / package, name="wsgi")
        wrapped = load(f"{package}.wsgi:wsgi_app")
        assert isinstance(wrapped, WSGIWrapper)

    @pytest.mark.parametrize("suffix", [".py", ""])
    def test_file_path_puts_its_directory_on_sys_path(self, project: Path, suffix: str) -> None:
        name = write_module(project / "src" / "deep")
        wrapped = load(f"src/deep/{name}{suffix}:app")
        assert isinstance(wrapped, ASGIWrapper)
        assert str(project / "src" / "deep") in sys.path

    def test_file_path_without_attribute(self, project: Path) -> None:
        name = write_module(project / "srv")
        assert isinstance(load(f"srv/{name}.py"), ASGIWrapper)

    def test_absolute_file_path(self, project: Path) -> None:
        name = write_module(project / "abs")
        assert isinstance(load(f"{project / 'abs' / name}.py:wsgi_app"), WSGIWrapper)

    def test_file_path_shadowed_by_an_imported_module(self, project: Path) -> None:
        name = write_module(project / "one")
        load(f"one/{name}.py:app")
        write_module(project / "two", name=name)
        with pytest.raises(NoAppError, match="already imported"):
            load(f"two/{name}.py:app")


class TestFactories:
    def test_no_arguments(self, project: Path) -> None:
        name = write_module(project)
        app = load(f"{name}:create_app()").app
        assert (app.args, app.kwargs) == ((), {})

    def test_literal_arguments(self, project: Path) -> None:
        name = write_module(project)
        app = load(f"{name}:create_app('x', 2, key=True, opts={{'a': [1, None]}})").app
        assert app.args == ("x", 2)
        assert app.kwargs == {"key": True, "opts": {"a": [1, None]}}

    def test_colon_inside_an_argument(self, project: Path) -> None:
        name = write_module(project)
        assert load(f"asgi:{name}:create_app('a:b')").app.args == ("a:b",)

    def test_factory_returning_wsgi(self, project: Path) -> None:
        name = write_module(project)
        assert isinstance(load(f"{name}:create_wsgi()"), WSGIWrapper)

    @pytest.mark.parametrize(
        "call",
        ["create_app(x)", "create_app(__import__('os'))", "create_app(*[1])", "create_app(**{})"],
    )
    def test_non_literal_arguments_are_refused(self, project: Path, call: str) -> None:
        name = write_module(project)
        with pytest.raises(NoAppError, match="literals"):
            load(f"{name}:{call}")

    @pytest.mark.parametrize("expression", ["app + 1", "app[0]", "create_app()()", "1", "a b"])
    def test_other_expressions_are_refused(self, project: Path, expression: str) -> None:
        name = write_module(project)
        with pytest.raises(NoAppError, match="neither an attribute name nor a factory call"):
            load(f"{name}:{expression}")

    def test_async_factory_is_refused(self, project: Path) -> None:
        name = write_module(project)
        with pytest.raises(NoAppError, match="async"):
            load(f"{name}:async_factory()")

    def test_factory_error_propagates(self, project: Path) -> None:
        name = write_module(project, "def create_app():\n    raise KeyError('config')\n")
        with pytest.raises(KeyError, match="config"):
            load(f"{name}:create_app()")


class TestErrors:
    def test_module_not_found_names_the_path(self, project: Path) -> None:
        with pytest.raises(NoAppError, match=r"'hc_missing_module:app'.*not found"):
            load("hc_missing_module:app")

    def test_package_not_found(self, project: Path) -> None:
        with pytest.raises(NoAppError, match="not found"):
            load("hc_missing_pkg.sub:app")

    def test_submodule_not_found(self, project: Path) -> None:
        package = f"hc_pkg_{next(_counter)}"
        (project / package).mkdir()
        (project / package / "__init__.py").write_text("")
        with pytest.raises(NoAppError, match="not found"):
            load(f"{package}.nothere:app")

    def test_missing_file(self, project: Path) -> None:
        with pytest.raises(NoAppError, match="not found"):
            load("nowhere/hc_nofile.py:app")

    def test_missing_dependency_propagates_with_its_traceback(self, project: Path) -> None:
        name = write_module(project, "import hc_dependency_that_is_missing\napp = None\n")
        with pytest.raises(ModuleNotFoundError) as caught:
            load(f"{name}:app")
        assert caught.value.name == "hc_dependency_that_is_missing"
        frames = traceback.extract_tb(caught.value.__traceback__)
        assert any(frame.filename.endswith(f"{name}.py") for frame in frames)

    def test_missing_module_inside_a_package_propagates(self, project: Path) -> None:
        package = f"hc_pkg_{next(_counter)}"
        (project / package).mkdir()
        (project / package / "__init__.py").write_text("")
        write_module(project / package, f"import {package}.nothere\n", name="main")
        with pytest.raises(ModuleNotFoundError):
            load(f"{package}.main:app")

    def test_syntax_error_propagates(self, project: Path) -> None:
        name = write_module(project, "def broken(:\n")
        with pytest.raises(SyntaxError):
            load(f"{name}:app")

    @pytest.mark.parametrize("attribute", ["nothere", "Holder.nothere", "nothere()"])
    def test_attribute_not_found(self, project: Path, attribute: str) -> None:
        name = write_module(project)
        with pytest.raises(NoAppError, match="application not found"):
            load(f"{name}:{attribute}")

    def test_object_that_is_not_an_application(self, project: Path) -> None:
        name = write_module(project)
        with pytest.raises(NoAppError, match="not callable"):
            load(f"{name}:not_an_app")

    @pytest.mark.parametrize("path", ["a:b:c:d", ":app", "module:", "mod(x)"])
    def test_malformed_paths(self, project: Path, path: str) -> None:
        with pytest.raises((NoAppError, ValueError)):
            load(path)


def test_functools_partial_factory_result(project: Path) -> None:
    # A factory may return any ASGI callable, e.g. a partial.
    source = MODULE + (
        "\nimport functools\n"
        "async def base(scope, receive, send, *, flag):\n    pass\n"
        "def create_partial():\n    return functools.partial(base, flag=True)\n"
    )
    name = write_module(project, source)
    wrapped = load(f"{name}:create_partial()")
    assert isinstance(wrapped, ASGIWrapper)
    assert isinstance(wrapped.app, functools.partial)


# -- is_asgi and wrap_app -------------------------------------------------------


async def asgi_function(scope: Any, receive: Any, send: Any) -> None:
    pass


def wsgi_function(environ: Any, start_response: Any) -> list[bytes]:
    return []


class AsyncCallable:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        pass


class SubAsyncCallable(AsyncCallable):
    pass


class SyncCallable:
    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        return []


class WSGIClass:
    """PEP 3333 allows a class: calling it makes the iterable."""

    def __init__(self, environ: Any, start_response: Any) -> None:
        self.items = [b""]

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.items)


def returns_awaitable(scope: Any, receive: Any, send: Any) -> Any:
    return asgi_function(scope, receive, send)


def variadic(*args: Any) -> Any:
    return None


def sync_decorator(func: Any) -> Any:
    @functools.wraps(func)
    def inner(*args: Any) -> Any:
        return func(*args)

    return inner


def _starlette_app() -> Any:
    from starlette.applications import Starlette

    return Starlette()


def _flask_app() -> Any:
    from flask import Flask

    return Flask("hc_test")


def _marked() -> Any:
    from asgiref.sync import markcoroutinefunction

    def marked(scope: Any, receive: Any, send: Any) -> Any:
        return asgi_function(scope, receive, send)

    return markcoroutinefunction(marked)


ASGI_APPS: dict[str, Callable[[], Any]] = {
    "coroutine function": lambda: asgi_function,
    "instance with async __call__": AsyncCallable,
    "subclass instance": SubAsyncCallable,
    "class with async __call__": lambda: AsyncCallable,
    "partial": lambda: functools.partial(asgi_function),
    "partial of instance": lambda: functools.partial(AsyncCallable()),
    "nested partial": lambda: functools.partial(functools.partial(asgi_function, {})),
    "wraps decorator": lambda: sync_decorator(asgi_function),
    "decorated __call__": lambda: type(
        "Decorated", (), {"__call__": sync_decorator(AsyncCallable.__call__)}
    )(),
    "3 positional sync": lambda: returns_awaitable,
    "asgiref marker": _marked,
    "bound async method": lambda: AsyncCallable().__call__,
    "starlette": _starlette_app,
}

WSGI_APPS: dict[str, Callable[[], Any]] = {
    "function": lambda: wsgi_function,
    "lambda": lambda: lambda environ, start_response: [],
    "instance with sync __call__": SyncCallable,
    "class": lambda: WSGIClass,
    "variadic": lambda: variadic,
    "partial": lambda: functools.partial(wsgi_function),
    "flask": _flask_app,
}


@pytest.mark.parametrize("make", ASGI_APPS.values(), ids=ASGI_APPS.keys())
def test_is_asgi_true(make: Callable[[], Any]) -> None:
    app = make()
    assert is_asgi(app) is True
    assert isinstance(wrap_app(app, 10), ASGIWrapper)


@pytest.mark.parametrize("make", WSGI_APPS.values(), ids=WSGI_APPS.keys())
def test_is_asgi_false_for_wsgi(make: Callable[[], Any]) -> None:
    app = make()
    assert is_asgi(app) is False
    wrapped = wrap_app(app, 10)
    assert isinstance(wrapped, WSGIWrapper)
    assert (wrapped.app, wrapped.max_body_size) == (app, 10)


@pytest.mark.parametrize("value", [None, 42, "app", [asgi_function]])
def test_non_callables(value: Any) -> None:
    assert is_asgi(value) is False
    with pytest.raises(TypeError, match="not callable"):
        wrap_app(value, 10)
    with pytest.raises(TypeError):
        wrap_app(value, 10, "asgi")


class TestWrapAppModes:
    def test_forced_modes(self) -> None:
        assert isinstance(wrap_app(asgi_function, 10, "asgi"), ASGIWrapper)
        assert isinstance(wrap_app(wsgi_function, 10, "wsgi"), WSGIWrapper)

    def test_ambiguous_signatures_follow_the_mode(self) -> None:
        assert isinstance(wrap_app(variadic, 10, "asgi"), ASGIWrapper)
        assert isinstance(wrap_app(variadic, 10, "wsgi"), WSGIWrapper)
        assert isinstance(wrap_app(print, 10, "asgi"), ASGIWrapper)

    @pytest.mark.parametrize("app", [asgi_function, AsyncCallable(), returns_awaitable])
    def test_async_app_forced_to_wsgi(self, app: Any) -> None:
        with pytest.raises(ValueError, match="cannot be served as WSGI"):
            wrap_app(app, 10, "wsgi")

    @pytest.mark.parametrize("app", [wsgi_function, SyncCallable(), WSGIClass])
    def test_wsgi_app_forced_to_asgi(self, app: Any) -> None:
        with pytest.raises(ValueError, match="cannot be served as ASGI"):
            wrap_app(app, 10, "asgi")

    def test_invalid_mode(self) -> None:
        with pytest.raises(ValueError, match="invalid mode"):
            wrap_app(asgi_function, 10, "http")  # type: ignore[arg-type]

    def test_wrappers_are_returned_as_they_are(self) -> None:
        asgi = wrap_app(asgi_function, 10)
        wsgi = wrap_app(wsgi_function, 10)
        assert wrap_app(asgi, 20) is asgi
        assert wrap_app(asgi, 20, "asgi") is asgi
        assert wrap_app(wsgi, 20) is wsgi
        assert wrap_app(wsgi, 20, "wsgi") is wsgi
        assert wrap_app(wsgi, 20, "asgi") is wsgi
        assert is_asgi(asgi) and is_asgi(wsgi)
        with pytest.raises(ValueError):
            wrap_app(asgi, 20, "wsgi")

    def test_reprs_name_the_app(self) -> None:
        assert repr(wrap_app(asgi_function, 10)) == f"ASGIWrapper({asgi_function!r})"
        assert repr(wrap_app(wsgi_function, 10)) == (
            f"WSGIWrapper({wsgi_function!r}, max_body_size=10)"
        )
