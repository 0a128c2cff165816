"""The README and the user guide say only what is true.

* Every code example in the guide is a file (included with ``--8<--``) that
  ``tests/examples`` runs; a block written inline may only be shell commands
  or a diagram.
* Every ``hypercorn`` command they show parses with the real parser, its
  values pass the real validation and its config files load; every flag they
  name exists; every ``make`` target exists; every file they link exists.
* The site builds in strict mode, with the reload diagram drawn.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from hypercorn.shared.cli import build_parser, config_from_args
from hypercorn.supervisor import control

REPO = Path(__file__).resolve().parents[2]
GUIDE = [REPO / "README.md", REPO / "docs" / "index.md", REPO / "docs" / "quickstart.md",
         *sorted((REPO / "docs" / "guide").glob("*.md"))]  # fmt: skip
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>\w*)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S)
SNIPPET = re.compile(r'^--8<-- "(?P<path>[^"]+)"$')
FLAG = re.compile(r"^(-[a-zA-Z]|--[a-z0-9][a-z0-9-]*)\b")


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(REPO).as_posix() for p in paths]


def _blocks(page: Path) -> list[tuple[str, str]]:
    return [(m["lang"], m["body"]) for m in FENCE.finditer(page.read_text())]


def _options() -> set[str]:
    return {o for action in build_parser()._actions for o in action.option_strings}


def _makefile_targets() -> set[str]:
    """The Makefile's targets, and ``NAME=`` for each variable it lets a caller set."""
    text = (REPO / "Makefile").read_text()
    variables = re.findall(r"^([A-Z_]+) [?:]?=", text, re.M)
    return set(re.findall(r"^([a-z][a-z-]*):", text, re.M)) | {f"{name}=" for name in variables}


def _make_words(words: list[str]) -> set[str]:
    """A ``make`` command's targets, and ``NAME=`` for each variable it sets."""
    return {re.sub(r"^([A-Z_]+=).*", r"\1", word) for word in words[1:]}


def _check_command(words: list[str]) -> None:
    """A ``hypercorn`` (or ``make``) command line as the page shows it."""
    if words[0] == "make":
        assert _make_words(words) <= _makefile_targets(), words
        return
    if words[:3] == ["python", "-m", "hypercorn"]:
        words = words[2:]
    args = words[1:]
    if args[:1] == ["ctl"]:
        head, _, rest = _split(args[1:])
        control._parser().parse_args(head)
        if rest:
            config_from_args(rest)
    elif args != ["--help"]:
        config_from_args(args)  # parses, validates every value, loads -c files


def _split(args: list[str]) -> tuple[list[str], str, list[str]]:
    if "--" in args:
        index = args.index("--")
        return args[:index], "--", args[index + 1 :]
    return args, "", []


def _commands(page: Path) -> list[list[str]]:
    commands = []
    for lang, body in _blocks(page):
        if lang != "sh":
            continue
        for line in body.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] in (["hypercorn"], ["make"]) or words[:3] == ["python", "-m", "hypercorn"]:
                commands.append(words)
    return commands


@pytest.mark.parametrize("page", GUIDE, ids=_ids(GUIDE))
def test_code_examples_are_files(page: Path) -> None:
    for lang, body in _blocks(page):
        if lang in {"sh", "dot"}:
            continue  # commands (checked below) and diagrams (drawn by the build)
        lines = [line.strip() for line in body.strip().splitlines()]
        assert lines and all(SNIPPET.match(line) for line in lines), (
            f"{page.name}: a {lang or 'plain'} block written inline; make it a file "
            f"in examples/ that a test runs, and include it with --8<--:\n{body}"
        )


@pytest.mark.parametrize("page", GUIDE, ids=_ids(GUIDE))
def test_commands_shown_exist(page: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # the commands are written from a checkout's top
    commands = _commands(page)
    for words in commands:
        _check_command(words)
    if page.name == "README.md":
        assert ["make", "run"] in commands and ["make", "test"] in commands


@pytest.mark.parametrize("page", GUIDE, ids=_ids(GUIDE))
def test_inline_commands_and_flags_exist(page: Path) -> None:
    options = _options() | {o for a in control._parser()._actions for o in a.option_strings}
    text = FENCE.sub("", page.read_text())
    if page.name == "migrating.md":
        # Tables name the other servers' flags in their first column.
        text = re.sub(r"^\| [^|]*\|", "|", text, flags=re.M)
    for span in re.findall(r"`([^`\n]+)`", text):
        words = span.split()
        if words[0] == "make":
            assert _make_words(words) <= _makefile_targets(), span
        elif words[0] == "hypercorn" or FLAG.match(span):
            # A command or a flag named in the text: each flag it names exists.
            for word in words:
                if (flag := FLAG.match(word)) and word != "--":
                    assert flag[1] in options, f"{page.name}: `{span}` names no flag of hypercorn"


def test_readme_links_exist() -> None:
    text = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert targets
    for target in targets:
        if not target.startswith(("http://", "https://")):
            assert (REPO / target).exists(), target


def test_every_example_file_is_run_by_a_test() -> None:
    tests = "\n".join(p.read_text() for p in (REPO / "tests").rglob("*.py"))
    for path in (REPO / "examples").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            relative = path.relative_to(REPO / "examples").as_posix()
            names = [rf"(?<![\w/.-])(examples/)?{re.escape(relative)}(?![\w-])"]
            if path.suffix == ".py":  # served as "module:app", or imported
                module = re.escape(relative[:-3].replace("/", "."))
                names += [rf'"(wsgi:)?{module}:', rf"^\s*import {module}$"]
            assert any(re.search(name, tests, re.M) for name in names), (
                f"examples/{relative} is named by no test"
            )


def test_the_site_builds_strictly_with_the_reload_diagram(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "guide" / "workers-and-reload" / "index.html").read_text()
    svg = page[page.index("<svg") : page.index("</svg>")]
    for label in ("master", "old workers", "new workers", "READY", "retire old 1"):
        assert f">{label}<" in svg, label
    # The examples are in the pages, not references to them.
    assert "Hello, world!" in (tmp_path / "quickstart" / "index.html").read_text()
