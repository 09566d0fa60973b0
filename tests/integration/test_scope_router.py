"""Walk the router: a partner token reaches only what the scope catalogue opens for it."""

from __future__ import annotations

import re

import httpx
from fastapi.routing import APIRoute

from clearpost.core.partners.scopes import SCOPES, endpoints_for
from tests.support.partner import World, consent, oauth_client

PUBLIC = {
    "POST /v1/accounts",
    "POST /v1/login",
    "GET /",
    "GET /app/{name}",
    "GET /health",
    "GET /health/live",
    "GET /health/ready",
    "GET /openapi.json",
    "GET /docs",
    "GET /docs/oauth2-redirect",
    "GET /redoc",
    "GET /v1/log/checkpoint",
    "GET /v1/log/key",
    "GET /v1/log/entries",
    "GET /v1/log/proof/inclusion",
    "GET /v1/log/proof/consistency",
    "POST /v1/log/cosignatures",
    "GET /log/checkpoint",
    "GET /log/tile/{path:path}",
    "GET /log/nodes/{path:path}",
    "GET /v1/agreements",
    "GET /v1/agreements/{partner_id}",
    "GET /v1/scopes",
    "GET /agreements/{partner_id}",
    "GET /oauth/authorize",
    "POST /oauth/authorize",
    "POST /oauth/login",
    "POST /oauth/logout",
    "POST /oauth/token",
    "POST /oauth/revoke",
    "POST /oauth/introspect",
    "GET /.well-known/oauth-authorization-server",
    "GET /s/{token}",
    "GET /v1/keydir/key",
    "GET /v1/keydir/epochs/{epoch}",
}
"""Routes that need no token at all (the public log, agreements, OAuth itself, click links)."""


def _flatten(routes: list[object]) -> list[object]:
    out: list[object] = []
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's lazily included routers
        out.extend(_flatten(included.routes) if included is not None else [route])
    return out


def _routes(app: object) -> list[tuple[str, str, APIRoute]]:
    """Every (method, path, route) of the app, HTTP routes only (the stream is tested apart)."""
    out = []
    for route in _flatten(app.routes):  # type: ignore[attr-defined]
        methods = getattr(route, "methods", None)
        for method in sorted((methods or set()) - {"HEAD"}):
            out.append((method, route.path, route))  # type: ignore[attr-defined]
    return out


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def _required_scope(route: APIRoute) -> str | None:
    for dep in route.dependant.dependencies:
        scope = getattr(dep.call, "required_scope", None)
        if scope:
            return str(scope)
    return None


async def test_catalogue_matches_the_routes_that_accept_partner_tokens(world: World) -> None:
    app = world.client.app  # type: ignore[attr-defined]
    partner_routes = {
        f"{m} {p}": _required_scope(r)
        for m, p, r in _routes(app)
        if isinstance(r, APIRoute) and _required_scope(r)
    }
    opened = {e: s.name for s in SCOPES.values() for e in s.endpoints}
    assert partner_routes == opened
    forbidden_words = (
        "message",
        "conversation",
        "contact",
        "friend",
        "device",
        "inbox",
        "sync",
        "to-device",
    )
    for endpoint in opened:
        assert not any(w in endpoint for w in forbidden_words), endpoint


async def test_every_route_refuses_partner_tokens_it_is_not_opened_for(world: World) -> None:
    async with oauth_client(world) as oauth:
        code, verifier = await consent(world, oauth)
        user_token = await oauth.fetch_token(
            "http://test/oauth/token", code=code, code_verifier=verifier
        )
    r = await world.client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "reports:read"},
        auth=(world.partner_id, world.secret),
    )
    tokens = {
        frozenset(user_token["scope"].split()): user_token["access_token"],
        frozenset({"reports:read"}): r.json()["access_token"],
    }
    app = world.client.app  # type: ignore[attr-defined]
    checked = 0
    for method, path, _ in _routes(app):
        key = f"{method} {path}"
        if key in PUBLIC:
            continue
        for scopes, token in tokens.items():
            allowed = key in endpoints_for(set(scopes))
            resp = await world.client.request(
                method,
                _fill(path),
                headers={"Authorization": f"Bearer {token}"},
                json={} if method in ("POST", "PUT") else None,
            )
            if allowed:
                assert resp.status_code != 403, (key, scopes, resp.text)
            else:
                assert resp.status_code == 403, (key, scopes, resp.status_code, resp.text)
                assert resp.json()["code"] in (
                    "scope_not_allowed",
                    "insufficient_scope",
                    "partner_only",
                )
            checked += 1
    assert checked >= 40


async def test_public_list_is_exactly_the_routes_without_a_token(world: World) -> None:
    app = world.client.app  # type: ignore[attr-defined]
    for method, path, _ in _routes(app):
        key = f"{method} {path}"
        if key in PUBLIC:
            continue
        r = await world.client.request(
            method, _fill(path), json={} if method in ("POST", "PUT") else None
        )
        assert r.status_code in (401, 403), (key, r.status_code)  # every other route needs a token
    assert isinstance(world.client, httpx.AsyncClient)
