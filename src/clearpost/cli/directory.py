"""``clearpost directory``: the key directory, checked on this device (issue 17).

``lookup USER`` shows the devices the directory holds for an account, with the proof
verified (VRF, commitment, prefix tree, the epoch's root in the signed log); ``history``
lists every version of your own devices and whether this device made it.
Settings as for ``clearpost chat``.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from clearpost.cli.account import (
    JsonOpt,
    PassphraseOpt,
    ServerOpt,
    StoreOpt,
    emit_json,
    open_client,
    out,
    run,
)
from clearpost.core.keydir_labels import parse_devices_value

app = typer.Typer(help="The key directory: verified device lists.", no_args_is_help=True)


def _keys(d: dict[str, Any]) -> str:
    keys = d.get("keys") or {}
    ed = next((v for k, v in keys.items() if str(k).startswith("ed25519:")), "")
    return f"{str(ed)[:16]}…" if ed else ""


@app.command()
def lookup(
    user: str = typer.Argument(help="The account, e.g. @bob (on your server) or @bob:example.org."),
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The devices the key directory holds for USER, proven (or proof there are none)."""

    async def main() -> tuple[str, list[dict[str, Any]], int, int | None]:
        async with open_client(server, store, passphrase) as client:
            user_id = client.qualify(user)
            found = await client.crypto.directory.lookup(user_id)
            values = found.values
            keys = [] if found.version is None else parse_devices_value(values[found.version])
            return user_id, keys, found.epoch, found.version

    user, keys, epoch, version = run(main)
    if as_json:
        emit_json({"user_id": user, "epoch": epoch, "version": version, "devices": keys})
        return
    if version is None:
        out.print(
            f"{escape(user)}: [bold]no such account[/bold] in the key directory (proven "
            f"absent at epoch {epoch})"
        )
        return
    out.print(
        f"{escape(user)}: version {version} at epoch {epoch}, [green]✓ proof verified[/green] "
        "(VRF, commitment, prefix tree, epoch root in the signed log)"
    )
    table = Table("device", "ed25519")
    for d in keys:
        table.add_row(escape(str(d.get("device_id"))), escape(_keys(d)))
    out.print(table)


@app.command()
def history(
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every version of your own devices in the key directory, proven."""

    async def main() -> tuple[dict[int, bytes], int, str]:
        async with open_client(server, store, passphrase) as client:
            found = await client.crypto.directory.history()
            return found.values, found.epoch, client.device_id

    values, epoch, me = run(main)
    versions = [
        (v, sorted(str(d.get("device_id")) for d in parse_devices_value(values[v])))
        for v in sorted(values)
    ]
    if as_json:
        emit_json(
            {"epoch": epoch, "versions": [{"version": v, "devices": ds} for v, ds in versions]}
        )
        return
    out.print(f"your devices in the key directory, epoch {epoch}: [green]✓ proof verified[/green]")
    table = Table("version", "devices", "change")
    before: set[str] = set()
    for v, ds in versions:
        added, removed = sorted(set(ds) - before), sorted(before - set(ds))
        change = ", ".join([f"+{a}" for a in added] + [f"-{r}" for r in removed])
        if added == [me] and not removed:
            change += " (this device)"
        table.add_row(str(v), escape(", ".join(ds)), escape(change))
        before = set(ds)
    out.print(table)
