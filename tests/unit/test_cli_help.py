"""Every ``--help`` text reads as written: typer renders help as rich markup, where
``[default: ...]`` or ``[server]`` vanished ("Server base URL .")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.text import Text

from clearpost.cli.main import app


def _helps(command: object, path: str) -> Iterator[tuple[str, str]]:
    for text in (getattr(command, "help", None), getattr(command, "short_help", None)):
        if text:
            yield path, text
    for param in getattr(command, "params", []):
        if getattr(param, "help", None):
            yield f"{path} {param.name}", param.help
    for name, sub in getattr(command, "commands", {}).items():
        yield from _helps(sub, f"{path} {name}")


def test_no_help_text_loses_words_to_markup() -> None:
    helps = list(_helps(typer.main.get_command(app), "clearpost"))
    assert len(helps) > 50  # the walk reached the commands' options
    lost = [
        (where, text)
        for where, text in helps
        if Text.from_markup(text).plain != text.replace("\\[", "[")
    ]
    assert lost == []


def test_the_readme_lists_every_command() -> None:
    """README's command table names each command (``clearpost group a|b|c`` names three)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("## Commands", 1)[1].split("\n## ", 1)[0].replace("\\|", "|")
    named = {
        tuple(words)
        for code in re.findall(r"`clearpost ([^`]+)`", table)
        for words in _expand(code.split())
    }
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    wanted = {
        (name, *([sub] if sub else []))
        for name, group in commands.items()
        for sub in (getattr(group, "commands", None) or [None])
    }
    assert sorted(wanted - named) == [], "README's command table does not name these"


def _expand(words: list[str]) -> Iterator[list[str]]:
    """``['me', 'apps|log', '--verify']`` -> ``['me', 'apps']``, ``['me', 'log']``: the
    command words, alternatives split, options left out."""
    words = [w for w in words if not w.startswith("-")][:2]
    for alternative in words[1].split("|") if len(words) == 2 else [None]:
        yield words[:1] + ([alternative] if alternative else [])
