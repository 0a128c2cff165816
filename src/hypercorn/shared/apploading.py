"""Finding the application: import paths, ASGI/WSGI detection, wrapping.

An application path is ``[mode:]module[:expression]``:

* ``mode`` is ``asgi`` or ``wsgi`` and forces how the app is called;
* ``module`` is a dotted module name imported from the current directory
  (``myproject.wsgi``), or a file path (``src/app.py``, ``src/app``) whose
  directory goes on ``sys.path``;
* ``expression`` defaults to ``app``; it is a (dotted) attribute name, or a
  factory call with literal arguments only (``create_app('prod', debug=False)``).
  It is parsed with ``ast`` and never evaluated as code.
"""

from __future__ import annotations

import ast
import asyncio
import functools
import importlib
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, cast

from hypercorn.shared.errors import AppModeError, NoAppError
from hypercorn.shared.wrappers import AppWrapper, ASGIApp, ASGIWrapper, WSGIWrapper
from hypercorn.shared.wsgi import WSGIApp

__all__ = ["is_asgi", "load_application", "wrap_app"]

Mode = Literal["asgi", "wsgi"]
_MODES = ("asgi", "wsgi")


def _strip(obj: Any) -> Any:
    """``obj`` without ``functools.partial`` layers and ``functools.wraps`` decorators."""
    while True:
        if isinstance(obj, functools.partial):
            obj = obj.func
            continue
        try:
            unwrapped = inspect.unwrap(obj)
        except ValueError:  # a __wrapped__ cycle
            return obj
        if unwrapped is obj:
            return obj
        obj = unwrapped


def _is_coroutine_function(obj: Any) -> bool:
    if inspect.iscoroutinefunction(obj):
        return True
    # Before 3.12, asgiref-style markers are only seen by asyncio's check.
    return sys.version_info < (3, 12) and asyncio.iscoroutinefunction(obj)


def _has_async_call(obj: Any) -> bool:
    obj = _strip(obj)
    if _is_coroutine_function(obj):
        return True
    if isinstance(obj, type):
        # The class itself: look at the __call__ its instances would have.
        for klass in obj.__mro__[:-1]:
            if "__call__" in vars(klass):
                return _is_coroutine_function(_strip(vars(klass)["__call__"]))
        return False
    return callable(obj) and _is_coroutine_function(_strip(obj.__call__))


