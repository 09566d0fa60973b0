"""``clearpost audit``: verify a transparency log from the outside.

Exit codes (also in docs/transparency-log.md): 0 verified, 1 internal error, 2 usage,
3 log unavailable, 4 bad signature, 5 entry mismatch, 6 missing entries, 7 rollback,
8 fork, 9 bad proof, 10 state file problem, 11 cosignature rejected (witness), 12 no
checkpoint cosigned by the required witnesses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import uvloop
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from clearpost.audit import AuditFailure, AuditReport, LogClient, audit_log
from clearpost.audit.keydir import EpochAudit, EpochScan, audit_epochs
from clearpost.audit.tilehelper import TileHelper, default_processes, take_early
from clearpost.core.tlog import CosignatureVerifier, KeyFormatError, Verifier
from clearpost.core.tlog.keys import b64encode

if TYPE_CHECKING:
    import httpx

app = typer.Typer(
    help="Verify a Clearpost transparency log from the outside.", no_args_is_help=True
)

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

T = TypeVar("T")

ServerOpt = Annotated[
    str,
    typer.Option(
        "--server",
        envvar="CLEARPOST_SERVER",
        help="Base URL of the server, e.g. http://127.0.0.1:8448.",
    ),
]
OriginOpt = Annotated[
    str | None, typer.Option("--origin", help="The log's origin line (default: the key's name).")
]
VkeyOpt = Annotated[
    str | None,
    typer.Option(
        "--vkey", help="The log's verifier key (default: trust /v1/log/key on first use)."
    ),
]


def check_server(server: str) -> str:
    """The server's base URL, refused unless it is http(s)."""
    if not server.startswith(("http://", "https://")):
        raise typer.BadParameter(
            "the server URL must start with http:// or https://", param_hint="--server"
        )
    return server.rstrip("/")


def http_client(server: str) -> httpx.AsyncClient:
    import httpx  # only commands that need it load it (``audit verify`` does not)

    url = check_server(server)
    # A plain-HTTP log needs no CA bundle (redirects are not followed, so nothing leads
    # to TLS): httpx would load one anyway, 20-40 ms of the start.
    tls = server.startswith("https://")
    return httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(30.0), verify=tls)


def check_vkey(vkey: str | None) -> None:
    if vkey is None:
        return
    try:
        Verifier.from_vkey(vkey)
    except KeyFormatError as exc:
        raise typer.BadParameter(exc.message, param_hint="--vkey") from exc


