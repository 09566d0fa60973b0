"""``clearpost account``: register, log in this device, log out, list your devices.

Settings come from flags or the environment (documented in docs/client.md):

- ``--server`` / ``CLEARPOST_SERVER``: the server's base URL (default http://127.0.0.1:8448;
  after login the store remembers it).
- ``--store`` / ``CLEARPOST_STORE``: this device's store file (default
  ``$XDG_DATA_HOME/clearpost/device.store``).
- ``--passphrase`` / ``CLEARPOST_PASSPHRASE``: the store's passphrase (asked for if unset).
- ``--password`` / ``CLEARPOST_PASSWORD``: the account password (asked for if unset).

Exit codes (``cli.errors``): 0 done, 1 failed (one ``error:`` line says why), 2 usage.
This module also holds what ``clearpost chat`` shares with it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import orjson
import typer
from rich.console import Console
from rich.table import Table

from clearpost.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, fail
from clearpost.client import Client, DeviceStore, StoreError
from clearpost.core.errors import ClearpostError

app = typer.Typer(help="Your account and this device's keys.", no_args_is_help=True)

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

T = TypeVar("T")
DEFAULT_SERVER = "http://127.0.0.1:8448"


def default_store() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "clearpost" / "device.store"


ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        envvar="CLEARPOST_SERVER",
        help=f"Server base URL (default {DEFAULT_SERVER}, or the one the store remembers).",
    ),
]
StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store", envvar="CLEARPOST_STORE", help="This device's store file.", dir_okay=False
    ),
]
PassphraseOpt = Annotated[
    str | None,
    typer.Option(
        "--passphrase",
        envvar="CLEARPOST_PASSPHRASE",
        help="The store's passphrase (prompted if unset).",
    ),
]
PasswordOpt = Annotated[
    str | None,
    typer.Option(
        "--password", envvar="CLEARPOST_PASSWORD", help="Account password (prompted if unset)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of tables.")]


def emit_json(value: Any) -> None:
    """One JSON document on stdout."""
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command; a Clearpost error or an unreachable server is one ``error:`` line and
    exit 1 (``cli.errors``)."""
    try:
        return asyncio.run(main())
    except ClearpostError as exc:
        raise fail(exc.message, EXIT_FAILED, code=exc.code) from exc
    except httpx.TransportError as exc:
        where = exc.request.url.copy_with(path="/", query=None) if _has_request(exc) else ""
        raise fail(f"cannot reach the server {where}: {exc or type(exc).__name__}") from exc
    except KeyboardInterrupt:
        raise typer.Exit(EXIT_INTERRUPTED) from None


def _has_request(exc: httpx.TransportError) -> bool:
    try:
        exc.request  # noqa: B018 - raises when the error was not tied to a request
    except RuntimeError:
        return False
    return True


def _passphrase(value: str | None, *, confirm: bool = False) -> str:
    if value:
        return value
    entered: str = typer.prompt("Store passphrase", hide_input=True, confirmation_prompt=confirm)
    return entered


def _password(value: str | None, *, confirm: bool = False) -> str:
    if value:
        return value
    entered: str = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return entered


def _http(server: str) -> httpx.AsyncClient:
    if not server.startswith(("http://", "https://")):
        raise typer.BadParameter(
            "the server URL must start with http:// or https://", param_hint="--server"
        )
    return httpx.AsyncClient(base_url=server.rstrip("/"), timeout=httpx.Timeout(60.0))


@asynccontextmanager
async def open_client(
    server: str | None, store: Path | None, passphrase: str | None
) -> AsyncIterator[Client]:
    """The device in ``store``, connected to its server (or ``server`` if given)."""
    db = DeviceStore.open(store or default_store(), _passphrase(passphrase))
    login = db.login
    if login is None:
        db.close()
        raise StoreError(
            "this device store holds no login; run 'clearpost account login'", code="not_logged_in"
        )
    async with _http(server or login.server) as http:
        client = await Client.from_store(http, db)
        try:
            yield client
        finally:
            await client.close()


async def _new_device(
    register: bool,
    username: str,
    password: str | None,
    device_name: str | None,
    server: str | None,
    store: Path | None,
    passphrase: str | None,
    invite: str | None = None,
) -> Client:
    path = store or default_store()
    if path.exists():
        raise StoreError(
            f"a device store already exists at {path}; use another --store", code="store_exists"
        )
    secret = _passphrase(passphrase, confirm=True)
    pw = _password(password, confirm=register)
    async with _http(server or DEFAULT_SERVER) as http:
        if register:
            client = await Client.register(
                http,
                username,
                pw,
                store_path=path,
                passphrase=secret,
                device_name=device_name,
                invite=invite,
            )
        else:
            client = await Client.login(
                http, username, pw, store_path=path, passphrase=secret, device_name=device_name
            )
        await client.close()
        return client


