"""``clearpost backup`` and ``clearpost restore``: the database and the keys, together.

A deployment is its database plus two key files (the log's signing key and the report
signing key); losing a key means the log can no longer be extended under the same name.
So a backup always carries the keys, and a restore puts everything in place or nothing.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from clearpost.cli.errors import fail
from clearpost.cli.options import ConfigOpt, DatabaseOpt, DataDirOpt, settings_from
from clearpost.core.errors import ClearpostError
from clearpost.server.config import Settings
from clearpost.storage.backup import make_backup, read_backup, restore_backup

out = Console()
err = Console(stderr=True)


def _sqlite_file(settings: Settings) -> Path | None:
    url = make_url(settings.database_url())
    if url.get_backend_name() != "sqlite":
        return None
    return Path(str(url.database))


def _keys(settings: Settings) -> dict[str, Path]:
    return {"log.key": settings.log_key_path(), "report.key": settings.report_key_path()}


def backup(
    destination: Annotated[Path, typer.Argument(help="A new (or empty) directory for the backup.")],
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Back up the database (SQLite: consistent while the server runs) and the key files."""
    settings = settings_from(config, database=database, data_dir=data_dir)
    sqlite_file = _sqlite_file(settings)
    try:
        with err.status("copying the database and the keys…"):
            info = make_backup(destination, sqlite_file=sqlite_file, key_files=_keys(settings))
    except ClearpostError as exc:
        raise fail(exc.message, code=exc.code) from exc
    for name in sorted(info.files):
        size = (destination / name).stat().st_size
        out.print(f"  {name:<14} {size:>12,} bytes", markup=False, highlight=False, soft_wrap=True)
    if info.database == "sqlite":
        out.print(
            f"backed up schema {info.schema_revision}, log of {info.log_size:,} entries, "
            f"to {destination}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    else:
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d")
        out.print(
            f"backed up the key files to {destination}. The database is PostgreSQL: dump it "
            f"too, e.g. pg_dump -Fc -f {destination}/clearpost-{stamp}.pgdump <database> "
            "(see docs/operations.md)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def restore(
    source: Annotated[Path, typer.Argument(help="A directory written by `clearpost backup`.")],
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Restore a backup into a new data dir (never over an existing database or key)."""
    settings = settings_from(config, database=database, data_dir=data_dir)
    try:
        info = read_backup(source)
        restore_backup(info, sqlite_file=_sqlite_file(settings), key_files=_keys(settings))
    except ClearpostError as exc:
        raise fail(exc.message, code=exc.code) from exc
    where = _sqlite_file(settings) or settings.data_dir
    out.print(
        f"restored {len(info.files)} files (log of {info.log_size or 0:,} entries) into "
        f"{where.parent if where.suffix else where}; start `clearpost serve` on it and run "
        "`clearpost audit verify` against it",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