def _arity(obj: Any) -> tuple[bool, bool] | None:
    """Whether ``obj`` accepts 2 and 3 positional arguments; None when unknown."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None

    def accepts(count: int) -> bool:
        try:
            signature.bind(*range(count))
        except TypeError:
            return False
        return True

    return accepts(2), accepts(3)


def is_asgi(app: Any) -> bool:
    """Whether ``app`` is called the ASGI way, ``await app(scope, receive, send)``.

    Args:
        app: the application object.

    Returns:
        True for a coroutine function; an object, or a class, whose ``__call__``
        is one; the same behind ``functools.partial`` or ``functools.wraps``
        decorators; and a plain callable that takes exactly three positional
        arguments (scope, receive, send) and so returns an awaitable. False for
        WSGI callables ``(environ, start_response)`` and anything else.
    """
    if _has_async_call(app):
        return True
    return callable(app) and _arity(app) == (False, True)


def wrap_app(app: Any, wsgi_max_body_size: int, mode: Mode | None = None) -> AppWrapper:
    """Wrap an application so that the server can call it as ASGI.

    Args:
        app: an ASGI or WSGI application (an existing wrapper is returned as is).
        wsgi_max_body_size: the largest request body passed to a WSGI app.
        mode: ``"asgi"`` or ``"wsgi"`` to force the interface; None detects it
            with ``is_asgi``.

    Returns:
        An ``ASGIWrapper`` or a ``WSGIWrapper``.

    Raises:
        ValueError: ``mode`` is not ``"asgi"``, ``"wsgi"`` or None, or it
            contradicts the app's unambiguous signature (an async app forced to
            WSGI; an ``(environ, start_response)`` function forced to ASGI).
        TypeError: ``app`` is not callable.
    """
    if mode is not None and mode not in _MODES:
        raise ValueError(f"invalid mode {mode!r}: must be 'asgi' or 'wsgi'")
    if isinstance(app, ASGIWrapper | WSGIWrapper):
        if mode is None or mode == "asgi" or isinstance(app, WSGIWrapper):
            return app
        raise ValueError(f"{app!r} is an ASGI application and cannot be served as WSGI")
    if not callable(app):
        raise TypeError(f"{app!r} is neither an ASGI nor a WSGI application: it is not callable")
    asgi = is_asgi(app)
    if mode == "wsgi" and asgi:
        raise ValueError(f"{app!r} is an ASGI application and cannot be served as WSGI")
    if mode == "asgi" and not asgi and _arity(app) == (True, False):
        raise ValueError(
            f"{app!r} takes (environ, start_response): it is a WSGI application, "
            "and cannot be served as ASGI"
        )
    if mode == "asgi" or (mode is None and asgi):
        return ASGIWrapper(cast(ASGIApp, app))
    return WSGIWrapper(cast(WSGIApp, app), wsgi_max_body_size)


def _split(path: str) -> tuple[Mode | None, str, str]:
    head, paren, arguments = path.partition("(")
    parts = head.split(":")
    mode: str | None = None
    if len(parts) == 1:
        module, expression = parts[0], "app"
    elif len(parts) == 2:
        module, expression = parts
    elif len(parts) == 3:
        mode, module, expression = parts
        if mode not in _MODES:
            raise AppModeError(
                f"Cannot load application from {path!r}: invalid mode {mode!r}, "
                "must be 'asgi' or 'wsgi'."
            )
    else:
        raise NoAppError(f"Cannot load application from {path!r}: too many ':' separators.")
    if not module or not expression or (paren and len(parts) == 1):
        raise NoAppError(
            f"Cannot load application from {path!r}: expected 'module:app' or 'module'."
        )
    return cast(Mode | None, mode), module, expression + paren + arguments


def _parse_expression(path: str, expression: str) -> tuple[list[str], ast.Call | None]:
    """The attribute chain and the factory call (if any) of ``expression``."""
    error = NoAppError(
        f"Cannot load application from {path!r}: {expression!r} is neither an attribute "
        "name nor a factory call with literal arguments."
    )
    try:
        node = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError:
        raise error from None
    call = node if isinstance(node, ast.Call) else None
    target = call.func if call is not None else node
    names: list[str] = []
    while isinstance(target, ast.Attribute):
        names.insert(0, target.attr)
        target = target.value
    if not isinstance(target, ast.Name):
        raise error
    names.insert(0, target.id)
    return names, call


def _call_factory(path: str, factory: Any, call: ast.Call) -> Any:
    try:
        if any(isinstance(arg, ast.Starred) for arg in call.args):
            raise ValueError("starred argument")
        args = [ast.literal_eval(arg) for arg in call.args]
        kwargs = {}
        for keyword in call.keywords:
            if keyword.arg is None:
                raise ValueError("** argument")
            kwargs[keyword.arg] = ast.literal_eval(keyword.value)
    except ValueError:
        raise NoAppError(
            f"Cannot load application from {path!r}: factory arguments must be "
            "Python literals (strings, numbers, True/False/None, lists, dicts...)."
        ) from None
    app = factory(*args, **kwargs)
    if inspect.iscoroutine(app):
        app.close()
        raise NoAppError(
            f"Cannot load application from {path!r}: the factory is async; "
            "it must return the application itself."
        )
    return app


def _locate(module_name: str) -> tuple[str, str, list[Path]]:
    """``(directory for sys.path, import name, files the module may come from)``."""
    as_path = Path(module_name)
    if "/" in module_name or (module_name.endswith(".py") and as_path.is_file()):
        resolved = as_path.resolve()
        name = resolved.name.removesuffix(".py")
        expected = [resolved.with_name(name + ".py"), resolved.with_name(name) / "__init__.py"]
        return str(resolved.parent), name, expected
    return os.getcwd(), module_name, []


def _import(path: str, module_name: str) -> ModuleType:
    directory, name, expected = _locate(module_name)
    if directory not in sys.path and not (directory == os.getcwd() and "" in sys.path):
        sys.path.insert(0, directory)
    importlib.invalidate_caches()
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        # Only this module missing is "not found"; a missing dependency of the
        # app is the app's own ImportError, with its traceback.
        if error.name is not None and (name == error.name or name.startswith(error.name + ".")):
            raise NoAppError(
                f"Cannot load application from {path!r}: module {name!r} not found."
            ) from None
        raise
    origin = getattr(module, "__file__", None)
    if expected and origin is not None and Path(origin).resolve() not in expected:
        raise NoAppError(
            f"Cannot load application from {path!r}: a module named {name!r} is "
            f"already imported from {origin}."
        )
    return module


def load_application(path: str, wsgi_max_body_size: int) -> AppWrapper:
    """Import the application named by ``path`` and wrap it.

    Args:
        path: ``[mode:]module[:expression]`` (see the module docstring), e.g.
            ``"myapp:app"``, ``"wsgi:myproject.wsgi:application"``,
            ``"src/app.py:app"``, ``"myapp:create_app('prod')"``.
        wsgi_max_body_size: the largest request body passed to a WSGI app.

    Returns:
        The application wrapped by ``wrap_app``.

    Raises:
        NoAppError: the module or the attribute is not found, the expression
            is not an attribute or a literal factory call, or the object is not
            an application.
        ValueError: the mode is not ``asgi``/``wsgi``, or contradicts the app.
        ImportError, SyntaxError, Exception: raised while importing the module
            or calling the factory, propagated with their own traceback.
    """
    mode, module_name, expression = _split(path)
    names, call = _parse_expression(path, expression)
    module = _import(path, module_name)
    app: Any = module
    for name in names:
        try:
            app = getattr(app, name)
        except AttributeError:
            raise NoAppError(
                f"Cannot load application from {path!r}: application not found."
            ) from None
    if call is not None:
        app = _call_factory(path, app, call)
    try:
        return wrap_app(app, wsgi_max_body_size, mode)
    except ValueError as error:
        raise AppModeError(f"Cannot load application from {path!r}: {error}") from None
    except TypeError as error:
        raise NoAppError(f"Cannot load application from {path!r}: {error}") from None
