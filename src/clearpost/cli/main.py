"""The ``clearpost`` command. Commands are thin: they parse flags and call services."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console

import clearpost
from clearpost.cli.account import app as account_app
from clearpost.cli.admin import app as admin_app
from clearpost.cli.audit import app as audit_app
from clearpost.cli.backup import backup, restore
from clearpost.cli.chat import app as chat_app
from clearpost.cli.demo import app as demo_app
from clearpost.cli.directory import app as directory_app
from clearpost.cli.errors import fail
from clearpost.cli.me import app as me_app
from clearpost.cli.options import ConfigOpt, DatabaseOpt, DataDirOpt, settings_from
from clearpost.cli.partner import app as partner_app
from clearpost.cli.reports import app as reports_app
from clearpost.cli.serve import serve
from clearpost.cli.shares import app as shares_app
from clearpost.cli.witness import app as witness_app
from clearpost.core.errors import ClearpostError

app = typer.Typer(
    help="Clearpost: end-to-end encrypted messaging with checkable privacy.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(witness_app, name="witness")
app.add_typer(account_app, name="account")
app.add_typer(chat_app, name="chat")
app.add_typer(demo_app, name="demo")
app.add_typer(shares_app, name="shares")
app.add_typer(me_app, name="me")
app.add_typer(directory_app, name="directory")
app.add_typer(reports_app, name="reports")
app.add_typer(partner_app, name="partner")
app.add_typer(admin_app, name="admin")
console = Console(stderr=True)


app.command()(serve)
app.command()(backup)
app.command()(restore)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clearpost {clearpost.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Clearpost: end-to-end encrypted messaging with checkable privacy."""


@db_app.command("upgrade")
def db_upgrade(
    database: DatabaseOpt = None, data_dir: DataDirOpt = None, config: ConfigOpt = None
) -> None:
    """Apply pending schema migrations and exit."""
    from clearpost.storage.db import Database
    from clearpost.storage.migrations import current_revision, upgrade

    settings = settings_from(config, database=database, data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> str | None:
        db = Database(settings.database_url())
        try:
            await upgrade(db)
            return await current_revision(db)
        finally:
            await db.close()

    try:
        revision = asyncio.run(run())
    except ClearpostError as exc:
        raise fail(exc.message, code=exc.code) from exc
    console.print(f"schema at revision [bold]{revision}[/bold]")