def _report_device(client: Client, store: Path | None, as_json: bool, what: str) -> None:
    path = store or default_store()
    if as_json:
        emit_json({"user_id": client.user_id, "device_id": client.device_id, "store": str(path)})
    else:
        who = f"[bold]{client.user_id}[/bold] as device [bold]{client.device_id}[/bold]"
        out.print(f"{what} {who}; keys in {path}")


DeviceNameOpt = Annotated[str | None, typer.Option("--device-name", help="A name for this device.")]


@app.command()
def register(
    username: Annotated[str, typer.Argument(help="3-32 characters: a-z 0-9 _ . -")],
    password: PasswordOpt = None,
    device_name: DeviceNameOpt = None,
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    invite: Annotated[
        str | None,
        typer.Option(
            "--invite", envvar="CLEARPOST_INVITE", help="An invite, if the server needs one."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an account and log this device in (new keys, sealed in the store)."""
    client = run(
        lambda: _new_device(
            True, username, password, device_name, server, store, passphrase, invite
        )
    )
    _report_device(client, store, as_json, "registered")


@app.command()
def login(
    username: str,
    password: PasswordOpt = None,
    device_name: DeviceNameOpt = None,
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Log in as a new device of an existing account, with a new store."""
    client = run(
        lambda: _new_device(False, username, password, device_name, server, store, passphrase)
    )
    _report_device(client, store, as_json, "logged in")


@app.command()
def logout(
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    keep_store: Annotated[bool, typer.Option("--keep-store", help="Keep the store file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Log this device out: the server forgets it and its keys; the store is deleted."""
    path = store or default_store()

    async def main() -> str:
        async with open_client(server, path, passphrase) as client:
            await client.transport.logout()
            return client.device_id

    device = run(main)
    if not keep_store:
        for extra in ("", "-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
    if as_json:
        emit_json({"logged_out": device, "store_deleted": not keep_store})
    else:
        out.print(f"device {device} logged out" + ("" if keep_store else f"; {path} deleted"))


@app.command()
def devices(
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Your devices, and whether each one's published keys verify."""

    async def main() -> list[dict[str, Any]]:
        async with open_client(server, store, passphrase) as client:
            return await client.devices()

    found = run(main)
    if as_json:
        emit_json({"devices": found})
        return
    table = Table("device", "name", "keys", "")
    for d in found:
        keys = "[green]verified[/green]" if d["verified"] else "[red]unverified[/red]"
        table.add_row(
            d["device_id"],
            d.get("display_name") or "",
            keys,
            "this device" if d["this_device"] else "",
        )
    out.print(table)


@app.command("remove-device")
def remove_device(
    device_id: Annotated[str, typer.Argument(help="The device to remove (see `devices`).")],
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove one of your other devices (a lost one): its token and keys stop working, and
    your contacts' clients are told."""

    async def main() -> None:
        async with open_client(server, store, passphrase) as client:
            if device_id == client.device_id:
                raise StoreError(
                    "that is this device; use 'clearpost account logout'", code="this_device"
                )
            await client.transport.delete_device(device_id)

    run(main)
    if as_json:
        emit_json({"removed": device_id})
    else:
        out.print(f"device {device_id} removed")


@app.command()
def password(
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    old: Annotated[
        str | None, typer.Option("--old", envvar="CLEARPOST_PASSWORD", help="The current password.")
    ] = None,
    new: Annotated[
        str | None,
        typer.Option("--new", envvar="CLEARPOST_NEW_PASSWORD", help="The new password."),
    ] = None,
) -> None:
    """Change your account password (asked for if not given). Devices stay signed in."""
    current = old or typer.prompt("Current password", hide_input=True)
    wanted = new or typer.prompt("New password", hide_input=True, confirmation_prompt=True)

    async def main() -> None:
        async with open_client(server, store, passphrase) as client:
            await client.transport.change_password(current, wanted)

    run(main)
    out.print("password changed")


@app.command("delete")
def delete_account(
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    password: PasswordOpt = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete your account for good. Every device, key, consent and membership goes; the
    log's entries about you can no longer be linked to you; messages you sent stay with
    their recipients, shown as from a deleted account. This device's store is deleted."""
    path = store or default_store()
    if not yes:
        typer.confirm("Delete your account and everything on the server about it?", abort=True)
    pw = _password(password)

    async def main() -> str:
        async with open_client(server, path, passphrase) as client:
            await client.transport.delete_account(pw)
            return client.user_id

    user_id = run(main)
    for extra in ("", "-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)
    if as_json:
        emit_json({"deleted": user_id})
    else:
        out.print(f"account {user_id} deleted; {path} deleted")
