"""Applying sync results, and the two ways to get them: long-poll and the WebSocket stream.

One sync object is applied in a fixed order, then committed with its cursor (the next
request with that cursor acknowledges the to-device payloads, which the server then
deletes, so they must be safely stored first):

1. membership events, ``device_lists.changed`` / ``left`` (so keys are shared with the
   right devices), and share intents from partner apps,
2. ``to_device.events`` (room keys arrive before the messages that need them),
3. conversation messages,
4. one-time key top-up (``device_one_time_keys_count``) and a new fallback key when
   ``device_unused_fallback_key_types`` no longer lists ``signed_curve25519``,
5. key requests for anything we could not decrypt,
6. the new cursor, committed at once when the batch held to-device payloads (the next
   request acknowledges them), else within a second: if the process dies first, the
   next sync starts from the older cursor and delivers the same messages again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import orjson

from clearpost.client.crypto import Crypto
from clearpost.client.errors import ClientError
from clearpost.client.model import (
    Event,
    MembershipEvent,
    MessageEvent,
    ShareIntent,
    ShareIntentEvent,
)
from clearpost.client.olm import ONE_TIME_KEY_TARGET
from clearpost.core.e2ee.device_keys import KEY_ALGORITHM

log = logging.getLogger("clearpost.client")


class Syncer:
    def __init__(self, crypto: Crypto) -> None:
        self.crypto = crypto
        self.transport = crypto.transport
        self.store = crypto.store
        self._lock = asyncio.Lock()
        self.monitor: Callable[[list[Event]], Awaitable[list[Event]]] | None = None
        """Run after each sync with its events (the key directory's self-monitoring)."""

    async def process(self, data: dict[str, Any]) -> list[Event]:
        async with self._lock:
            return await self._process(data)

    async def _process(self, data: dict[str, Any]) -> list[Event]:
        c = self.crypto
        events: list[Event] = []
        # 1.
        for ev in data.get("events", []):
            if ev.get("type") == "membership":
                conv = str(ev.get("conversation_id"))
                c.conversation_changed(conv)
                user = ev.get("user_id")
                if ev.get("change") in ("left", "removed") and user == c.user_id:
                    self.store.forget_conversation(conv)
                events.append(MembershipEvent(conv, str(ev.get("change")), user, ev.get("by")))
            elif ev.get("type") == "share_intent":
                try:
                    events.append(ShareIntentEvent(ShareIntent.from_json(ev)))
                except ClientError as exc:  # one bad suggestion must not stop the sync
                    log.warning("ignoring a share intent: %s", exc.message)
        device_lists = data.get("device_lists") or {}
        for user in dict.fromkeys(
            [*device_lists.get("changed", []), *device_lists.get("left", [])]
        ):
            try:
                change = await c.devices.refresh(str(user))
            except ClientError as exc:
                log.warning("could not refresh the devices of %s: %s", user, exc.message)
                c.devices.mark_stale(str(user))
                continue
            if change is not None:
                events.append(change)
        # 2.
        to_device = list((data.get("to_device") or {}).get("events", []))
        events += await c.receive_to_device(to_device)
        # 3.
        for raw in data.get("messages", []):
            msg, changed = c.receive(raw, known_new=raw.get("sender_device") != c.device_id)
            if changed:
                events.append(MessageEvent(msg))
        # 4.
        counts = (data.get("device_one_time_keys_count") or {}).get(
            KEY_ALGORITHM, ONE_TIME_KEY_TARGET
        )
        unused = data.get("device_unused_fallback_key_types")
        fallback_used = isinstance(unused, list) and KEY_ALGORITHM not in unused
        if int(counts) < ONE_TIME_KEY_TARGET or fallback_used:
            await c.olm.maintain_keys(int(counts), fallback_used)
        # 5.
        await c.keys.send_requests()
        # 6.
        self.store.set_cursor(str(data["cursor"]))
        if to_device:
            c.commit()  # the next request acknowledges them: they must be on disk first
        else:
            c.maybe_commit()  # a lost tail is simply synced again from the older cursor
        return events

    async def once(self, timeout_ms: int = 0) -> list[Event]:
        data = await self.transport.sync(self.store.cursor, timeout_ms)
        events = await self.process(data)
        if self.monitor is not None:
            events += await self.monitor(events)
        return events

    async def long_poll(self, timeout_ms: int = 25_000) -> AsyncGenerator[Event, None]:
        delay = 0.5
        while True:
            try:
                events = await self.once(timeout_ms)
            except ClientError as exc:
                if exc.code != "network_error" and exc.status < 500:
                    raise
                log.warning("sync failed (%s); retrying in %.1fs", exc.message, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 0.5
            for event in events:
                yield event

    async def stream(self) -> AsyncGenerator[Event, None]:
        """Follow ``/v1/stream``; raises ``ClientError(code="stream_unavailable")`` if it
        cannot connect, so the caller can fall back to long-polling."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, InvalidURI, WebSocketException

        url = self.transport.stream_url(self.store.cursor)
        try:
            ws = await connect(
                url,
                additional_headers=self.transport.auth_headers(),
                max_size=8 << 20,
                open_timeout=5,
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise ClientError(
                f"the WebSocket stream is not available ({type(exc).__name__})",
                code="stream_unavailable",
            ) from exc
        try:
            async for frame in ws:
                data = orjson.loads(frame)
                events = await self.process(data)
                # stored durably: now the server may delete the to-device payloads it pushed
                await ws.send(orjson.dumps({"ack": data["cursor"]}).decode())
                for event in events:
                    yield event
        except WebSocketException as exc:
            if ws.close_code == TRY_AGAIN_LATER:
                raise try_again_later(ws.close_reason or "") from exc
            raise ClientError(
                f"the WebSocket stream ended ({type(exc).__name__})", code="stream_closed"
            ) from exc
        finally:
            await ws.close()
        reason = ws.close_reason or "closed"
        if ws.close_code in (4400, 4401):  # a bad cursor, or this device is logged out
            status = 400 if ws.close_code == 4400 else 401
            raise ClientError(f"the server ended the stream: {reason}", code=reason, status=status)
        raise ClientError(f"the server closed the stream: {reason}", code="stream_closed")


TRY_AGAIN_LATER = 1013
"""The WebSocket close code (RFC 6455's registry: "Try Again Later") the server ends a
stream with when it cannot reach its database; the reason reads
``database_unavailable;retry_after=<seconds>``."""


def try_again_later(reason: str) -> ClientError:
    """The error for a 1013 close: ``stream_closed``, with the server's ``reason`` code and
    ``retry_after`` hint (seconds) in ``extra`` for ``Client.listen`` to wait on."""
    name, _, hint = reason.partition(";")
    retry_after = 0.0
    key, _, value = hint.partition("=")
    if key.strip() == "retry_after":
        try:
            retry_after = min(30.0, max(0.0, float(value)))
        except ValueError:
            retry_after = 0.0
    return ClientError(
        f"the server asked to reconnect later ({name.strip() or 'try_again_later'})",
        code="stream_closed",
        status=503,
        reason=name.strip() or "try_again_later",
        retry_after=retry_after,
    )
