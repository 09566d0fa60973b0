"""``clearpost demo``: the whole Clearpost story in under a minute, on an embedded SQLite.

A server starts in this process (real HTTP on 127.0.0.1, a temporary data directory);
Alice, Bob and Carol get devices with their own keys; the operator registers StreamCo
under a logged agreement; Alice consents on the consent page; StreamCo suggests a share;
Alice's app looks Bob and Carol up in the key directory and sends the share end-to-end
encrypted to them; Bob decrypts it and clicks; the server names a ghost device for Bob and
Alice's app refuses it; the server's clock is moved past the end of the report period;
StreamCo fetches its noisy, signed report; Alice checks her access history against the log
with proofs, and its completeness against the key directory; an auditor re-verifies the
whole log and every key-directory epoch; and the database is searched for every plaintext
that was sent. Nothing is left running; the directory is removed unless ``--keep`` is given.

The ghost device is the one lie in the story: the server is honest, and a wrapper on
Alice's connection (``_GhostServer``) adds the device to the server's answers, as a lying
server would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import typer
import uvicorn
import vodozemac
from authlib.common.security import generate_token
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from clearpost.audit import LogClient, audit_log
from clearpost.audit.keydir import audit_epochs
from clearpost.cli.reports import total
from clearpost.client import Client
from clearpost.client.content import ShareCard
from clearpost.core import canonical
from clearpost.core.clock import SystemClock
from clearpost.core.e2ee.device_keys import ALGORITHMS
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


class _GhostServer(httpx.AsyncHTTPTransport):
    """Alice's connection to the server. Once ``haunt`` names a user, every device list the
    server gives her for that user gains a device of the server's making (validly
    self-signed, but its owner never made it), as a lying server would answer."""

    ghost_id = "GHOSTDEVICE"

    def __init__(self) -> None:
        super().__init__()
        self.haunt: str | None = None
        self.ghost = vodozemac.Account()

    def keys_for(self, user_id: str) -> dict[str, Any]:
        keys = {
            "user_id": user_id,
            "device_id": self.ghost_id,
            "algorithms": list(ALGORITHMS),
            "keys": {
                f"curve25519:{self.ghost_id}": self.ghost.curve25519_key.to_base64(),
                f"ed25519:{self.ghost_id}": self.ghost.ed25519_key.to_base64(),
            },
        }
        sig = self.ghost.sign(canonical.matrix_signable(keys)).to_base64()
        return {**keys, "signatures": {user_id: {f"ed25519:{self.ghost_id}": sig}}}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if self.haunt is None or request.url.path != "/v1/keys/query":
            return response
        answer = orjson.loads(await response.aread())
        listed = answer.get("device_keys", {}).get(self.haunt)
        if listed is not None:
            listed[self.ghost_id] = self.keys_for(self.haunt)
        headers = [(k, v) for k, v in response.headers.items() if k != "content-length"]
        return httpx.Response(response.status_code, headers=headers, content=orjson.dumps(answer))


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


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """``logger``'s warnings not printed for a moment."""
    target = logging.getLogger(logger)
    level = target.level
    target.setLevel(logging.ERROR)
    try:
        yield
    finally:
        target.setLevel(level)


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
    lies = _GhostServer()
    async with (
        _server(work / "server", clock) as (base, services),
        httpx.AsyncClient(base_url=base, timeout=30) as http,
        httpx.AsyncClient(base_url=base, timeout=30, transport=lies) as alice_http,
    ):
        _step(1, f"Clearpost is running at {base} on SQLite ({work / 'server' / 'clearpost.db'})")
        key = (await http.get("/v1/log/key")).json()
        out.print(f"   transparency log [bold]{key['origin']}[/bold], key {key['vkey'][:48]}…")

        _step(2, "Alice, Bob and Carol register; each device makes its own keys")
        people: dict[str, Client] = {}
        for name in ("alice", "bob", "carol"):
            people[name] = await Client.register(
                alice_http if name == "alice" else http,
                name,
                PASSWORD,
                store_path=work / f"{name}.device",
                passphrase=PASSPHRASE,
                clock=clock,  # the story's time, which moves for everyone (step 9)
            )
            out.print(
                f"   {people[name].user_id} device {people[name].device_id}: identity keys "
                "published, self-signed, and committed in the key directory"
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

        _step(6, "Alice's app looks Bob and Carol up in the key directory, then shares it")
        await alice.sync()
        for who in (bob, carol):
            found = await alice.crypto.directory.lookup(who.user_id)
            devices = await alice.crypto.directory.devices(who.user_id)
            out.print(
                f"   {who.user_id}: {len(devices)} device at version {found.version}, proven "
                f"at directory epoch {found.epoch} (VRF, commitment, prefix tree, and the "
                "epoch's root in the signed log)"
            )
        intent = (await alice.share_intents())[0]
        shared = await alice.share(intent, to=[bob.user_id, carol.user_id])
        conversation = await alice.direct(bob.user_id)
        await alice.send(conversation, SECRETS[0])
        out.print(
            f"   {len(shared.sent)} encrypted messages, to those devices only; the server was "
            f"told only '{shared.recipients} recipients'"
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

        _step(8, "The server names a ghost device for Bob; Alice's app refuses it")
        lies.haunt = bob.user_id
        with _quiet("clearpost.client"):  # its warning is the line printed below
            change = await alice.crypto.devices.refresh(bob.user_id)
        lies.haunt = None
        refused = (change.reasons if change else {}).get(lies.ghost_id)
        if refused is None:
            raise RuntimeError("Alice's app took the ghost device")
        out.print(f"   {refused}")
        alarms = await bob.crypto.directory.monitor()
        seen = "no change he did not make" if not alarms else alarms[0].describe()
        out.print(f"   Bob's own device checks his account in the directory: {seen}")

        _step(9, "Fourteen days pass: the period closes and the report is released")
        period = await services.reports.next_period("streamco")
        clock.offset_ms = period.end_ms - clock.now_ms() + clock.offset_ms + 3_600_000
        released = await services.reports.release("streamco")
        privacy = released.report.get("privacy", {})
        out.print(
            f"   report {released.report['period']['id']} signed and logged as entry "
            f"{released.log_index}; epsilon {privacy.get('epsilon')} spent, once"
        )

        _step(10, "StreamCo fetches its report with client credentials (reports:read)")
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

        _step(11, "Alice checks her access history against the log, with proofs")
        await services.log.integrate_once()
        verified = await alice.verify_log(wait=5)
        table = Table("index", "entry", "partner", "what", "verified")
        for e in verified.entries:
            what = e.endpoint or ", ".join(e.scopes) or e.body.get("change", "")
            table.add_row(
                str(e.index), e.type, e.partner or "", str(what), "✓" if e.verified else "…"
            )
        out.print(table)
        if verified.complete_through is None:
            raise RuntimeError("the key directory did not prove Alice's history complete")
        out.print(
            f"   complete: the key directory commits to exactly these {len(verified.entries)} "
            f"entries about Alice below log index {verified.complete_through} (none left out)"
        )

        _step(12, "An outside auditor re-hashes the whole log and every key-directory epoch")
        async with httpx.AsyncClient(base_url=base, timeout=30) as auditor_http:
            auditor = LogClient(auditor_http)
            report = await audit_log(auditor, work / "auditor.json", full=True)
            epochs = await audit_epochs(
                auditor, report.checkpoint, work / "auditor.json", clock=clock
            )
        out.print(
            f"   OK: {report.checkpoint.size} entries re-hashed to the signed root "
            f"{report.checkpoint.root_hash.hex()[:16]}…; {epochs.epochs} directory epochs, "
            "each recomputed from the one before plus only new leaves (no version changed "
            "or removed)"
        )

        _step(13, "What the server holds: ciphertext only")
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
