"""Options shared by the operator commands, and settings loading with readable errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from clearpost.cli.errors import EXIT_CONFIG, fail
from clearpost.core.errors import ClearpostError
from clearpost.server.config import Settings, load_settings

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", help=r"TOML config file (settings at top level or in a \[server] table)."
    ),
]
DatabaseOpt = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--database",
        help="SQLAlchemy URL, e.g. postgresql+asyncpg://user@host/db "
        "(default: SQLite in the data dir).",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the SQLite file and keys live (default ./data)."),
]


def settings_from(config: Path | None, **flags: object) -> Settings:
    try:
        return load_settings(config, **flags)
    except ClearpostError as exc:
        raise fail(exc.message, EXIT_CONFIG) from exc
