"""To-device messages: Olm-encrypted payloads for specific devices (key sharing travels here)."""

from __future__ import annotations

from typing import Any

import orjson

from clearpost.core.clock import Clock
from clearpost.core.e2ee.envelope import validate_olm_envelope
from clearpost.core.errors import InvalidInput, PayloadTooLarge
from clearpost.core.ids import is_user_id
from clearpost.server.services.accounts import Caller
from clearpost.server.services.notifier import Notifier
from clearpost.storage.sql.todevice import ToDeviceStore

MAX_TARGETS = 1000


class ToDeviceService:
    def __init__(
        self, store: ToDeviceStore, clock: Clock, notifier: Notifier, max_payload_bytes: int
    ) -> None:
        self.store, self.clock, self.notifier = store, clock, notifier
        self.max_payload_bytes = max_payload_bytes

    async def send(
        self, caller: Caller, txn_id: str, messages: dict[str, dict[str, Any]]
    ) -> tuple[int, list[tuple[str, str]]]:
        """Queue one Olm envelope per target device; idempotent per (device, txn_id).

        Returns (newly queued, unknown target devices)."""
        payloads: dict[tuple[str, str], str] = {}
        for user_id, by_device in messages.items():
            if not is_user_id(user_id):
                raise InvalidInput(f"{user_id[:50]!r} is not a user id", code="invalid_user_id")
            if not isinstance(by_device, dict):
                raise InvalidInput("messages must map user ids to {device_id: envelope}")
            for device_id, envelope in by_device.items():
                checked = validate_olm_envelope(envelope, sender_key=caller.published_key())
                encoded = orjson.dumps(checked).decode()
                if len(encoded) > self.max_payload_bytes:
                    raise PayloadTooLarge(
                        f"a to-device envelope is at most {self.max_payload_bytes} bytes"
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
