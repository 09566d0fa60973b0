"""``clearpost witness``: make a witness key, and cosign a log's checkpoints.

A witness cosigns only checkpoints consistent with the last one it cosigned, so one log
cannot show two histories to people who check cosignatures. Exit codes are those of
``clearpost audit`` (see docs/transparency-log.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Annotated

import typer
from starlette.types import ASGIApp, Receive, Scope, Send

from clearpost.audit import (
    AuditFailure,
    LogClient,
    LogUnavailable,
    Outcome,
    WitnessResult,
    generate_witness_key,
    load_witness_key,
    open_witness,
    write_witness_key,
)
from clearpost.audit.addcheckpoint import MAX_BODY, AddCheckpoint, Answer
from clearpost.audit.errors import StateError
from clearpost.audit.state import LogPin, WitnessState, load_json, lock_state
from clearpost.cli.audit import (
    OriginOpt,
    ServerOpt,
    VkeyOpt,
    check_vkey,
    err,
    http_client,
    out,
    run_or_exit,
    show_failure,
)
from clearpost.core.tlog import KeyFormatError, Verifier
from clearpost.core.tlog.keys import b64encode, is_valid_key_name

app = typer.Typer(
    help="Witness a Clearpost transparency log: cosign consistent checkpoints.",
    no_args_is_help=True,
)


@app.command()
def keygen(
    name: Annotated[
        str, typer.Option("--name", help="Witness key name, e.g. witness.example.org/w1.")
    ],
    out_file: Annotated[
        Path, typer.Option("--out", help="Where to write the secret key (mode 0600).")
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing key file.")] = False,
) -> None:
    """Create a witness key; print the verifier key to configure on the server."""
    if not is_valid_key_name(name):
        raise typer.BadParameter("no spaces, '+' or control characters", param_hint="--name")
    cosigner, skey = generate_witness_key(name)
    try:
        write_witness_key(out_file, skey, overwrite=force)
    except AuditFailure as exc:
        show_failure(exc)
        raise typer.Exit(int(exc.exit_code)) from exc
    print(cosigner.vkey)
    err.print(
        f"secret key written to {out_file}. On the server, add the line above to "
        "log_witnesses (env CLEARPOST_LOG_WITNESSES, comma-separated).",
        markup=False,
    )


@app.command()
def run(
    server: ServerOpt,
    key: Annotated[Path, typer.Option("--key", help="The witness key file (from keygen).")],
    state: Annotated[
        Path | None,
        typer.Option("--state", help="State file (default: the key file + .state.json)."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="One round, then exit with its verdict's code.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between rounds.")
    ] = 10.0,
    origin: OriginOpt = None,
    vkey: VkeyOpt = None,
) -> None:
    """Fetch new checkpoints, verify consistency, cosign and publish — forever, or --once."""
    check_vkey(vkey)
    state_path = state or key.with_name(key.name + ".state.json")

    async def main() -> None:
        try:
            cosigner = load_witness_key(key)
        except KeyFormatError as exc:  # pragma: no cover - load_witness_key wraps these
            raise typer.BadParameter(exc.message, param_hint="--key") from exc
        async with http_client(server) as http:
            with lock_state(state_path):
                witness, tofu = await open_witness(
                    LogClient(http), cosigner, state_path, origin=origin, vkey=vkey
                )
                if tofu:
                    out.print(
                        f"trusting log {witness.pin.origin} key {witness.pin.vkey} on first "
                        f"use (pinned in {state_path})",
                        markup=False,
                    )
                last_failure = ""
                while True:
                    try:
                        _show(await witness.step(), once)
                    except LogUnavailable as exc:
                        if once:
                            raise
                        err.print(f"log unavailable, will retry: {exc.message}", markup=False)
                    except AuditFailure as exc:
                        if once:
                            raise
                        if exc.message != last_failure:  # loud once, then a reminder line
                            show_failure(exc)
                            last_failure = exc.message
                        else:
                            err.print(f"still refusing: {exc.title}", style="red")
                    else:
                        last_failure = ""
                    if once:
                        return
                    await asyncio.sleep(interval)

    with contextlib.suppress(KeyboardInterrupt):
        run_or_exit(main)


@app.command()
def serve(
    key: Annotated[Path, typer.Option("--key", help="The witness key file (from keygen).")],
    log_vkey: Annotated[
        str, typer.Option("--log-vkey", help="The verifier key of the log to witness.")
    ],
    origin: OriginOpt = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="State file (default: the key file + .state.json)."),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8449,
) -> None:
    """Serve C2SP tlog-witness: logs POST /add-checkpoint and get this witness's cosignature.

    Same state as `witness run`: one witness never cosigns two histories, pulled or pushed."""
    import uvicorn

    check_vkey(log_vkey)
    state_path = state or key.with_name(key.name + ".state.json")
    try:
        cosigner = load_witness_key(key)
        pin = LogPin(origin or Verifier.from_vkey(log_vkey).name, log_vkey)
        previous = None
        if (raw := load_json(state_path)) is not None:
            previous = WitnessState.from_json(raw, state_path)
            if previous.witness_vkey != cosigner.vkey or previous.log != pin:
                raise StateError(f"the state in {state_path} is for another witness key or log")
    except AuditFailure as exc:
        show_failure(exc)
        raise typer.Exit(int(exc.exit_code)) from exc
    witness = AddCheckpoint(cosigner, pin, previous, state_path)
    out.print(
        f"witness {cosigner.name} for log {pin.origin} on http://{host}:{port}/add-checkpoint",
        markup=False,
    )
    with lock_state(state_path):
        uvicorn.run(
            witness_app(witness),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )


def witness_app(witness: AddCheckpoint) -> ASGIApp:
    """``POST /add-checkpoint`` as a bare ASGI app (anything else: 404 or 405)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        if scope["path"] != "/add-checkpoint":
            answer = Answer(404, "text/plain", b"not found\n")
        elif scope["method"] != "POST":
            answer = Answer(405, "text/plain", b"POST only\n")
        else:
            body, too_big = bytearray(), False
            while True:
                message = await receive()
                body += message.get("body", b"")
                if len(body) > MAX_BODY:
                    too_big = True
                    break
                if not message.get("more_body", False):
                    break
            if too_big:
                answer = Answer(413, "text/plain", b"request body too large\n")
            else:
                answer = await witness.handle(bytes(body))
        await send(
            {
                "type": "http.response.start",
                "status": answer.status,
                "headers": [
                    (b"content-type", answer.content_type.encode()),
                    (b"content-length", str(len(answer.body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer.body})

    return app


def _show(result: WitnessResult, verbose: bool) -> None:
    cp = result.checkpoint
    stamp = time.strftime("%H:%M:%S")
    if result.outcome is Outcome.COSIGNED:
        since = (
            "" if result.previous_size is None else f" (consistent with {result.previous_size:,})"
        )
        out.print(
            f"{stamp} [green]cosigned[/] size {cp.size:,} root {b64encode(cp.root_hash)}{since}"
        )
    elif verbose:
        out.print(f"{stamp} unchanged: size {cp.size:,} is already cosigned")
