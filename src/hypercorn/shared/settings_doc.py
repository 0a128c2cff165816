"""Renders ``docs/settings.md`` from the settings table.

Run ``python -m hypercorn.shared.settings_doc > docs/settings.md`` (``make docs``);
a test fails when the committed file differs from this output.
"""

from __future__ import annotations

import sys
from typing import Any

from hypercorn.shared.settings import SECTIONS, SETTINGS, Setting


def _default(setting: Setting) -> str:
    value: Any = setting.initial()
    if setting.name == "logger_class":
        return "`hypercorn.logging.Logger`"
    return f"`{value!r}`"


def _flags(setting: Setting) -> str:
    flags = ", ".join(f"`{flag}`" for flag in setting.flags)
    if setting.action == "append" and flags:
        flags += " (repeatable)"
    return flags or "—"


def render() -> str:
    """The settings reference as Markdown."""
    lines = [
        "# Settings",
        "",
        "<!-- Generated from src/hypercorn/shared/settings.py by `make docs`; do not edit. -->",
        "",
        "Every setting is an attribute of `hypercorn.config.Config`, a key of a TOML or",
        "Python config file (`-c config.toml`, `-c file:config.py`, `-c python:module`),",
        "and, where a flag is listed, a command-line option. Command-line options",
        "override the config file. An unknown key or a bad value is an error that names",
        "the setting.",
        "",
    ]
    for section in SECTIONS:
        lines += [f"## {section}", "", "| setting | type | default | flags | meaning |"]
        lines.append("|---|---|---|---|---|")
        for setting in SETTINGS:
            if setting.section != section:
                continue
            doc = setting.doc.replace("|", "\\|")
            kind = setting.kind.replace("|", "\\|")
            lines.append(
                f"| `{setting.name}` | {kind} | {_default(setting)} | {_flags(setting)} | {doc} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
