"""``Config``'s declarations for type checkers follow the settings table.

The attributes are set from the table at run time; the ``TYPE_CHECKING``
block only tells mypy and editors about them. This holds the two together:
same names, same order, and each annotation the type the table documents.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hypercorn.shared.config import Config
from hypercorn.shared.settings import SETTINGS, Setting

SOURCE = Path(__file__).resolve().parents[2] / "src" / "hypercorn" / "shared" / "config.py"
# Carried by Config beside the settings (set by the command line).
NOT_SETTINGS = ["application_path"]


def _declarations() -> dict[str, str]:
    tree = ast.parse(SOURCE.read_text())
    config = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Config")
    block = next(
        n
        for n in config.body
        if isinstance(n, ast.If) and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"
    )
    declared: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
        assert node.value is None, f"{node.target.id}: a declaration, not a default"
        declared[node.target.id] = ast.unparse(node.annotation)
    return declared


def test_same_names_in_the_same_order() -> None:
    assert list(_declarations()) == [s.name for s in SETTINGS] + NOT_SETTINGS


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: s.name)
def test_annotation_is_the_documented_type(setting: Setting) -> None:
    assert _declarations()[setting.name] == setting.kind


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: setting.name)
def test_every_default_is_a_value_the_setting_accepts(setting: Setting) -> None:
    # A default the converter refuses could not be written back in a config file
    # or on the command line (``--drain-delay 0`` must mean what the default means).
    default = getattr(Config(), setting.name)
    converted = setting.convert(setting.name, default)
    if isinstance(default, tuple):
        converted = tuple(converted)  # a sequence setting is read as a list
    assert converted == default
