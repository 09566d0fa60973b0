"""The ``clearpost`` executable: ``clearpost serve`` loads only the server, ``clearpost
audit`` only the auditor (not the server, its database layer or the client SDK: about a
second of imports on this machine, which was a quarter of a full audit of a million
entries); everything else loads the full command tree (``main.py``). ``clearpost audit
verify`` forks its tile helpers (``audit/tilehelper.py``) before the command line
framework is imported, so they check tiles while it loads.

Usage errors (an unknown option, a bad value) are printed like every other failure,
``error: <message>`` on stderr with exit 2 (``cli.errors``), instead of click's box.
"""

from __future__ import annotations

import sys

import typer

from clearpost.cli.errors import EXIT_CONFIG, EXIT_INTERRUPTED, error_line


def main() -> None:
    if sys.argv[1:2] == ["serve"] and not {"--help", "-h"} & set(sys.argv[2:]):
        from clearpost.cli.serve import serve

        command = typer.Typer(add_completion=False)
        command.command()(serve)
        sys.exit(_run(command, sys.argv[2:], "clearpost serve"))
    if sys.argv[1:2] == ["audit"]:
        from clearpost.audit import tilehelper

        if sys.argv[2:3] == ["verify"]:  # helpers check tiles while the command loads
            tilehelper.start_early(sys.argv[3:])
        try:
            from clearpost.cli.audit import app as audit_app

            root = typer.Typer(add_completion=False)
            root.add_typer(audit_app, name="audit")
            sys.exit(_run(root, sys.argv[1:], "clearpost"))
        finally:
            tilehelper.close_early()
    from clearpost.cli.main import app

    sys.exit(_run(app, sys.argv[1:], "clearpost"))


def _run(app: typer.Typer, args: list[str], prog_name: str) -> int:
    """Run ``app`` with click's own error printing turned off; the exit code."""
    try:
        result = typer.main.get_command(app).main(
            args=args, prog_name=prog_name, standalone_mode=False
        )
    except typer.Abort:
        typer.echo(error_line("interrupted"), err=True)
        return EXIT_INTERRUPTED
    except typer.TyperException as exc:  # click's exceptions (typer vendors click)
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if not message:  # a group called without a command: its help was shown
            return int(getattr(exc, "exit_code", EXIT_CONFIG))
        typer.echo(error_line(message), err=True)
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            typer.echo(f"Try '{ctx.command_path} --help' for help.", err=True)
        return int(getattr(exc, "exit_code", EXIT_CONFIG))
    return result if isinstance(result, int) else 0
