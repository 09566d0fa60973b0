"""``clearpost shares``: what your partner apps suggested you share, and sending it.

A suggestion (share intent) reached only your own devices. ``send`` encrypts the card on
this device and sends it to the people or conversation you choose; the server and the
partner learn only how many people you sent it to. Settings as for ``clearpost chat``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

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
from clearpost.client import Shared, ShareIntent

app = typer.Typer(help="Share what your apps suggest, end-to-end encrypted.", no_args_is_help=True)


def when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def time_left(ms: int) -> str:
    """``23 h 05 min`` / ``4 min`` / ``expired``."""
    if ms <= 0:
        return "expired"
    minutes = max(1, ms // 60_000)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


@app.command("list")
def list_intents(
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Share suggestions from your apps that you have not sent (they expire after 24 h)."""

    async def main() -> tuple[int, list[ShareIntent]]:
        async with open_client(server, store, passphrase) as client:
            return client.clock.now_ms(), await client.share_intents()

    now, intents = run(main)
    if as_json:
        emit_json(
            {
                "share_intents": [
                    {**i.to_json(), "expires_in_s": i.expires_in_ms(now) // 1000} for i in intents
                ]
            }
        )
        return
    if not intents:
        out.print("[dim]no share suggestions from your apps[/dim]")
        return
    table = Table("intent", "from", "title", "leads to", "expires in", title="Share suggestions")
    for i in intents:
        left = i.expires_in_ms(now)
        style = "yellow" if left < 3600_000 else ""
        table.add_row(
            i.intent_id,
            escape(i.partner_name),
            escape(i.title),
            escape(i.url),
            f"[{style}]{time_left(left)}[/{style}]" if style else time_left(left),
        )
    out.print(table)
    out.print(
        "[dim]Only your devices got these. Send one: "
        "clearpost shares send <intent> --to @friend (or --conversation <id>)[/dim]"
    )


@app.command()
def send(
    intent: Annotated[str, typer.Argument(help="The intent id (or a unique prefix of it).")],
    to: Annotated[
        list[str] | None,
        typer.Option("--to", help="A user to send it to (their direct conversation); repeat."),
    ] = None,
    conversation: Annotated[
        list[str] | None,
        typer.Option("--conversation", help="A conversation to send it to; repeatable."),
    ] = None,
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send a suggestion as an encrypted card ("via <partner>") to friends or a conversation.
    The app learns only the number of recipients."""
    users = [u if u.startswith("@") else "@" + u for u in to or []]
    if not users and not conversation:
        raise typer.BadParameter("give --to @user or --conversation ID", param_hint="--to")

    async def main() -> tuple[ShareIntent, Shared]:
        async with open_client(server, store, passphrase) as client:
            found = await client.share_intent(intent)
            return found, await client.share(found, to=users, conversations=conversation or [])

    found, shared = run(main)
    if as_json:
        emit_json({**shared.to_json(), "title": found.title, "partner": found.partner})
        return
    targets = ", ".join([*users, *(conversation or [])])
    out.print(
        f"Shared [bold]{escape(found.title)}[/bold] (via {escape(found.partner_name)}) with "
        f"{escape(targets)}: {shared.recipients} recipient{'s' if shared.recipients != 1 else ''}."
    )
    out.print(
        f"[dim]End-to-end encrypted. {escape(found.partner_name)} is told only the number "
        f"{shared.recipients}, never who.[/dim]"
    )
