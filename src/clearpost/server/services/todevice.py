"""To-device messages: Olm-encrypted events for specific devices (key sharing travels here)."""

from __future__ import annotations

from typing import Any

import orjson

from clearpost.core.clock import Clock
from clearpost.core.e2ee.envelope import ENCRYPTED_EVENT, validate_olm_content
from clearpost.core.errors import InvalidInput, NotEncrypted, PayloadTooLarge
from clearpost.core.ids import parse_user_id
from clearpost.server.services.accounts import Caller
from clearpost.server.services.notifier import Notifier
from clearpost.storage.sql.todevice import ToDeviceStore

MAX_TARGETS = 1000


class ToDeviceService:
    def __init__(
        self,
        store: ToDeviceStore,
        clock: Clock,
        notifier: Notifier,
        max_payload_bytes: int,
        server_name: str = "clearpost.localhost",
    ) -> None:
        self.store, self.clock, self.notifier = store, clock, notifier
        self.max_payload_bytes, self.server_name = max_payload_bytes, server_name

    async def send(
        self, caller: Caller, event_type: str, txn_id: str, messages: dict[str, Any]
    ) -> tuple[int, list[tuple[str, str]]]:
        """Queue one ``m.room.encrypted`` Olm content per target device; idempotent per
        (device, txn_id). Any other event type is refused: the server relays ciphertext only.

        Returns (newly queued, unknown target devices)."""
        if event_type != ENCRYPTED_EVENT:
            raise NotEncrypted(
                f"to-device event type {event_type[:60]!r} is not {ENCRYPTED_EVENT}; "
                "Clearpost relays Olm-encrypted to-device events only"
            )
        payloads: dict[tuple[str, str], str] = {}
        for user_id, by_device in messages.items():
            parse_user_id(user_id, self.server_name)
            if not isinstance(by_device, dict):
                raise InvalidInput("messages must map user ids to {device_id: content}")
            for device_id, content in by_device.items():
                checked = validate_olm_content(content, sender_key=caller.published_key())
                encoded = orjson.dumps(checked).decode()
                if len(encoded) > self.max_payload_bytes:
                    raise PayloadTooLarge(
                        f"a to-device content is at most {self.max_payload_bytes} bytes"
                    )
                payloads[(user_id, device_id)] = encoded
        if not payloads:
            raise InvalidInput("no messages to send", code="invalid_input")
        if len(payloads) > MAX_TARGETS:
            raise InvalidInput(f"at most {MAX_TARGETS} target devices per request")
        queued, unknown, stored = await self.store.send(
            caller.user_id, caller.device_id, txn_id, payloads, self.clock.now_ms()
        )
        if stored and queued:
            self.notifier.publish({u for u, _ in payloads})
        return queued, unknown
