"""``clearpost chat``: send, read and follow end-to-end encrypted conversations.

Everything is encrypted and decrypted on this device, with the keys in its store; the
server only ever sees ciphertext. Settings: see ``clearpost account --help`` and
docs/client.md (``CLEARPOST_SERVER``, ``CLEARPOST_STORE``, ``CLEARPOST_PASSPHRASE``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
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
from clearpost.client import (
    Client,
    DeviceListChange,
    Event,
    KeyProblem,
    MembershipEvent,
    Message,
    MessageEvent,
    MessageState,
    ShareIntentEvent,
)

app = typer.Typer(help="End-to-end encrypted conversations.", no_args_is_help=True)

_STATE_STYLE = {
    MessageState.DECRYPTED: "",
    MessageState.WAITING_FOR_KEY: "yellow",
    MessageState.WITHHELD: "magenta",
    MessageState.FAILED: "red",
}


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def _show(msg: Message, me: str) -> None:
    """Everything a peer or the server controls (ids, text, withheld reasons) is escaped:
    a reason like ``[link=…]`` once printed as a fake message line with a link."""
    who = "you" if msg.sender == me else msg.sender
    style = _STATE_STYLE[msg.state]
    body = f"[{style}]{escape(msg.text)}[/{style}]" if style else msg.text
    out.print(
        f"[dim]{escape(msg.conversation_id)} #{msg.seq} {_when(msg.sent_at)}[/dim] "
        f"[bold]{escape(who)}[/bold]: ",
        end="",
    )
    out.print(body, markup=bool(style), highlight=False)


@app.command()
def send(
    to: Annotated[
        str, typer.Argument(help="A user id (@bob: the direct conversation) or a conversation id.")
    ],
    text: Annotated[str, typer.Argument(help="The message.")],
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Encrypt a message on this device and send it."""

    async def main() -> dict[str, Any]:
        async with open_client(server, store, passphrase) as client:
            conversation = await client.direct(to) if to.startswith("@") else to
            sent = await client.send(conversation, text)
            return {
                "conversation_id": sent.conversation_id,
                "seq": sent.seq,
                "sent_at": sent.sent_at,
            }

    result = run(main)
    if as_json:
        emit_json(result)
    else:
        out.print(escape(f"sent to {result['conversation_id']} as #{result['seq']}"))


@app.command("new-group")
def new_group(
    users: Annotated[
        list[str], typer.Argument(help="User ids of the other members, e.g. @bob @carol.")
    ],
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a group conversation with you and these users."""

    async def main() -> str:
        async with open_client(server, store, passphrase) as client:
            return await client.new_group(users)

    conversation = run(main)
    if as_json:
        emit_json({"conversation_id": conversation, "members": users})
    else:
        out.print(escape(f"group {conversation} with {', '.join(users)}"))


ConversationArg = Annotated[str, typer.Argument(help="The conversation id (see `inbox`).")]
UserArg = Annotated[str, typer.Argument(help="A user id, e.g. @carol.")]


def _membership(work: Callable[[Client], Awaitable[None]], flags: dict[str, Any]) -> None:
    async def main() -> None:
        async with open_client(flags["server"], flags["store"], flags["passphrase"]) as client:
            await work(client)

    run(main)


@app.command("add")
def add_member(
    conversation: ConversationArg,
    user: UserArg,
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
) -> None:
    """Add someone to a group. Your next message starts a new session key that they get."""
    flags = {"server": server, "store": store, "passphrase": passphrase}
    _membership(lambda c: c.add_member(conversation, user), flags)
    out.print(f"{user} added to {conversation}")


@app.command("remove")
def remove_member(
    conversation: ConversationArg,
    user: UserArg,
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
) -> None:
    """Remove someone from a group you created; they cannot read what is sent after."""
    flags = {"server": server, "store": store, "passphrase": passphrase}
    _membership(lambda c: c.remove_member(conversation, user), flags)
    out.print(f"{user} removed from {conversation}")


@app.command()
def leave(
    conversation: ConversationArg,
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
) -> None:
    """Leave a conversation."""
    flags = {"server": server, "store": store, "passphrase": passphrase}
    _membership(lambda c: c.leave(conversation), flags)
    out.print(f"you left {conversation}")


@app.command()
def inbox(
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Your conversations, with how many messages you have not read."""

    async def main() -> tuple[str, list[Any]]:
        async with open_client(server, store, passphrase) as client:
            await client.sync()
            return client.user_id, await client.inbox()

    me, entries = run(main)
    if as_json:
        emit_json(
            {
                "conversations": [
                    {
                        "conversation_id": e.conversation_id,
                        "kind": e.kind,
                        "members": list(e.members),
                        "last_seq": e.last_seq,
                        "unread": e.unread,
                    }
                    for e in entries
                ]
            }
        )
        return
    table = Table("conversation", "kind", "with", "messages", "unread")
    for e in entries:
        others = ", ".join(m for m in e.members if m != me)
        unread = f"[bold]{e.unread}[/bold]" if e.unread else "0"
        table.add_row(
            escape(e.conversation_id), escape(e.kind), escape(others), str(e.last_seq), unread
        )
    out.print(table)


@app.command()
def history(
    conversation: Annotated[
        str, typer.Argument(help="A conversation id, or @user for the direct one.")
    ],
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=10_000, help="How many of the last messages.")
    ] = 50,
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Decrypt and show a conversation's last messages (and mark them read)."""

    async def main() -> tuple[str, list[Message]]:
        async with open_client(server, store, passphrase) as client:
            conv = (
                await client.direct(conversation) if conversation.startswith("@") else conversation
            )
            return client.user_id, await client.history(conv, limit)

    me, messages = run(main)
    if as_json:
        emit_json({"messages": [m.to_json() for m in messages]})
        return
    for m in messages:
        _show(m, me)
    if not messages:
        out.print("[dim]no messages yet[/dim]")


