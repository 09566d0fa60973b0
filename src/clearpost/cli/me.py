"""``clearpost me``: the partner apps you connected, and the public log entries about you.

``me log`` checks every entry against the log's signed checkpoint on this device (see
``clearpost.client.transparency``); ``me apps`` lists and revokes connected apps.
Settings as for ``clearpost chat``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

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
from clearpost.cli.shares import when
from clearpost.client import ConnectedApp, LogEntry, VerifiedLog

app = typer.Typer(help="Your connected apps and the log entries about you.", no_args_is_help=True)

_TYPE_STYLE = {"grant": "green", "revocation": "magenta", "access": "cyan", "device": "blue"}


@app.command()
def log(
    verify: Annotated[
        bool,
        typer.Option(
            "--verify/--no-verify",
            help="Check each entry's inclusion proof against the signed checkpoint.",
        ),
    ] = True,
    log_key: Annotated[
        str | None,
        typer.Option(
            "--log-key",
            envvar="CLEARPOST_LOG_KEY",
            help="The log's verifier key; else the published one is trusted on first use "
            "and pinned in this device's store.",
        ),
    ] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            envvar="CLEARPOST_WITNESSES",
            help="A witness you trust (cosignature/v1 vkey); repeatable.",
        ),
    ] = None,
    cosigned: Annotated[
        int | None,
        typer.Option(
            "--cosigned",
            min=0,
            help="How many of those witnesses must have cosigned (default: all given).",
        ),
    ] = None,
    wait: Annotated[
        float,
        typer.Option(
            "--wait", min=0, help="Seconds to wait for entries newer than the checkpoint."
        ),
    ] = 3.0,
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The transparency-log entries about you: consents, revocations, every partner access,
    your device keys. Each is verified against the log's signed checkpoint."""
    witnesses = witness or []
    required = len(witnesses) if cosigned is None else cosigned

    async def main() -> VerifiedLog | list[LogEntry]:
        async with open_client(server, store, passphrase) as client:
            if not verify:
                return await client.log_entries()
            return await client.verify_log(
                vkey=log_key, witnesses=witnesses, cosigned=required, wait=wait
            )

    result = run(main)
    if isinstance(result, list):
        if as_json:
            emit_json({"verified": False, "entries": [e.to_json() for e in result]})
            return
        _entries(result, None)
        out.print("[yellow]Not verified[/yellow] (run without --no-verify to check them).")
        return
    if as_json:
        emit_json({"verified": True, **result.to_json()})
        return
    _summary_head(result)
    _entries(list(result.entries), result)
    _summary_tail(result)


def _entries(entries: list[LogEntry], checked: VerifiedLog | None) -> None:
    if not entries:
        out.print("[dim]no log entries about you yet[/dim]")
        return
    table = Table("#", "time", "type", "partner", "scope / endpoint", "verified")
    for e in entries:
        style = _TYPE_STYLE.get(e.type, "")
        if checked is None:
            mark = "[dim]not checked[/dim]"
        elif e.witnessed:
            mark = "[green]✓ witnessed[/green]"
        elif e.verified:
            mark = "[green]✓[/green]"
        else:
            mark = "[yellow]pending[/yellow]"
        table.add_row(
            str(e.index),
            when(e.time) if e.time is not None else "",
            f"[{style}]{e.type}[/{style}]" if style else e.type,
            escape(e.partner or ""),
            escape(e.what),
            mark,
        )
    out.print(table)


def _summary_head(r: VerifiedLog) -> None:
    root = r.to_json()["root"]
    out.print(
        f"log [bold]{escape(r.origin)}[/bold]: checkpoint of {r.checkpoint.size:,} entries, "
        f"root {root[:12]}…, signature verified"
    )
    out.print(
        "[dim]each entry's subject commitment opened with your salt and its opening "
        "(from format version 2 no two entries about you share one)[/dim]"
    )
    if r.total is not None and r.total > len(r.entries):
        out.print(
            f"[yellow]the server counts {r.total:,} entries about you; showing "
            f"{len(r.entries):,}[/yellow]"
        )
    if r.witnesses:
        out.print(
            f"cosigned by {', '.join(map(escape, r.witnesses))} "
            f"(checkpoint of {r.witnessed_size:,} entries, consistent with the one above)"
        )


def _summary_tail(r: VerifiedLog) -> None:
    done = len(r.entries) - r.pending
    if r.entries:
        out.print(
            f"[green]✓ {done} of {len(r.entries)} entries about you are in the signed log[/green]"
        )
    if r.complete_through is not None:
        counted = (
            ""
            if r.counted_at_ms is None
            else f", counted at {dt.datetime.fromtimestamp(r.counted_at_ms / 1000):%H:%M:%S}"
        )
        out.print(
            f"[green]✓ complete[/green]: the key directory commits to the same entries about "
            f"you below index {r.complete_through:,} (none left out{counted})"
        )
        newer = sum(1 for e in r.entries if e.index >= r.complete_through)
        if newer:
            every = f" within {r.counted_every} s" if r.counted_every else " at its next epoch"
            out.print(
                f"[dim]{newer} newer {'entry is' if newer == 1 else 'entries are'} not counted "
                f"yet: the key directory counts them{every}[/dim]"
            )
    if r.pending:
        out.print(
            f"[yellow]{r.pending} newer than the checkpoint: their proofs come with the next "
            "one (run again in a moment)[/yellow]"
        )
    if r.trusted_on_first_use:
        out.print(
            f"[yellow]trusted the log key on first use[/yellow]: {escape(r.vkey)} "
            "(pinned in this device's store; pass --log-key to check it against a known key)"
        )


@app.command()
def apps(
    revoke: Annotated[
        str | None,
        typer.Option(
            "--revoke",
            metavar="PARTNER",
            help="Revoke this app: logged first, then its tokens stop working at once.",
        ),
    ] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also list apps you revoked.")] = False,
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Partner apps connected to your account: scopes, since when, last access."""

    async def main() -> tuple[list[int], list[ConnectedApp]]:
        async with open_client(server, store, passphrase) as client:
            indexes = await client.revoke_app(revoke) if revoke else []
            return indexes, await client.apps()

    indexes, found = run(main)
    shown = [a for a in found if show_all or a.connected]
    if as_json:
        body: dict[str, Any] = {"apps": [a.to_json() for a in shown]}
        if revoke:
            body["revoked"] = {"partner": revoke, "log_indexes": indexes}
        emit_json(body)
        return
    if revoke:
        name = next((a.partner_name for a in found if a.partner == revoke), revoke)
        out.print(
            f"Revoked [bold]{escape(name)}[/bold]: its tokens stopped working; "
            f"logged as entr{'y' if len(indexes) == 1 else 'ies'} "
            f"{', '.join(map(str, indexes))}."
        )
    if not shown:
        revoked = len(found) - len(shown)
        more = f" ({revoked} revoked: --all lists them)" if revoked else ""
        out.print(f"[dim]no connected apps{more}[/dim]")
        return
    table = Table("app", "scopes", "since", "last access", "log", "status")
    for a in shown:
        table.add_row(
            f"{escape(a.partner_name)} [dim]({escape(a.partner)})[/dim]",
            escape(", ".join(a.scopes)),
            when(a.since),
            when(a.last_access) if a.last_access else "never",
            f"#{a.grant_log_index}" if a.grant_log_index is not None else "",
            "connected"
            if a.connected
            else f"[magenta]revoked {when(a.revoked_at or 0)}[/magenta] (#{a.revoke_log_index})",
        )
    out.print(table)
