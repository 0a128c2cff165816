"""MkDocs hook: ```dot fenced blocks become SVG pictures, drawn by Graphviz at build time.

A diagram stays text in the page's source (reviewed and diffed like the rest)
and is drawn by ``dot`` (Debian's ``graphviz`` package) when the site is built,
with no network. A block that ``dot`` rejects fails the build with its error.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

_BLOCK = re.compile(r"^```dot\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def _svg(source: str, page: str) -> str:
    try:
        result = subprocess.run(
            ["dot", "-Tsvg"], input=source, capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        raise RuntimeError("Graphviz's dot is needed to draw the diagrams") from None
    if result.returncode != 0:
        raise RuntimeError(f"dot failed on a diagram in {page}: {result.stderr.strip()}")
    svg = result.stdout[result.stdout.index("<svg") :]  # no XML prologue inside HTML
    return f'<div class="diagram">\n{svg}\n</div>'


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    """Replace each ```dot block of a page with the SVG that ``dot`` draws from it."""
    return _BLOCK.sub(lambda match: _svg(match[1], page.file.src_path), markdown)
