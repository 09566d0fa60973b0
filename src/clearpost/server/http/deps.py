"""Request plumbing shared by the routes: services, the caller, JSON bodies and responses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from starlette.responses import JSONResponse

from clearpost.core.errors import Forbidden, InvalidInput, PayloadTooLarge, Unauthenticated
from clearpost.core.ids import TXN_ID_RE
from clearpost.server.services.accounts import Caller
from clearpost.server.services.authorize import PartnerAccess
from clearpost.server.services.container import Services


async def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


Svc = Annotated[Services, Depends(services)]


def bearer_token(request: Request) -> str:
    return token_from_header(request.headers.get("authorization"))


def token_from_header(header: str | None) -> str:
    if not header:
        raise Unauthenticated(
            "send your access token as 'Authorization: Bearer <token>'", code="missing_token"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "the Authorization header must be 'Bearer <token>'", code="missing_token"
        )
    return token.strip()


PARTNER_TOKEN_PREFIX = "cpo_"


async def caller(request: Request, svc: Svc) -> Caller:
    return await authenticate(svc, bearer_token(request))


async def authenticate(svc: Services, token: str) -> Caller:
    """The calling device for a user access token (partner tokens are refused here)."""
    if token.startswith(PARTNER_TOKEN_PREFIX):
        raise Forbidden(
            "partner tokens reach only the endpoints their scopes open (see GET /v1/scopes)",
            code="scope_not_allowed",
        )
    who = await svc.accounts.authenticate(token)
    svc.token_limiter.hit(who.device_id + who.user_id)
    return who


Auth = Annotated[Caller, Depends(caller)]


def partner(scope: str) -> Callable[..., Awaitable[PartnerAccess]]:
    """A dependency: a live partner access token carrying ``scope``."""

    async def check(request: Request, svc: Svc) -> PartnerAccess:
        token = bearer_token(request)
        if not token.startswith(PARTNER_TOKEN_PREFIX):
            raise Forbidden(
                "this endpoint is for partner apps (OAuth access tokens)", code="partner_only"
            )
        access = await svc.oauth.check_partner_token(token, scope)
        svc.token_limiter.hit("partner:" + token[-16:])
        return access

    check.required_scope = scope  # type: ignore[attr-defined]  # read by the scope router test
    return check


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def json_body(request: Request, limit: int) -> Any:
    """The parsed JSON body, refusing bodies over ``limit`` bytes and anything not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body is over {limit} bytes")
    return parse_json(await request.body(), limit)


def parse_json(raw: bytes, limit: int) -> Any:
    if len(raw) > limit:
        raise PayloadTooLarge(f"the request body is over {limit} bytes")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("the request body is not valid JSON", code="malformed_json") from exc


def check_txn_id(txn_id: str) -> str:
    if not TXN_ID_RE.match(txn_id):
        raise InvalidInput(
            "transaction ids are 1-64 characters of A-Z a-z 0-9 . _ ~ -", code="invalid_txn_id"
        )
    return txn_id


class JSON(JSONResponse):
    """orjson-rendered JSON. A ``JSONResponse`` so FastAPI documents each route's declared
    body schema for it (for other response classes it writes ``{"type": "string"}``)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
