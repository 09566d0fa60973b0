"""Every ``--help`` text reads as written: typer renders help as rich markup, where
``[default: ...]`` or ``[server]`` vanished ("Server base URL .")."""

from __future__ import annotations

from collections.abc import Iterator

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