def run_or_exit(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main`` (on uvloop, as the server does: the tile audit's thousands of requests
    cost a third less of the auditor's CPU than on asyncio's own loop); an ``AuditFailure``
    is printed plainly and becomes its exit code."""
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    except AuditFailure as exc:
        show_failure(exc)
        raise typer.Exit(int(exc.exit_code)) from exc


def show_failure(exc: AuditFailure) -> None:
    out.print(f"[bold red]FAILED: {exc.title}[/] [dim](exit {int(exc.exit_code)})[/]")
    out.print(exc.message, markup=False)
    if exc.evidence:
        out.print("evidence — signed by the log:", style="bold")
        for note in exc.evidence:
            out.print("  " + note.rstrip("\n").replace("\n", "\n  "), markup=False)


def sampling_warning(size: int, samples: int) -> str:
    """What a --proofs audit did not check, and the chance it missed one bad node."""
    proofs = min(samples, size) + min(size, 2)
    miss = (1 - 1 / size) ** proofs if size > 1 else 0.0
    return (
        f"SAMPLED ONLY: stored tree nodes were checked through {proofs} inclusion proofs "
        f"(the first and last new entries and {min(samples, size)} random ones); each "
        "proof checks one node per level. A single corrupted node at the bottom of the "
        f"tree is missed with probability (1 - 1/{size:,})^{proofs} = {miss:.2%}; one at "
        f"level l with (1 - 2^l/{size:,})^{proofs}. Audit from tiles (without --proofs) "
        "to check every node."
    )


class RichProgress:
    """The auditor's progress as a rich bar on stderr."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.task: TaskID | None = None

    def start(self, total: int) -> None:
        self.task = self.bar.add_task("hashing entries", total=total)

    def advance(self, count: int) -> None:
        if self.task is not None:
            self.bar.advance(self.task, count)


@app.command()
def verify(
    server: ServerOpt,
    state: Annotated[
        Path | None,
        typer.Option(
            "--state",
            help="JSON file that pins the log key and remembers the last verified "
            "checkpoint (needed to detect forks and rollbacks; makes runs incremental).",
        ),
    ] = None,
    origin: OriginOpt = None,
    vkey: VkeyOpt = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="With --proofs: re-hash every entry, not only the new ones."),
    ] = False,
    proofs: Annotated[
        bool,
        typer.Option(
            "--proofs",
            help="Use the JSON entries and proof API instead of tiles: incremental, but "
            "stored nodes are only sampled (the output says with what chance one is missed).",
        ),
    ] = False,
    samples: Annotated[
        int,
        typer.Option("--samples", min=0, help="With --proofs: random inclusion proofs to check."),
    ] = 8,
    witness: Annotated[
        list[str] | None,
        typer.Option(
            "--witness",
            help="A witness vkey (repeatable): audit the latest checkpoint that carries a "
            "valid cosignature of every one of them, and exit 12 if the log serves none "
            "(the split-view defence).",
        ),
    ] = None,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=1,
            help="Processes that read and check tiles (this one and helpers it forks, "
            "Linux only; default: 2 with two cores or more, else 1).",
        ),
    ] = None,
) -> None:
    """Verify the log's signed checkpoint, every entry, and consistency with last time."""
    url = check_server(server)
    check_vkey(vkey)
    try:
        witnesses = tuple(CosignatureVerifier.from_vkey(w) for w in witness or [])
    except KeyFormatError as exc:
        raise typer.BadParameter(exc.message, param_hint="--witness") from exc

    async def main() -> tuple[AuditReport, EpochAudit]:
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        seen = EpochScan()  # the epoch entries among those the log audit reads
        # every request is a GET: all on keep-alive connections, without httpx (http.py)
        with contextlib.closing(LogClient(url)) as client:
            with bar:
                report = await audit_log(
                    client,
                    state,
                    origin=origin,
                    vkey=vkey,
                    full=full,
                    samples=samples,
                    witnesses=witnesses,
                    progress=RichProgress(bar),
                    tiles=not proofs,
                    entries=seen,
                    helper=helper,
                )
            # issue 17: every new epoch's transition
            seen.read_from(report.hashed_from)
            epochs = await audit_epochs(client, report.checkpoint, state, seen)
            return report, epochs

    # Forked before any event loop or thread exists; they start on the tiles at once.
    helper = None
    if not proofs:  # forked already by ``cli/entry.py`` (early), or now
        wanted = processes if processes is not None else default_processes()
        helper = take_early(url, wanted) or TileHelper.start(url, EpochScan.marker, wanted)
    try:
        report, epochs = run_or_exit(main)
    finally:
        if helper is not None:
            helper.close()
    cp = report.checkpoint
    out.print(
        f"[bold green]OK[/] log {report.origin}: {cp.size:,} entries verified, "
        f"root {b64encode(cp.root_hash)}"
    )
    details = [f"re-hashed {report.hashed:,} entries from index {report.hashed_from:,}"]
    if report.previous_size is not None:
        details.append(f"consistent with the {report.previous_size:,} entries verified before")
    if report.from_tiles:
        details.append(
            f"read {report.tiles_read:,} tiles and entry bundles; checked every one of the "
            f"{report.nodes_checked:,} stored tree nodes proofs are served from"
        )
    else:
        details.append(f"{report.proofs_checked} proofs checked")
    if report.witnesses:
        details.append("cosigned by " + ", ".join(report.witnesses))
    if epochs.last_epoch is not None:
        details.append(
            f"{epochs.epochs:,} key-directory epoch transitions checked "
            f"(up to epoch {epochs.last_epoch:,})"
        )
    details.append(f"{report.seconds:.2f} s")
    out.print("; ".join(details), markup=False)
    if not report.from_tiles and cp.size > 0:
        out.print(sampling_warning(cp.size, report.sampled), style="yellow", markup=False)
    if report.trusted_on_first_use:
        where = f"pinned in {state}" if state else "not pinned: pass --state to keep it"
        out.print(f"trusted the log key on first use ({where})", markup=False)
    if state is None:
        out.print("no --state: forks and rollbacks across runs cannot be detected", style="yellow")
