"""``clearpost partner``: the operator registers and updates partners under public agreements.

Every agreement version is appended to the transparency log before it takes effect; the
running server's sequencer signs it into the next checkpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from clearpost.cli.errors import EXIT_CONFIG, EXIT_FAILED, fail
from clearpost.cli.options import ConfigOpt, DatabaseOpt, DataDirOpt, settings_from
from clearpost.cli.reports import show_command as show_reports
from clearpost.core.clock import SystemClock
from clearpost.core.errors import ClearpostError
from clearpost.server.services.partners import PartnerService
from clearpost.storage.db import Database
from clearpost.storage.migrations import upgrade
from clearpost.storage.sql.partners import PartnerStore
from clearpost.storage.sql.secrets import SecretStore

app = typer.Typer(
    help="Register and inspect partners and their public agreements.", no_args_is_help=True
)
out = Console()
T = TypeVar("T")

AgreementArg = Annotated[
    Path, typer.Argument(help="The agreement file (TOML); see docs/partners.md.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _run(
    settings_flags: dict[str, object],
    config: Path | None,
    work: Callable[[PartnerService], Awaitable[T]],
) -> T:
    settings = settings_from(config, **settings_flags)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def go() -> T:
        db = Database(settings.database_url())
        try:
            await upgrade(db)
            return await work(PartnerService(PartnerStore(db), SecretStore(db), SystemClock()))
        finally:
            await db.close()

    try:
        return asyncio.run(go())
    except ClearpostError as exc:
        raise fail(exc.message, EXIT_FAILED, code=exc.code) from exc


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror or exc}", EXIT_CONFIG) from exc


@app.command()
def register(
    agreement: AgreementArg,
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Register a partner. Prints its client id and secret (shown once, stored only hashed)."""
    text = _read(agreement)
    version, secret = _run(
        {"database": database, "data_dir": data_dir}, config, lambda svc: svc.register(text)
    )
    if json:
        print(
            orjson.dumps(
                {
                    "client_id": version.partner_id,
                    "client_secret": secret,
                    "version": version.version,
                    "log_index": version.log_index,
                }
            ).decode()
        )
        return
    out.print(
        f"Registered [bold]{version.partner_id}[/bold]: agreement v{version.version} "
        f"published as log entry {version.log_index}."
    )
    out.print(f"client_id:     {version.partner_id}\nclient_secret: {secret}")
    out.print("[yellow]Store the secret now: it is not shown again.[/yellow]")


@app.command()
def update(
    agreement: AgreementArg,
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Publish a new version of a partner's agreement (logged before it takes effect)."""
    text = _read(agreement)
    version = _run(
        {"database": database, "data_dir": data_dir}, config, lambda svc: svc.update(text)
    )
    out.print(
        f"{version.partner_id}: agreement v{version.version} "
        f"published as log entry {version.log_index}."
    )


@app.command("list")
def list_partners(
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Every registered partner and its current agreement version."""
    rows = _run({"database": database, "data_dir": data_dir}, config, lambda svc: svc.all())
    if json:
        print(
            orjson.dumps(
                [{"partner_id": r.partner_id, "name": r.name, "version": r.version} for r in rows]
            ).decode()
        )
        return
    table = Table("partner", "name", "agreement version", "since")
    for r in rows:
        table.add_row(r.partner_id, r.name, str(r.version), str(r.created_at))
    out.print(table)


@app.command()
def show(
    partner_id: str,
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """A partner's agreement versions, each with its log index."""
    versions = _run(
        {"database": database, "data_dir": data_dir}, config, lambda svc: svc.versions(partner_id)
    )
    if json:
        print(
            orjson.dumps(
                [
                    {
                        "version": v.version,
                        "log_index": v.log_index,
                        "agreement": orjson.loads(v.body),
                    }
                    for v in versions
                ]
            ).decode()
        )
        return
    current = orjson.loads(versions[-1].body)
    table = Table(
        "field",
        "value",
        title=f"{current['name']} ({partner_id}), agreement v{versions[-1].version}",
    )
    for key, value in current.items():
        table.add_row(key, ", ".join(map(str, value)) if isinstance(value, list) else str(value))
    out.print(table)
    for v in versions:
        out.print(f"  v{v.version}: log entry {v.log_index}")


app.command("reports", help="A partner's released reports as a table (and a --chart PNG).")(
    show_reports
)
