"""Reading settings out of config sources: TOML files, Python files, objects.

Each reader returns the items that are settings, keyed by name, and raises
``ConfigError`` naming the source when it cannot be read. ``Config`` turns the
items into a config (converting and checking each value).

A TOML file holds nothing but settings, so every key is one, and an unknown
key is an error. A Python config (a file, a module, a class or an instance) is
code: besides the settings it holds what the code needs to compute them. Its
names that are not settings are passed over when they are

* private (``_name``) or dunder names;
* bound by an ``import`` statement at the module's top level (``from os import
  environ``, ``import json``, ``from __future__ import annotations``), read
  from the module's source;
* modules, functions, classes and other callables, or ``__future__`` features
  (for an object whose source is not at hand);
* constants by convention (a name with an upper-case letter, ``BASE_DIR``).

Any other name is taken for a misspelt setting and reported with the closest
setting's name: a typo must not be silently ignored.
"""

from __future__ import annotations
import __future__

import ast
import importlib
import importlib.util
import os
import types
from typing import Any

from hypercorn.shared.settings import SETTINGS_BY_NAME
from hypercorn.shared.validators import ConfigError, UnknownSettingError

__all__ = ["import_object", "read_pyfile", "read_toml", "settings_of", "unknown_setting"]

# Config attributes a config source may set besides the settings.
EXTRA_KEYS = frozenset({"application_path", "cert_reqs"})


def unknown_setting(name: str, source: str | None = None) -> UnknownSettingError:
    """The error for a name that is not a setting, with the closest setting's name."""
    where = f" in {source}" if source else ""
    message = f"unknown setting {name!r}{where}"
    import difflib  # only for this message: kept off the start-up path

    close = difflib.get_close_matches(name, SETTINGS_BY_NAME, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return UnknownSettingError(message)


def read_toml(path: str) -> dict[str, Any]:
    """The keys of a TOML config file; all of them must be settings.

    Raises:
        ConfigError: the file cannot be read or parsed.
        UnknownSettingError: a key is not a setting.
    """
    import tomllib  # only for a TOML file: kept off the start-up path

    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"invalid TOML in config file {path}: {error}") from None
    for key in data:
        if key not in SETTINGS_BY_NAME and key not in EXTRA_KEYS:
            raise unknown_setting(key, path)
    return data


def read_pyfile(path: str) -> dict[str, Any]:
    """Run a Python config file and return its settings (see the module docstring).

    Raises:
        ConfigError: the file does not exist or is not Python.
        UnknownSettingError: a name is neither a setting nor passed over.
        Exception: whatever the file's own code raises, with its traceback.
    """
    spec = importlib.util.spec_from_file_location("hypercorn_config_file", path)
    if spec is None or spec.loader is None or not os.path.isfile(path):
        raise ConfigError(f"cannot read config file {path}: no such Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return settings_of(module, path)


def import_object(name: str) -> object:
    """``package.module`` or ``package.module.attribute``, imported.

    Raises:
        ConfigError: neither the module nor the attribute can be imported.
    """
    try:
        return importlib.import_module(name)
    except ImportError as module_error:
        path, _, attribute = name.rpartition(".")
        if not path:
            raise ConfigError(f"cannot import config {name!r}: {module_error}") from None
        try:
            module = importlib.import_module(path)
        except ImportError as error:
            raise ConfigError(f"cannot import config {name!r}: {error}") from None
        try:
            return getattr(module, attribute)
        except AttributeError:
            raise ConfigError(
                f"cannot import config {name!r}: no attribute {attribute!r}"
            ) from None


def settings_of(instance: object, source: str | None) -> dict[str, Any]:
    """The settings among an object's attributes (see the module docstring).

    Raises:
        UnknownSettingError: an attribute is neither a setting nor passed over.
    """
    imported = _imported_names(instance) if isinstance(instance, types.ModuleType) else set()
    items: dict[str, Any] = {}
    for key in dir(instance):
        if key.startswith("_"):
            continue
        value = getattr(instance, key)
        if key in SETTINGS_BY_NAME or key in EXTRA_KEYS:
            items[key] = value
        elif key in imported or not key.islower() or _is_code(value):
            continue
        else:
            raise unknown_setting(key, source or repr(instance))
    return items


def _is_code(value: object) -> bool:
    """True for what a config module imports or defines as code, not as a value."""
    return isinstance(value, types.ModuleType | __future__._Feature) or callable(value)


def _imported_names(module: types.ModuleType) -> set[str]:
    """Names bound by the top-level ``import`` statements of ``module``'s source.

    Statements inside ``if``, ``try`` and ``with`` blocks count (``try: import
    x except ImportError: ...``); those inside functions and classes do not.
    A module whose source cannot be read gives an empty set.
    """
    path = getattr(module, "__file__", None)
    if not isinstance(path, str) or not path.endswith(".py"):
        return set()
    try:
        with open(path, "rb") as file:
            tree = ast.parse(file.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import):
            names.update(alias.asname or alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.If | ast.Try | ast.TryStar | ast.With):
            for block in ("body", "orelse", "handlers", "finalbody"):
                for child in getattr(node, block, ()):
                    pending.extend(child.body if isinstance(child, ast.ExceptHandler) else [child])
    return names
