"""Sync (long-poll) and the WebSocket stream that pushes the same events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect

from clearpost.core.e2ee.envelope import ENCRYPTED_EVENT
from clearpost.core.errors import ClearpostError, RateLimited, Unavailable
from clearpost.server.http import wire
from clearpost.server.http.deps import JSON, Auth, Svc, authenticate
from clearpost.server.http.errors import stream_close_for
from clearpost.server.http.openapi import ok
from clearpost.server.http.routes.conversations import message_json
from clearpost.server.http.routing import OrjsonRoute
from clearpost.server.services.accounts import Caller
from clearpost.server.services.container import Services
from clearpost.server.services.sync import SyncResult

router = APIRouter(prefix="/v1", tags=["sync"], route_class=OrjsonRoute)
log = logging.getLogger("clearpost.http")

MAX_STREAMS_PER_DEVICE = 4
"""Open streams one device (one token) may hold in one server process (issue 15: unbounded)."""


def sync_json(r: SyncResult, server_name: str) -> dict[str, Any]:
    """A sync's body; ``to_device``, ``device_lists``, ``device_one_time_keys_count`` and
    ``device_unused_fallback_key_types`` are Matrix's, as ``OlmMachine.receiveSyncChanges``
    takes them."""
    return {
        "cursor": r.cursor,
        "messages": [message_json(m, server_name) for m in r.messages],
        "events": [{**content, "type": kind} for _, kind, content in r.events],
        "to_device": {
            "events": [
                {
                    "type": ENCRYPTED_EVENT,
                    "sender": h.sender_user,
                    "sender_device": h.sender_device,
                    "content": orjson.Fragment(h.envelope),
                }
                for h in r.to_device
            ]
        },
        "device_lists": {"changed": r.changed, "left": r.left},
        "device_one_time_keys_count": {"signed_curve25519": r.one_time_key_count},
        "device_unused_fallback_key_types": ["signed_curve25519"] if r.fallback_key_unused else [],
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
    return sync_json(result, svc.settings.server_name)


SUBPROTOCOL = "clearpost.v1"
BEARER_PROTOCOL = "clearpost.bearer."


def stream_credentials(ws: WebSocket) -> tuple[str | None, str | None]:
    """(the access token, the subprotocol to accept with). A browser cannot set headers on a
    WebSocket, so besides ``Authorization: Bearer`` the token may come as an offered
    subprotocol ``clearpost.bearer.<token>`` next to ``clearpost.v1`` (which the server then
    accepts). Never from the URL."""
    offered = [p.strip() for p in ws.headers.get("sec-websocket-protocol", "").split(",")]
    subprotocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
    scheme, _, token = ws.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip(), subprotocol
    if subprotocol is not None:
        for p in offered:
            if p.startswith(BEARER_PROTOCOL) and len(p) > len(BEARER_PROTOCOL):
                return p[len(BEARER_PROTOCOL) :], subprotocol
    return None, subprotocol


@router.websocket("/stream")
async def stream(ws: WebSocket, since: str | None = None) -> None:
    """Pushes one sync object per batch of events. Authenticate with the Authorization
    header, or (browsers) by offering the subprotocols ``clearpost.v1`` and
    ``clearpost.bearer.<access token>``: the server accepts with ``clearpost.v1``.
    Pushing acknowledges nothing: the client sends ``{"ack": <cursor>}`` once it has stored
    what it got, and only then are the to-device events up to that cursor deleted (a client
    that dies before acknowledging gets them again). Every end the server chooses comes
    after the handshake, with a close frame: 4401 missing or bad token, 4400 bad cursor or
    acknowledgement, 4429 too many streams or requests, 1013 (try again later, reason
    ``database_unavailable;retry_after=<s>``) while the database cannot be reached, 1011 on
    an unexpected error."""
    svc: Services = ws.app.state.services
    token, subprotocol = stream_credentials(ws)
    try:
        if token is None:
            raise ClearpostError("missing token", code="missing_token")
        caller = await authenticate(svc, token)  # the per-token rate limit too
    except RateLimited as exc:
        await _refuse(ws, exc.code, subprotocol)
        return
    except Unavailable as exc:  # accepted, so that the client gets the close frame and hint
        await ws.accept(subprotocol=subprotocol)
        await _close(ws, *stream_close_for(exc))
        return
    except ClearpostError as exc:  # accepted first: a close before it is a bare HTTP 403
        await ws.accept(subprotocol=subprotocol)
        await _close(ws, 4401, exc.code)
        return
    streams: dict[str, int] = ws.app.state.__dict__.setdefault("open_streams", {})
    key = caller.user_id + " " + caller.device_id
    if streams.get(key, 0) >= MAX_STREAMS_PER_DEVICE:
        await _refuse(ws, "too_many_streams", subprotocol)
        return
    streams[key] = streams.get(key, 0) + 1
    try:
        await ws.accept(subprotocol=subprotocol)
        await _stream(ws, svc, caller, token, since)
    finally:
        streams[key] -= 1
        if not streams[key]:
            del streams[key]


async def _refuse(ws: WebSocket, reason: str, subprotocol: str | None) -> None:
    """Accept, then close with 4429 and ``reason``, so the client learns why."""
    await ws.accept(subprotocol=subprotocol)
    await ws.close(code=4429, reason=reason)


async def _stream(
    ws: WebSocket, svc: Services, caller: Caller, token: str, since: str | None
) -> None:

    async def watch_client() -> None:
        """Apply acknowledgements until the client goes away (or sends garbage)."""
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                try:
                    # each acknowledgement is a request: the per-token limit applies (5,000
                    # of them in a second went through before, issue 15)
                    svc.token_limiter.hit(caller.device_id + caller.user_id)
                except RateLimited as exc:
                    await ws.close(code=4429, reason=exc.code)
                    return
                try:
                    ack = orjson.loads(message.get("text") or message.get("bytes") or b"")["ack"]
                    await svc.sync.acknowledge(caller, str(ack))
                except Unavailable as exc:
                    await _close(ws, *stream_close_for(exc))
                    return
                except (orjson.JSONDecodeError, KeyError, TypeError, ClearpostError):
                    await ws.close(code=4400, reason="invalid_ack")
                    return

    watcher = asyncio.create_task(watch_client())
    cursor = since
    try:
        while True:
            try:
                await svc.accounts.authenticate(token)  # a logged-out device stops here
            except Unavailable:
                raise
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
            except Unavailable:
                raise
            except ClearpostError as exc:
                await ws.close(code=4400, reason=exc.code)
                return
            if not result.empty or cursor is None:
                await ws.send_bytes(orjson.dumps(sync_json(result, svc.settings.server_name)))
            cursor = result.cursor
            if svc.sync.draining:  # shutting down: the client reconnects to what comes next
                await _close(ws, 1012, "server_restarting")
                return
    except Unavailable as exc:  # logged once by the database's outage record
        await _close(ws, *stream_close_for(exc))
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass  # the client went away (uvicorn's ClientDisconnected is an OSError)
    except Exception:
        log.exception("the stream failed")
        await _close(ws, 1011, "internal_error")
    finally:
        watcher.cancel()


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    """Send a close frame, unless the client is already gone."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await ws.close(code=code, reason=reason)