@app.command()
def listen(
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Stop after this many messages.")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0.1, help="Stop after this many seconds.")
    ] = None,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Long-poll instead of the WebSocket.")
    ] = False,
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Follow your conversations live. With --json, one JSON object per line."""

    async def follow() -> None:
        async with open_client(server, store, passphrase) as client:
            seen = 0
            events = client.listen(stream=False if no_stream else None)
            async with contextlib.aclosing(events):
                async for event in events:
                    seen += _print_event(event, client.user_id, as_json)
                    if count is not None and seen >= count:
                        return

    async def main() -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await follow()

    run(main)


def _print_event(event: Event, me: str, as_json: bool) -> int:
    """Print one live event; returns 1 for a message, else 0."""
    if isinstance(event, MessageEvent):
        if as_json:
            _line({"type": "message", "updated": event.updated, **event.message.to_json()})
        else:
            _show(event.message, me)
        return 1
    if isinstance(event, MembershipEvent):
        if as_json:
            _line(
                {
                    "type": "membership",
                    "conversation_id": event.conversation_id,
                    "change": event.change,
                    "user_id": event.user_id,
                    "by": event.by,
                }
            )
        else:
            what = f"{event.conversation_id}: {event.user_id or ''} {event.change}"
            out.print(f"[dim]{escape(what)}[/dim]")
    elif isinstance(event, DeviceListChange):
        if as_json:
            _line(
                {
                    "type": "device_list",
                    "user_id": event.user_id,
                    "own": event.own,
                    "added": list(event.added),
                    "removed": list(event.removed),
                    "rejected": list(event.rejected),
                }
            )
        else:
            out.print(f"[yellow]{escape(event.describe())}[/yellow]")
    elif isinstance(event, ShareIntentEvent):
        intent = event.intent
        if as_json:
            _line({"type": "share_intent", **intent.to_json()})
        else:
            out.print(
                f"[cyan]{escape(intent.partner_name)} suggests sharing[/cyan] "
                f"{escape(intent.title)} ({escape(intent.url)}) [dim]-- send it with: "
                f"clearpost shares send {escape(intent.intent_id)} --to @user[/dim]"
            )
    elif isinstance(event, KeyProblem):
        if as_json:
            _line({"type": "key_problem", **event.to_json()})
        else:
            _show_problem(event)
    return 0


def _show_problem(problem: KeyProblem) -> None:
    when, code = _when(problem.at_ms), escape(problem.code)
    out.print(f"[red]{escape(when)} {escape(problem.reason)}[/red] [dim]({code})[/dim]")


@app.command()
def problems(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many.")] = 20,
    server: ServerOpt = None,
    store: StoreOpt = None,
    passphrase: PassphraseOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Key events from other devices that this device refused (newest first): why a
    message may still be waiting for its key."""

    async def main() -> list[KeyProblem]:
        async with open_client(server, store, passphrase) as client:
            await client.sync()
            return client.key_problems(limit)

    found = run(main)
    if as_json:
        emit_json({"key_problems": [p.to_json() for p in found]})
        return
    for p in found:
        _show_problem(p)
    if not found:
        out.print("[dim]no refused key events[/dim]")


def _line(value: dict[str, Any]) -> None:
    typer.echo(orjson.dumps(value).decode())
