"""A fast path for the two hottest requests: sending a message and syncing.

FastAPI's routing and dependency resolution cost more than the work itself on these two
(profiled: about 40% of server time at 64 concurrent senders). This ASGI middleware
recognises exactly ``PUT /v1/conversations/{id}/messages/{txn_id}`` and ``GET /v1/sync``
and answers them with the same functions the FastAPI routes call — same validation, same
errors, same bodies — so behaviour does not fork; everything else goes to FastAPI, which
also still documents these two in OpenAPI.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from clearpost.core.errors import ClearpostError, InvalidInput
from clearpost.server.http.deps import authenticate, token_from_header
from clearpost.server.http.errors import problem, problem_for
from clearpost.server.http.routes.conversations import send_message
from clearpost.server.http.routes.sync import run_sync
from clearpost.server.services.container import Services

log = logging.getLogger("clearpost.http")
_JSON = [(b"content-type", b"application/json")]


class FastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, parts = scope["method"], scope["path"].split("/")
            if (
                method == "PUT"
                and len(parts) == 6
                and parts[1:3] == ["v1", "conversations"]
                and parts[4] == "messages"
                and parts[3]
                and parts[5]
            ):
                await self._answer(scope, receive, send, self._send, parts[3], parts[5])
                return
            if method == "GET" and scope["path"] == "/v1/sync":
                await self._answer(scope, receive, send, self._sync)
                return
        await self.app(scope, receive, send)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, handler: Any, *args: str
    ) -> None:
        svc: Services = scope["app"].state.services
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

    @staticmethod
    def _header(scope: Scope, name: bytes) -> str | None:
        for key, value in scope["headers"]:
            if key == name:
                return str(value.decode("latin-1"))
        return None

    async def _send(
        self, svc: Services, scope: Scope, receive: Receive, conv: str, txn: str
    ) -> Any:
        caller = await authenticate(svc, token_from_header(self._header(scope, b"authorization")))
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return await send_message(svc, caller, conv, txn, b"".join(chunks))

    async def _sync(self, svc: Services, scope: Scope, receive: Receive) -> Any:
        caller = await authenticate(svc, token_from_header(self._header(scope, b"authorization")))
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
