"""``docs/settings.md`` is generated from the settings table and kept current."""

from __future__ import annotations

from pathlib import Path

from hypercorn.shared.settings import SETTINGS
from hypercorn.shared.settings_doc import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "settings.md"


def test_settings_doc_is_current() -> None:
    assert DOC.read_text() == render(), "docs/settings.md is stale: run `make docs`"


def test_every_setting_and_flag_is_documented() -> None:
    text = DOC.read_text()
    for setting in SETTINGS:
        assert f"| `{setting.name}` |" in text
        for flag in setting.flags:
            assert f"`{flag}`" in text
