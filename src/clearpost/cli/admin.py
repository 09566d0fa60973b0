"""``clearpost admin``: an operator's work on accounts, invites and partners.

The commands act on the database directly (the same settings as ``clearpost serve``), so
they work with the server running or stopped. Log entries they append (device removals,
revocations, partner changes) are signed into the next checkpoint by the running server's
sequencer. A change made here reaches a running SQLite server's token cache within five
seconds; on PostgreSQL device changes reach every process at once.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from clearpost.cli.errors import fail
from clearpost.cli.options import ConfigOpt, DatabaseOpt, DataDirOpt, settings_from
from clearpost.core.errors import ClearpostError, NotFound
from clearpost.server.services.container import Services, build_services
from clearpost.server.services.logkey import load_or_create
from clearpost.storage.db import Database
from clearpost.storage.migrations import upgrade

app = typer.Typer(help="Administer accounts, invites and partners.", no_args_is_help=True)
users_app = typer.Typer(help="List, inspect, suspend and delete accounts.", no_args_is_help=True)
invites_app = typer.Typer(help="Single-use registration invites.", no_args_is_help=True)
partners_app = typer.Typer(
    help="Suspend and resume partners, rotate their client secret.", no_args_is_help=True
)
app.add_typer(users_app, name="users")
app.add_typer(invites_app, name="invites")
app.add_typer(partners_app, name="partners")
out = Console()
T = TypeVar("T")

UserArg = Annotated[
    str, typer.Argument(help="The user id, e.g. @alice:example.org (or @alice: this server's).")
]
PartnerArg = Annotated[str, typer.Argument(help="The partner id (its OAuth client id).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
YesOpt = Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")]


def _user(user_id: str, flags: dict[str, Any], config: Path | None) -> str:
    """``@alice`` (or ``alice``) is ``@alice:<server_name>``; a full id is kept as it is."""
    if ":" in user_id:
        return user_id
    return f"@{user_id.removeprefix('@')}:{settings_from(config, **flags).server_name}"


def _run(flags: dict[str, Any], config: Path | None, work: Callable[[Services], Awaitable[T]]) -> T:
    settings = settings_from(config, **flags)
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def go() -> T:
        db = Database(settings.database_url())
        try:
            await upgrade(db)
            signer = load_or_create(settings.log_key_path(), settings.log_origin)
            return await work(build_services(settings, db, signer))
        finally:
            await db.close()

    try:
        return asyncio.run(go())
    except ClearpostError as exc:
        raise fail(exc.message, code=exc.code) from exc


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M")


def _say(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


@users_app.command("list")
def users_list(
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Every account: when it was made, its devices, whether it is suspended."""

    async def work(svc: Services) -> list[Any]:
        return await svc.accounts.accounts.users()

    rows = _run({"database": database, "data_dir": data_dir}, config, work)
    if json:
        _say(
            orjson.dumps(
                {
                    "users": [
                        {
                            "user_id": r.user_id,
                            "created_at": r.created_at,
                            "suspended_at": r.suspended_at,
                            "devices": r.devices,
                        }
                        for r in rows
                    ]
                }
            ).decode()
        )
        return
    table = Table("user", "created (UTC)", "devices", "suspended")
    for r in rows:
        table.add_row(r.user_id, _when(r.created_at), str(r.devices), _when(r.suspended_at))
    out.print(table)
    _say(f"{len(rows)} accounts")


