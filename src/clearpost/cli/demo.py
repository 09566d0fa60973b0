"""``clearpost demo``: the whole Clearpost story in under a minute, on an embedded SQLite.

A server starts in this process (real HTTP on 127.0.0.1, a temporary data directory);
Alice, Bob and Carol get devices with their own keys; the operator registers StreamCo
under a logged agreement; Alice consents on the consent page; StreamCo suggests a share;
Alice sends it end-to-end encrypted to Bob and Carol; Bob decrypts it and clicks; the
server's clock is moved past the end of the report period; StreamCo fetches its noisy,
signed report; Alice checks her access history against the log with proofs; an auditor
re-verifies the whole log; and the database is searched for every plaintext that was
sent. Nothing is left running; the directory is removed unless ``--keep`` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import typer
import uvicorn
from authlib.common.security import generate_token
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from clearpost.audit import LogClient, audit_log
from clearpost.cli.reports import total
from clearpost.client import Client
from clearpost.client.content import ShareCard
from clearpost.core.clock import SystemClock
from clearpost.server.config import Settings
from clearpost.server.http.app import create_app
from clearpost.server.services.container import Services

app = typer.Typer(help="Run the whole Clearpost story end to end, on an embedded database.")
out = Console()
PASSWORD = "demo password, not a real one"
PASSPHRASE = "demo device passphrase"
SECRETS = ["Bob, watch it with me on Friday?", "Friday works. 8pm, my place?"]
"""What Alice and Bob say to each other: the server must never hold these in the clear."""
"""What Alice and Bob say to each other: the server must never hold these in the clear."""

AGREEMENT = """
id = "streamco"
name = "StreamCo"
homepage = "https://streamco.example"
redirect_uris = ["http://127.0.0.1:8765/callback"]
link_domains = ["streamco.example"]
scopes = ["profile:basic", "share:intent", "reports:read"]
purposes = ["Let viewers tell friends what they are watching"]
retention = "Share intents are deleted after 24 hours; reports are kept for two years."
report_cadence_days = 14
epsilon_per_period = 1.0
suppression_threshold = 2
contact = "privacy@streamco.example"
"""
REDIRECT = "http://127.0.0.1:8765/callback"


class MovableClock(SystemClock):
    """The system clock plus an offset the story moves forward (to close a report period)."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return super().now_ms() + self.offset_ms


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _server(data_dir: Path, clock: MovableClock) -> AsyncIterator[tuple[str, Services]]:
    port = _free_port()
    settings = Settings(
        host="127.0.0.1",
        port=port,
        data_dir=data_dir,
        log_level="warning",
        argon2_time_cost=2,
        argon2_memory_kib=19456,
    )  # OWASP's argon2id minimum
    web = create_app(settings, clock=clock)
    server = uvicorn.Server(
        uvicorn.Config(
            web,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            loop="none",
            lifespan="on",
            access_log=False,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", web.state.services
    finally:
        server.should_exit = True
        await task


def _oauth_client() -> Any:
    """authlib's httpx OAuth client, imported only by the demo and without its warning:
    authlib deprecates its httpx integration in favour of the ``httpx2`` fork, which this
    project does not use (importing it at the top printed the warning on every command)."""
    from authlib.deprecate import AuthlibDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AuthlibDeprecationWarning)
        from authlib.integrations.httpx_client import AsyncOAuth2Client
    return AsyncOAuth2Client


def _step(n: int, title: str) -> None:
    out.print(f"\n[bold cyan]{n:>2}. {title}[/bold cyan]")


async def _consent(http: httpx.AsyncClient, url: str, username: str) -> str:
    """What Alice does in her browser: sign in on the consent page and press Allow."""
    page = await http.get(url)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    nxt = re.search(r'name="next" value="([^"]+)"', page.text)
    if not (csrf and nxt):
        raise RuntimeError("the consent page did not offer a sign-in form")
    signed = await http.post(
        "/oauth/login",
        data={
            "csrf": csrf.group(1),
            "username": username,
            "password": PASSWORD,
            "next": nxt.group(1).replace("&amp;", "&"),
        },
    )
    page = await http.get(signed.headers["location"])
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    if not (csrf and action):
        raise RuntimeError("the consent page did not show Allow / Deny")
    done = await http.post(
        action.group(1).replace("&amp;", "&"), data={"csrf": csrf.group(1), "decision": "allow"}
    )
    return str(parse_qs(urlsplit(done.headers["location"]).query)["code"][0])


async def story(work: Path) -> None:
    clock = MovableClock()
    started = time.perf_counter()
    async with (
        _server(work / "server", clock) as (base, services),
        httpx.AsyncClient(base_url=base, timeout=30) as http,
    ):
        _step(1, f"Clearpost is running at {base} on SQLite ({work / 'server' / 'clearpost.db'})")
        key = (await http.get("/v1/log/key")).json()
        out.print(f"   transparency log [bold]{key['origin']}[/bold], key {key['vkey'][:48]}…")

        _step(2, "Alice, Bob and Carol register; each device makes its own keys")
        people: dict[str, Client] = {}
        for name in ("alice", "bob", "carol"):
            people[name] = await Client.register(
                http, name, PASSWORD, store_path=work / f"{name}.device", passphrase=PASSPHRASE
            )
            out.print(
                f"   {people[name].user_id} device {people[name].device_id}: identity keys "
                "published, self-signed, and logged as a 'device' entry"
            )
        alice, bob, carol = people["alice"], people["bob"], people["carol"]

        _step(3, "The operator registers StreamCo under a public agreement (logged first)")
        version, secret = await services.partners.register(AGREEMENT)
        out.print(
            f"   agreement v{version.version} is log entry {version.log_index}; "
            f"public at {base}/v1/agreements/streamco"
        )
        out.print(
            "   scopes asked for: profile:basic, share:intent, reports:read — "
            "no scope exists that reads messages, conversations, contacts or devices"
        )

        _step(4, "Alice connects StreamCo: OAuth 2.0 + PKCE, consent page, Allow (logged first)")
        async with _oauth_client()(
            client_id="streamco",
            client_secret=secret,
            redirect_uri=REDIRECT,
            scope="profile:basic share:intent",
            code_challenge_method="S256",
            base_url=base,
        ) as streamco:
            verifier = generate_token(48)
            url, _ = streamco.create_authorization_url(
                f"{base}/oauth/authorize", code_verifier=verifier
            )
            code = await _consent(http, url, "alice")
            await streamco.fetch_token(f"{base}/oauth/token", code=code, code_verifier=verifier)
            out.print("   StreamCo holds a 10-minute access token and a rotating refresh token")

            _step(
                5, "StreamCo suggests a share; it goes only to Alice's own devices (logged first)"
            )
            r = await streamco.post(
                f"{base}/v1/partner/share-intents",
                json={
                    "title": "Night Train",
                    "url": "https://streamco.example/watch/night-train",
                    "description": "Episode 3 of the season everyone talks about",
                },
            )
            r.raise_for_status()
            out.print(
                f"   share intent {r.json()['intent_id']}, access logged as entry "
                f"{r.headers['clearpost-log-index']}"
            )

        _step(6, "Alice shares it, end-to-end encrypted, with Bob and Carol")
        await alice.sync()
        intent = (await alice.share_intents())[0]
        shared = await alice.share(intent, to=[bob.user_id, carol.user_id])
        conversation = await alice.direct(bob.user_id)
        await alice.send(conversation, SECRETS[0])
        out.print(
            f"   {len(shared.sent)} encrypted messages; the server was told only "
            f"'{shared.recipients} recipients'"
        )

        _step(7, "Bob decrypts the card and clicks; Carol decrypts it too")
        await bob.sync()
        card = next(m for m in await bob.history(conversation) if isinstance(m.content, ShareCard))
        assert isinstance(card.content, ShareCard)
        out.print(f"   Bob sees: [bold]{card.content.summary()}[/bold]")
        await bob.send(conversation, SECRETS[1])
        click = await http.get(card.content.url)
        out.print(
            f"   click → {click.status_code} to {click.headers.get('location')} "
            "(no cookie, no referrer, nobody's name)"
        )
        await carol.sync()
        carol_conv = await carol.direct(alice.user_id)
        carol_sees = [m.text for m in await carol.history(carol_conv)]
        out.print(f"   Carol sees: {carol_sees[-1] if carol_sees else '(nothing yet)'}")

        _step(8, "Fourteen days pass: the period closes and the report is released")
        period = await services.reports.next_period("streamco")
        clock.offset_ms = period.end_ms - clock.now_ms() + clock.offset_ms + 3_600_000
        released = await services.reports.release("streamco")
        privacy = released.report.get("privacy", {})
        out.print(
            f"   report {released.report['period']['id']} signed and logged as entry "
            f"{released.log_index}; epsilon {privacy.get('epsilon')} spent, once"
        )

        _step(9, "StreamCo fetches its report with client credentials (reports:read)")
        token = (
            await http.post(
                "/oauth/token",
                auth=("streamco", secret),
                data={"grant_type": "client_credentials", "scope": "reports:read"},
            )
        ).json()["access_token"]
        reports = (
            await http.get("/v1/partner/reports", headers={"Authorization": f"Bearer {token}"})
        ).json()
        _report_table(reports)

        _step(10, "Alice checks her access history against the log, with proofs")
        await services.log.integrate_once()
        verified = await alice.verify_log(wait=5)
        table = Table("index", "entry", "partner", "what", "verified")
        for e in verified.entries:
            what = e.endpoint or ", ".join(e.scopes) or e.body.get("change", "")
            table.add_row(
                str(e.index), e.type, e.partner or "", str(what), "✓" if e.verified else "…"
            )
        out.print(table)

        _step(11, "An outside auditor re-hashes the whole log and checks the signed checkpoint")
        async with httpx.AsyncClient(base_url=base, timeout=30) as auditor_http:
            report = await audit_log(LogClient(auditor_http), work / "auditor.json", full=True)
        out.print(
            f"   OK: {report.checkpoint.size} entries re-hashed to the signed root "
            f"{report.checkpoint.root_hash.hex()[:16]}…, {report.proofs_checked} proofs checked"
        )

        _step(12, "What the server holds: ciphertext only")
        for client in people.values():
            await client.close()
    _no_plaintext(work / "server")
    out.print(
        Panel(
            f"The whole story took {time.perf_counter() - started:.1f} s. "
            "Every privacy claim above was checked, not asserted.",
            style="green",
        )
    )


def _report_table(reports: dict[str, Any]) -> None:
    for item in reports.get("reports", [])[:1]:
        body = item.get("report", {})
        table = Table(
            "metric", "noisy count", "95% interval", title=f"StreamCo report {body['period']['id']}"
        )
        for name in body.get("totals") or {}:
            value, plus = total(body, name)
            table.add_row(name, str(value), f"±{plus}")
        out.print(table)
        out.print(
            "   aggregate and noisy (discrete Laplace, OpenDP): with three people the noise "
            "swamps the counts, as it should. Signed; raw counts never leave the server."
        )


def _no_plaintext(data_dir: Path) -> None:
    raw = b"".join(p.read_bytes() for p in data_dir.glob("clearpost.db*"))
    for text in SECRETS:
        found = text.encode() in raw
        verdict = "[red]FOUND[/red] in" if found else "not in"
        out.print(f"   {text!r}: {verdict} the {len(raw):,} bytes of the database")
        if found:
            raise typer.Exit(1)
    out.print(
        "   every message body there is a Megolm ciphertext the server checked but cannot read"
    )


@app.callback(invoke_without_command=True)
def demo(
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the data directory afterwards.")
    ] = False,
) -> None:
    """Run the story: server, three users, a partner, consent, an encrypted share, a click,
    a noisy signed report, verified access history, a full audit, and no plaintext stored."""
    work = Path(tempfile.mkdtemp(prefix="clearpost-demo-"))
    try:
        asyncio.run(story(work))
    finally:
        if keep:
            out.print(f"\nkept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
