"""Converters that check and normalise one setting's value.

Each converter takes the setting's name and a raw value (from Python code, a
TOML or Python config file, or a CLI string) and returns the value stored on
``Config``, or raises ``ConfigError`` naming the setting. They accept what a
config file can hold: native types, and strings where the CLI provides them.
"""

from __future__ import annotations

import grp
import ipaddress
import logging
import pwd
import re
import ssl
from collections.abc import Callable, Iterable
from typing import Any

Converter = Callable[[str, Any], Any]


class ConfigError(ValueError):
    """A setting has a bad value, or a config source names an unknown setting."""


class UnknownSettingError(ConfigError, AttributeError):
    """A name that is not a setting was set on ``Config`` or found in a config source."""


def _fail(name: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"invalid value for {name!r}: {value!r} (expected {expected})")


def boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {
        "true",
        "yes",
        "on",
        "1",
        "false",
        "no",
        "off",
        "0",
    }:
        return value.lower() in {"true", "yes", "on", "1"}
    raise _fail(name, value, "true or false")


def integer(minimum: int | None = 0, *, optional: bool = False) -> Converter:
    expected = "an integer" if minimum is None else f"an integer >= {minimum}"
    if optional:
        expected += " or none"

    def convert(name: str, value: Any) -> int | None:
        if value is None and optional:
            return None
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise _fail(name, value, expected) from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(name, value, expected)
        if minimum is not None and value < minimum:
            raise _fail(name, value, expected)
        return value

    return convert


def number(minimum: float = 0.0, *, optional: bool = False, strict: bool = False) -> Converter:
    relation = ">" if strict else ">="
    expected = f"a number {relation} {minimum:g}" + (" or none" if optional else "")

    def convert(name: str, value: Any) -> float | None:
        if value is None and optional:
            return None
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise _fail(name, value, expected) from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(name, value, expected)
        if value != value or (value <= minimum if strict else value < minimum):
            raise _fail(name, value, expected)
        return float(value)

    return convert


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgKMG]i?[bB]?|[bB])?\s*$")
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def byte_size(*, optional: bool = False) -> Converter:
    """Bytes as an int, or a string such as ``"512M"`` / ``"1GiB"``."""
    expected = "a size in bytes such as 1048576 or '512M'" + (" or none" if optional else "")

    def convert(name: str, value: Any) -> int | None:
        if value is None and optional:
            return None
        if isinstance(value, str):
            match = _SIZE_RE.match(value)
            if match is None:
                raise _fail(name, value, expected)
            unit = (match.group(2) or "")[:1].lower()
            return int(match.group(1)) * _SIZE_UNITS[unit]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _fail(name, value, expected)
        return value

    return convert


def string(*, optional: bool = False) -> Converter:
    def convert(name: str, value: Any) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise _fail(name, value, "a string" + (" or none" if optional else ""))
        return value

    return convert


def string_list(name: str, value: Any) -> list[str]:
    """A list of strings; a single string is a list of one (as Hypercorn accepts)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Iterable) and not isinstance(value, bytes | dict):
        items = list(value)
        if all(isinstance(item, str) for item in items):
            return items
    raise _fail(name, value, "a string or a list of strings")


def ip_networks(name: str, value: Any) -> list[str]:
    """IP addresses and networks, or ``*``: a list, or one comma-separated string."""
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",")]
    else:
        items = [item.strip() for item in string_list(name, value)]
    for item in items:
        if item != "*":
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise _fail(name, item, "IP addresses or networks, or *") from None
    return [item for item in items if item]


def choice(*options: str) -> Converter:
    def convert(name: str, value: Any) -> str:
        if isinstance(value, str) and value.lower() in options:
            return value.lower()
        raise _fail(name, value, "one of " + ", ".join(options))

    return convert


def log_level(name: str, value: Any) -> str:
    levels = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
    if isinstance(value, str) and value.upper() in {*levels, "WARN", "FATAL"}:
        return value.upper()
    raise _fail(name, value, "one of " + ", ".join(level.lower() for level in levels))


def log_target(name: str, value: Any) -> logging.Logger | str | None:
    """``"-"`` (the standard stream), a file path, a ``logging.Logger``, or none."""
    if value is None or isinstance(value, logging.Logger):
        return value
    if isinstance(value, str) and value:
        return value
    raise _fail(name, value, "'-', a file path, a logging.Logger or none")


def mapping(*, optional: bool = False) -> Converter:
    def convert(name: str, value: Any) -> dict[str, Any] | None:
        if value is None and optional:
            return None
        if isinstance(value, dict):
            return value
        raise _fail(name, value, "a table/dict" + (" or none" if optional else ""))

    return convert


def umask(name: str, value: Any) -> int | None:
    """An int, or a string read as octal when it starts with 0 (``"022"``, ``"0o22"``)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            if text.startswith("0o"):
                value = int(text[2:], 8)
            elif text.startswith("0") and len(text) > 1:
                value = int(text, 8)
            else:
                value = int(text)
        except ValueError:
            raise _fail(name, value, "a umask such as 0o022 or '022'") from None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise _fail(name, value, "a umask between 0 and 0o777")
    return value


def _account(lookup: Callable[[str], int], kind: str) -> Converter:
    def convert(name: str, value: Any) -> int | None:
        if value is None:
            return None
        if isinstance(value, str):
            text = value.strip()
            if text.isdigit():
                return int(text)
            try:
                return lookup(text)
            except KeyError:
                raise ConfigError(f"invalid value for {name!r}: no such {kind} {text!r}") from None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _fail(name, value, f"a {kind} name or a numeric id")
        return value

    return convert


user_id = _account(lambda text: pwd.getpwnam(text).pw_uid, "user")
group_id = _account(lambda text: grp.getgrnam(text).gr_gid, "group")


def verify_mode(name: str, value: Any) -> ssl.VerifyMode | None:
    if value is None or isinstance(value, ssl.VerifyMode):
        return value
    if isinstance(value, str):
        text = value.strip().upper()
        if text.isdigit():
            value = int(text)
        elif text in ssl.VerifyMode.__members__:
            return ssl.VerifyMode[text]
        elif f"CERT_{text}" in ssl.VerifyMode.__members__:
            return ssl.VerifyMode[f"CERT_{text}"]
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return ssl.VerifyMode(value)
        except ValueError:
            pass
    raise _fail(name, value, "one of " + ", ".join(ssl.VerifyMode.__members__))


def verify_flags(name: str, value: Any) -> ssl.VerifyFlags | None:
    if value is None or isinstance(value, ssl.VerifyFlags):
        return value
    if isinstance(value, str) and value.strip().upper() in ssl.VerifyFlags.__members__:
        return ssl.VerifyFlags[value.strip().upper()]
    if isinstance(value, int) and not isinstance(value, bool):
        return ssl.VerifyFlags(value)
    raise _fail(name, value, "an ssl.VerifyFlags value or name")


def root_path(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _fail(name, value, "a string")
    return value.rstrip("/")


def logger_class(name: str, value: Any) -> type:
    from hypercorn.shared.logging import Logger

    if isinstance(value, type) and issubclass(value, Logger):
        return value
    raise _fail(name, value, "a subclass of hypercorn.logging.Logger")


def anything(name: str, value: Any) -> Any:
    return value