@users_app.command("show")
def users_show(
    user_id: UserArg,
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """One account: its devices (with names, which only the owner and you see) and apps."""
    user_id = _user(user_id, {"database": database, "data_dir": data_dir}, config)

    async def work(svc: Services) -> dict[str, Any]:
        found = [r for r in await svc.accounts.accounts.users() if r.user_id == user_id]
        if not found:
            raise NotFound(f"no account {user_id}", code="user_not_found")
        devices = await svc.accounts.devices(user_id)
        apps = await svc.oauth.apps(user_id)
        return {
            "user_id": user_id,
            "created_at": found[0].created_at,
            "suspended_at": found[0].suspended_at,
            "devices": [
                {
                    "device_id": d.device_id,
                    "display_name": d.display_name,
                    "created_at": d.created_at,
                    "has_keys": d.ed25519 is not None,
                }
                for d in devices
            ],
            "apps": [
                {"partner_id": g.partner_id, "scopes": g.scopes.split(), "created_at": g.created_at}
                for g in apps
                if g.revoked_at is None
            ],
        }

    info = _run({"database": database, "data_dir": data_dir}, config, work)
    if json:
        _say(orjson.dumps(info).decode())
        return
    _say(f"{info['user_id']}  created {_when(info['created_at'])}")
    if info["suspended_at"] is not None:
        _say(f"SUSPENDED since {_when(info['suspended_at'])}")
    table = Table("device", "name", "created (UTC)", "keys")
    for d in info["devices"]:
        table.add_row(
            d["device_id"],
            d["display_name"] or "",
            _when(d["created_at"]),
            "yes" if d["has_keys"] else "no",
        )
    out.print(table)
    for a in info["apps"]:
        _say(f"connected app: {a['partner_id']} ({' '.join(a['scopes'])})")


def _suspension(suspended: bool, doc: str) -> Callable[..., None]:
    """The ``suspend`` and ``unsuspend`` commands: the same flags, one direction each."""

    def command(
        user_id: UserArg,
        database: DatabaseOpt = None,
        data_dir: DataDirOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        flags = {"database": database, "data_dir": data_dir}
        user = _user(user_id, flags, config)

        async def work(svc: Services) -> None:
            await svc.accounts.set_suspended(user, suspended)

        _run(flags, config, work)
        user_id = user
        _say(f"{user_id} is {'suspended' if suspended else 'reinstated'}")

    command.__doc__ = doc
    return command


users_app.command("suspend")(
    _suspension(
        True, "Suspend an account: its devices and its apps' tokens get 403, it cannot sign in."
    )
)
users_app.command("unsuspend")(_suspension(False, "Reinstate a suspended account."))


@users_app.command("delete")
def users_delete(
    user_id: UserArg,
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    yes: YesOpt = False,
) -> None:
    """Delete an account for good, as its owner can (see docs/operations.md, Erasure)."""
    user_id = _user(user_id, {"database": database, "data_dir": data_dir}, config)
    if not yes:
        typer.confirm(f"Delete {user_id} and everything that links to it, for good?", abort=True)

    async def work(svc: Services) -> str:
        return await svc.deletion.delete(user_id)

    pseudonym = _run({"database": database, "data_dir": data_dir}, config, work)
    _say(f"deleted {user_id}; messages it sent are now shown as from {pseudonym}")


@invites_app.command("create")
def invites_create(
    count: Annotated[int, typer.Option(min=1, max=1000, help="How many invites.")] = 1,
    days: Annotated[int, typer.Option(min=1, max=365, help="Days until they expire.")] = 7,
    note: Annotated[str | None, typer.Option(help="A note for you (who it is for).")] = None,
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Make single-use invites (for `registration = "invite"`); each is shown once."""

    async def work(svc: Services) -> list[str]:
        return [await svc.accounts.create_invite(note, days) for _ in range(count)]

    for invite in _run({"database": database, "data_dir": data_dir}, config, work):
        _say(invite)


@invites_app.command("list")
def invites_list(
    database: DatabaseOpt = None, data_dir: DataDirOpt = None, config: ConfigOpt = None
) -> None:
    """Invites made so far: when, until when, whether used (the invites themselves are not
    stored, only their hashes)."""

    async def work(svc: Services) -> list[Any]:
        return await svc.accounts.accounts.invites()

    table = Table("created (UTC)", "expires (UTC)", "used (UTC)", "note")
    for r in _run({"database": database, "data_dir": data_dir}, config, work):
        table.add_row(_when(r.created_at), _when(r.expires_at), _when(r.used_at), r.note or "")
    out.print(table)


def _partner_action(
    action: str, partner_id: str, flags: dict[str, Any], config: Path | None
) -> tuple[str | None, int]:
    async def work(svc: Services) -> tuple[str | None, int]:
        if action == "suspend":
            return None, await svc.partners.suspend(partner_id)
        if action == "resume":
            return None, await svc.partners.resume(partner_id)
        return await svc.partners.rotate_secret(partner_id)

    return _run(flags, config, work)


def _partner_status(action: str, past: str, doc: str) -> Callable[..., None]:
    """The ``suspend`` and ``resume`` commands: the same flags, one action each."""

    def command(
        partner_id: PartnerArg,
        database: DatabaseOpt = None,
        data_dir: DataDirOpt = None,
        config: ConfigOpt = None,
    ) -> None:
        flags = {"database": database, "data_dir": data_dir}
        _, index = _partner_action(action, partner_id, flags, config)
        _say(f"{partner_id} is {past} (log entry {index})")

    command.__doc__ = doc
    return command


partners_app.command("suspend")(
    _partner_status(
        "suspend",
        "suspended",
        "Suspend a partner (logged first): its tokens and credentials stop working.",
    )
)
partners_app.command("resume")(
    _partner_status("resume", "resumed", "Resume a suspended partner (logged first).")
)


@partners_app.command("rotate-secret")
def partners_rotate(
    partner_id: PartnerArg,
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Give a partner a new client secret (logged first); the old one stops working."""
    secret, index = _partner_action(
        "rotate", partner_id, {"database": database, "data_dir": data_dir}, config
    )
    _say(f"new client secret for {partner_id} (shown once; log entry {index}):")
    _say(str(secret))
