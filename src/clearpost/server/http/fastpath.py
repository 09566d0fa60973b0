"""A fast path for the hottest requests: sending a message, syncing, and log proofs.

FastAPI's middleware, routing and dependency resolution cost more than the work itself on
these (profiled: about 40% of server time at 64 concurrent senders; ``GET /health``, which
does almost nothing, tops out near 1,000 req/s through FastAPI on the 2-core machine).
``ClearpostApp`` recognises exactly
``PUT /v1/conversations/{id}/messages/{txn_id}``, ``GET /v1/sync`` and well-formed
``GET /v1/log/proof/inclusion`` and ``/consistency`` requests, and answers them with the
same functions the FastAPI routes call — same validation, same errors, same bodies — so
behaviour does not fork. Everything else goes to FastAPI, including a proof request whose
query is not exactly the expected whole numbers (so malformed input gets FastAPI's own
validation problem); FastAPI also still documents these routes in OpenAPI.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from clearpost.core.errors import ClearpostError, InvalidInput, PayloadTooLarge
from clearpost.core.limits import MAX_SQL_INT
from clearpost.server.http.deps import authenticate, token_from_header
from clearpost.server.http.errors import problem, problem_for
from clearpost.server.http.routes.conversations import send_message
from clearpost.server.http.routes.log import consistency_body, inclusion_body
from clearpost.server.http.routes.sync import run_sync
from clearpost.server.services.container import Services

log = logging.getLogger("clearpost.http")
_JSON = [(b"content-type", b"application/json")]


class ClearpostApp(FastAPI):
    """The FastAPI app, with the two hot requests answered before its middleware stack."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and await _fast(self, scope, receive, send):
            return
        await super().__call__(scope, receive, send)


async def _fast(app: FastAPI, scope: Scope, receive: Receive, send: Send) -> bool:
    """Answer a send or a sync here; False for every other request."""
    method, parts = scope["method"], scope["path"].split("/")
    if (
        method == "PUT"
        and len(parts) == 6
        and parts[1:3] == ["v1", "conversations"]
        and parts[4] == "messages"
        and parts[3]
        and parts[5]
    ):
        await _answer(app, scope, receive, send, _send, parts[3], parts[5])
        return True
    if method == "GET" and scope["path"] == "/v1/sync":
        await _answer(app, scope, receive, send, _sync)
        return True
    if method == "GET" and scope["path"] in _PROOFS:
        handler, names, least = _PROOFS[scope["path"]]
        values = _whole_numbers(scope, names, least)
        if values is None:
            return False  # FastAPI answers it, with its own validation problem
        await _answer(app, scope, receive, send, handler, *values)
        return True
    return False


async def _answer(
    app: FastAPI, scope: Scope, receive: Receive, send: Send, handler: Any, *args: Any
) -> None:
    svc: Services = app.state.services
    try:
        body = await handler(svc, scope, receive, *args)
        status, payload, headers = 200, orjson.dumps(body), _JSON
    except ClearpostError as exc:
        response = problem_for(exc)
        status, payload = response.status_code, bytes(response.body)
        headers = [
            (k.encode(), v.encode())
            for k, v in response.headers.items()
            if k.lower() != "content-length"
        ]
    except Exception:
        log.exception("unhandled error")
        response = problem(
            500, "Internal Server Error", "internal_error", "the server failed; this is a bug"
        )
        status, payload, headers = (
            500,
            bytes(response.body),
            [(b"content-type", b"application/problem+json")],
        )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send(svc: Services, scope: Scope, receive: Receive, conv: str, txn: str) -> Any:
    caller = await authenticate(svc, token_from_header(_header(scope, b"authorization")))
    limit = svc.settings.max_message_bytes
    chunks, seen = [], 0
    while True:
        message = await receive()
        body = message.get("body", b"")
        seen += len(body)
        if seen > limit:  # never buffer more than one message may be
            raise PayloadTooLarge(f"the request body is over {limit} bytes")
        chunks.append(body)
        if not message.get("more_body", False):
            break
    return await send_message(svc, caller, conv, txn, b"".join(chunks))


async def _sync(svc: Services, scope: Scope, receive: Receive) -> Any:
    caller = await authenticate(svc, token_from_header(_header(scope, b"authorization")))
    query = dict(
        parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    )
    try:
        timeout = int(query.get("timeout", "0"))
    except ValueError:
        timeout = -1
    if timeout < 0:
        raise InvalidInput(
            "timeout: a whole number of milliseconds, 0 or more", code="invalid_parameter"
        )
    return await run_sync(svc, caller, query.get("since"), timeout)


async def _inclusion(svc: Services, scope: Scope, receive: Receive, index: int, size: int) -> Any:
    return await inclusion_body(svc, index, size)


async def _consistency(
    svc: Services, scope: Scope, receive: Receive, first: int, second: int
) -> Any:
    return await consistency_body(svc, first, second)


_PROOFS: dict[str, tuple[Any, tuple[str, str], tuple[int, int]]] = {
    "/v1/log/proof/inclusion": (_inclusion, ("index", "size"), (0, 1)),
    "/v1/log/proof/consistency": (_consistency, ("from", "to"), (1, 1)),
}
_MAX_DIGITS = len(str(MAX_SQL_INT))  # no int() of a 5,000-digit string here


def _whole_numbers(
    scope: Scope, names: tuple[str, str], least: tuple[int, int]
) -> list[int] | None:
    """The two query parameters, when the query is exactly ``a=N&b=M`` (either order) with
    plain decimal digits from their minimum to ``MAX_SQL_INT``; None for anything else
    (including any percent-encoding, and numbers too big for SQL), which FastAPI then
    decodes and refuses with its own validation problem."""
    found: dict[str, str] = {}
    for pair in scope.get("query_string", b"").decode("latin-1").split("&"):
        name, eq, raw = pair.partition("=")
        if not eq or name not in names or name in found:
            return None
        found[name] = raw
    if len(found) != 2:
        return None
    values = []
    for name, minimum in zip(names, least, strict=True):
        raw = found[name]
        if not (raw.isascii() and raw.isdigit() and len(raw) <= _MAX_DIGITS):
            return None
        value = int(raw)
        if not minimum <= value <= MAX_SQL_INT:
            return None
        values.append(value)
    return values
