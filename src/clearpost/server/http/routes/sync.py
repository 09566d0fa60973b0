"""Sync (long-poll) and the WebSocket stream that pushes the same events."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from clearpost.core.errors import ClearpostError
from clearpost.server.http import wire
from clearpost.server.http.deps import JSON, Auth, Svc
from clearpost.server.http.openapi import ok
from clearpost.server.http.routes.conversations import message_json
from clearpost.server.http.routing import OrjsonRoute
from clearpost.server.services.accounts import Caller
from clearpost.server.services.container import Services
from clearpost.server.services.sync import SyncResult

router = APIRouter(prefix="/v1", tags=["sync"], route_class=OrjsonRoute)


def sync_json(r: SyncResult) -> dict[str, Any]:
    return {
        "cursor": r.cursor,
        "messages": [message_json(m) for m in r.messages],
        "to_device": [
            {
                "sender": h.sender_user,
                "sender_device": h.sender_device,
                "envelope": orjson.Fragment(h.envelope),
            }
            for h in r.to_device
        ],
        "events": [{**content, "type": kind} for _, kind, content in r.events],
        "one_time_key_counts": {"signed_curve25519": r.one_time_key_count},
        "fallback_key_used": r.fallback_key_used,
    }


@router.get("/sync", response_class=JSON, responses=ok(wire.Sync))
async def sync(
    caller: Auth,
    svc: Svc,
    since: str | None = Query(None, description="the cursor from the previous sync"),
    timeout: int = Query(0, ge=0, description="milliseconds to wait when nothing is new"),
) -> JSON:
    """New messages in your conversations, to-device payloads for this device, membership and
    device-list changes after ``since``. Passing ``since`` acknowledges the to-device payloads
    delivered up to it (they are then deleted)."""
    return JSON(await run_sync(svc, caller, since, timeout))


async def run_sync(
    svc: Services, caller: Caller, since: str | None, timeout: int
) -> dict[str, Any]:
    """The sync itself, shared with the fast path (``http/fastpath.py``)."""
    result = await svc.sync.sync(caller, since, min(timeout, svc.settings.sync_timeout_max_ms))
    return sync_json(result)


@router.websocket("/stream")
async def stream(ws: WebSocket, since: str | None = None) -> None:
    """Pushes one sync object per batch of events. Authenticate with the Authorization header.
    Pushing acknowledges nothing: the client sends ``{"ack": <cursor>}`` once it has stored
    what it got, and only then are the to-device payloads up to that cursor deleted (a
    client that dies before acknowledging gets them again)."""
    svc: Services = ws.app.state.services
    header = ws.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    try:
        if scheme.lower() != "bearer" or not token:
            raise ClearpostError("missing token", code="missing_token")
        caller = await svc.accounts.authenticate(token.strip())
    except ClearpostError as exc:
        await ws.close(code=4401, reason=exc.code)
        return
    await ws.accept()

    async def watch_client() -> None:
        """Apply acknowledgements until the client goes away (or sends garbage)."""
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    ack = orjson.loads(message.get("text") or message.get("bytes") or b"")["ack"]
                    await svc.sync.acknowledge(caller, str(ack))
                except (orjson.JSONDecodeError, KeyError, TypeError, ClearpostError):
                    await ws.close(code=4400, reason="invalid_ack")
                    return

    watcher = asyncio.create_task(watch_client())
    cursor = since
    try:
        while True:
            try:
                await svc.accounts.authenticate(token.strip())  # a logged-out device stops here
            except ClearpostError as exc:
                await ws.close(code=4401, reason=exc.code)
                return
            waiting = asyncio.create_task(svc.sync.sync(caller, cursor, 25_000, acknowledge=False))
            await asyncio.wait({waiting, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():  # the client went away
                waiting.cancel()
                return
            try:
                result = waiting.result()
            except ClearpostError as exc:
                await ws.close(code=4400, reason=exc.code)
                return
            if not result.empty or cursor is None:
                await ws.send_bytes(orjson.dumps(sync_json(result)))
            cursor = result.cursor
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        watcher.cancel()
