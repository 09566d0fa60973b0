"""An in-process Clearpost with the StreamCo partner, SDK clients for Alice, Bob and Carol,
and StreamCo holding Alice's consent (authlib's own OAuth client, PKCE)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client

from clearpost.client import Client, KdfParams
from clearpost.core.clock import Clock
from clearpost.server.http.app import create_app
from tests.conftest import fast_settings
from tests.support import partner
from tests.support.partner import World, consent, oauth_client

FAST = KdfParams(time_cost=1, memory_kib=8192, parallelism=1)
PASSWORD = partner.PASSWORD
WATCHING = {
    "title": "Night Train, season 2",
    "url": "https://streamco.example/watch/night-train-2",
    "description": "A slow thriller on a sleeper train.",
}


@dataclass
class Partnered:
    http: httpx.AsyncClient
    app: Any
    alice: Client
    bob: Client
    carol: Client
    streamco: AsyncOAuth2Client
    """StreamCo's OAuth client, holding Alice's tokens."""
    tamper: Tamper
    """Sits between the SDK clients and the app: set ``tamper.rewrites[path]``."""

    @property
    def services(self) -> Any:
        return self.app.state.services

    async def suggest(self, **fields: str) -> dict[str, Any]:
        """StreamCo creates a share intent for Alice."""
        r = await self.streamco.post(
            "http://test/v1/partner/share-intents", json={**WATCHING, **fields}
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def integrate(self) -> None:
        """Have the log sequencer sign everything appended so far."""
        await self.services.log.integrate_once()


async def client(
    http: httpx.AsyncClient, root: Path, name: str, clock: Clock | None = None
) -> Client:
    return await Client.register(
        http,
        name,
        PASSWORD,
        store_path=root / f"{name}.store",
        passphrase=f"{name} pass",
        kdf=FAST,
        clock=clock,
        stream=False,
    )


@contextlib.asynccontextmanager
async def partnered(
    tmp_path: Path, clock: Clock | None = None, **settings: object
) -> AsyncIterator[Partnered]:
    """The world above; ``settings`` override the server's, ``clock`` is the server's."""
    app = create_app(fast_settings(tmp_path, **settings), clock=clock)
    async with app.router.lifespan_context(app):
        asgi = httpx.ASGITransport(app=app)
        tamper = Tamper(asgi)
        async with (
            httpx.AsyncClient(transport=asgi, base_url="http://test") as plain,
            httpx.AsyncClient(transport=tamper, base_url="http://test") as http,
        ):
            version, secret = await app.state.services.partners.register(partner.AGREEMENT)
            people = [await client(http, tmp_path, n) for n in ("alice", "bob", "carol")]
            world = World(plain, version.partner_id, secret, asgi)
            async with oauth_client(world) as oauth:
                code, verifier = await consent(world, oauth)
                await oauth.fetch_token(
                    "http://test/oauth/token", code=code, code_verifier=verifier
                )
                try:
                    yield Partnered(plain, app, *people, oauth, tamper)
                finally:
                    for c in people:
                        with contextlib.suppress(Exception):
                            await c.close()


class Tamper(httpx.AsyncBaseTransport):
    """Passes requests to the app and lets a test rewrite the JSON answers of one path."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.rewrites: dict[str, Callable[[bytes], bytes]] = {}
        """path -> a function of the answer's body returning the body to hand on."""
        self.statuses: dict[str, int] = {}
        """path -> the status to answer with instead (with a rewritten body)."""
        self.unreachable: set[str] = set()
        """path prefixes whose requests fail with a network error before reaching the app."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if any(request.url.path.startswith(p) for p in self.unreachable):
            raise httpx.ConnectError("the network went away")
        response = await self.inner.handle_async_request(request)
        rewrite = self.rewrites.get(request.url.path)
        if rewrite is None:
            return response
        body = await response.aread()
        new = rewrite(body)
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        status = self.statuses.get(request.url.path, response.status_code)
        return httpx.Response(status, headers=headers, content=new)
