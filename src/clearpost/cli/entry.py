"""The ``clearpost`` executable: ``clearpost serve`` loads only the server; everything
else loads the full command tree (``main.py``)."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["serve"] and not {"--help", "-h"} & set(sys.argv[2:]):
        _run_serve(sys.argv[2:])
        return
    from clearpost.cli.main import app

    app()


def _run_serve(args: list[str]) -> None:
    import typer

    from clearpost.cli.serve import serve

    command = typer.Typer(add_completion=False)
    command.command()(serve)
    command(args=args, prog_name="clearpost serve")
