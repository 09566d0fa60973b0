"""Sending and reading conversation messages (ciphertext only)."""

from __future__ import annotations

from typing import Any

import orjson

from clearpost.core.clock import Clock
from clearpost.core.e2ee.envelope import validate_megolm_content
from clearpost.core.errors import ClearpostError, PayloadTooLarge
from clearpost.server.services.accounts import Caller
from clearpost.server.services.batcher import Batcher
from clearpost.server.services.notifier import Notifier
from clearpost.storage.sql.messages import MessageStore, NewMessage
from clearpost.storage.sql.messages import StoredMessage as StoredMessage  # shown by HTTP

MAX_PAGE = 500


class MessageService:
    def __init__(
        self, store: MessageStore, clock: Clock, notifier: Notifier, max_message_bytes: int
    ) -> None:
        self.store, self.clock, self.notifier = store, clock, notifier
        self.max_message_bytes = max_message_bytes
        self._batcher: Batcher[NewMessage, StoredMessage | ClearpostError] = Batcher(self._write)
        self.sent = 0
        """Messages stored by this process (a retried transaction id counts once more)."""

    async def send(
        self, caller: Caller, conversation_id: str, txn_id: str, body: Any
    ) -> StoredMessage:
        """Store an encrypted message once per (device, txn_id); a retry gets the first result."""
        envelope = validate_megolm_content(
            body, sender_device=caller.device_id, sender_key=caller.published_key()
        )
        encoded = orjson.dumps(envelope).decode()
        if len(encoded) > self.max_message_bytes:
            raise PayloadTooLarge(f"a message envelope is at most {self.max_message_bytes} bytes")
        result = await self._batcher.submit(
            NewMessage(
                conversation_id,
                caller.user_id,
                caller.device_id,
                txn_id,
                encoded,
                self.clock.now_ms(),
            )
        )
        if isinstance(result, ClearpostError):
            raise result
        return result

    async def _write(self, batch: list[NewMessage]) -> list[StoredMessage | ClearpostError]:
        results, woken = await self.store.append(batch)
        self.sent += sum(1 for r in results if not isinstance(r, ClearpostError))
        self.notifier.publish({u for users in woken.values() for u in users})
        return results

    async def history(
        self, caller: Caller, conversation_id: str, after: int, limit: int
    ) -> list[StoredMessage]:
        return await self.store.history(
            conversation_id, caller.user_id, after, min(limit, MAX_PAGE)
        )
