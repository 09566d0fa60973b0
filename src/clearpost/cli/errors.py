"""The one way a ``clearpost`` command reports failure: ``error: <message>`` on stderr and
a stable exit code for the kind of failure.

Exit codes shared by every command:

- 0 done;
- 1 failed: the server, the database or a service said no, or could not be reached (the
  message says which, with the error's code in parentheses when there is one);
- 2 usage or configuration: a bad flag, setting, file or URL;
- 130 interrupted (Ctrl-C).

Commands with verdicts of their own add codes from 3 up, each documented with its command:
``reports`` 3 refused by a rule (a budget spent, a period still open) and 4 a report that
fails verification; ``audit`` and ``witness`` 3 to 11 (docs/transparency-log.md).
"""

from __future__ import annotations

import typer

EXIT_FAILED, EXIT_CONFIG, EXIT_REFUSED, EXIT_UNVERIFIED, EXIT_INTERRUPTED = 1, 2, 3, 4, 130


def error_line(message: str, code: str | None = None) -> str:
    """``error: <message> (code)``, the text every command prints on failure."""
    return f"error: {message}" + (f" ({code})" if code else "")


def fail(message: str, exit_code: int = EXIT_FAILED, *, code: str | None = None) -> typer.Exit:
    """Print the error line on stderr and return the ``typer.Exit`` to raise."""
    typer.echo(error_line(message, code), err=True)
    return typer.Exit(exit_code)
