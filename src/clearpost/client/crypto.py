"""The crypto state machine: encrypt for a conversation, decrypt what arrives.

Sending: make sure the conversation's outbound Megolm session is current (rotating it when
needed), share its key over Olm with every verified device of every member -- our own
other devices included -- that does not have it yet, and only then encrypt.

Receiving: to-device events are Olm-decrypted and dispatched (room keys are stored, key
requests answered, withheld notices shown; a refused one is recorded and shown);
conversation messages are decrypted against the inbound session, with the checks listed
in ``decrypt.decrypt_message``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from clearpost.client import content as content_mod
from clearpost.client import formats
from clearpost.client.cache import MessageCache
from clearpost.client.decrypt import decrypt_message
from clearpost.client.directory import Directory
from clearpost.client.errors import ClientError, CryptoError
from clearpost.client.formats import MEGOLM_ALGORITHM
from clearpost.client.keyshare import KeyShare
from clearpost.client.megolm import (
    ROTATE_AFTER_MESSAGES,
    ROTATE_AFTER_MS,
    GroupSessions,
    Origin,
    Outbound,
)
from clearpost.client.model import Device, Event, Message, MessageState, Stats
from clearpost.client.olm import OlmMachine
from clearpost.client.store import DeviceStore
from clearpost.client.transport import Transport
from clearpost.client.verify import DeviceTracker
from clearpost.core.clock import Clock

log = logging.getLogger("clearpost.client")

UNREACHABLE_RETRY_MS = 60_000
COMMIT_EVERY_S = 1.0


class Crypto:
    def __init__(
        self, store: DeviceStore, transport: Transport, clock: Clock, user_id: str, device_id: str
    ) -> None:
        self.store, self.transport, self.clock = store, transport, clock
        self.user_id, self.device_id = user_id, device_id
        self.server_name = formats.server_name_of(user_id)
        self._rooms: dict[str, str] = {}
        self.devices = DeviceTracker(store, transport, clock, user_id)
        self.directory = self.devices.directory = Directory(
            transport, store, clock, user_id, device_id
        )
        self.olm = OlmMachine.load(store, transport, self.devices, clock, user_id, device_id)
        self.groups = GroupSessions(store)
        self.cache = MessageCache(store)
        self.stats = Stats()
        self.keys = KeyShare(
            store,
            transport,
            clock,
            self.devices,
            self.olm,
            self.groups,
            self.cache,
            self.stats,
            self.commit,
        )
        self._locks: dict[str, asyncio.Lock] = {}
        self._stale_conversations: set[str] = set()
        self._unreachable: dict[tuple[str, str], int] = {}
        self._ready: dict[str, tuple[int, Outbound]] = {}
        """Outbound sessions checked and fully shared, with the device generation they saw."""
        self._last_commit = time.monotonic()
        if store.crashed:
            log.warning("the device store was not closed cleanly; starting new outbound sessions")
            self.groups.discard_all_outbound()
        store.mark_open()

    @property
    def origin(self) -> Origin:
        return Origin(self.user_id, self.device_id, self.olm.curve25519, self.olm.ed25519)

    def room_id(self, conversation_id: str) -> str:
        """The conversation's Matrix room id (``!<conversation id>:<server name>``)."""
        room = self._rooms.get(conversation_id)
        if room is None:
            room = self._rooms[conversation_id] = formats.room_id_for(
                conversation_id, self.server_name
            )
        return room

    def commit(self, *, closing: bool = False) -> None:
        """Write what is buffered and commit; ``closing`` also saves the outbound ratchets
        (only a clean close keeps them: see ``megolm``)."""
        started = time.perf_counter()
        self.cache.flush()
        if closing:
            self.groups.flush()
        self.olm.flush()  # commits the store
        self._last_commit = time.monotonic()
        self.stats.store += time.perf_counter() - started

    def maybe_commit(self) -> None:
        if time.monotonic() - self._last_commit >= COMMIT_EVERY_S:
            self.commit()

    # -- conversations --------------------------------------------------------------------

    def conversation_changed(self, conversation_id: str) -> None:
        self._stale_conversations.add(conversation_id)
        self._ready.pop(conversation_id, None)

    async def conversation(self, conversation_id: str) -> dict[str, Any]:
        conv = self.store.conversation(conversation_id)
        if conv is None or conversation_id in self._stale_conversations:
            try:
                fresh = await self.transport.conversation(conversation_id)
            except ClientError as exc:
                if exc.code == "conversation_not_found":
                    self.store.forget_conversation(conversation_id)
                    self._stale_conversations.discard(conversation_id)
                raise
            self.store.save_conversation(fresh)
            self._stale_conversations.discard(conversation_id)
            conv = self.store.conversation(conversation_id) or {**fresh, "read_seq": 0}
        return conv

    # -- sending --------------------------------------------------------------------------

    async def encrypt(
        self, conversation_id: str, content: content_mod.Content
    ) -> tuple[dict[str, Any], str, int]:
        """(m.megolm.v1.aes-sha2 content, session id, message index), the key shared
        beforehand."""
        plaintext = content_mod.encode(self.room_id(conversation_id), content)
        lock = self._locks.get(conversation_id)
        # The fast path takes no lock: with no await between the check and the encryption,
        # nothing else can run in between. Only while a send is getting its session ready
        # (and may await the network) do the others wait for the lock.
        out = None if lock is not None and lock.locked() else self._still_ready(conversation_id)
        if out is None:
            if lock is None:
                lock = self._locks[conversation_id] = asyncio.Lock()
            async with lock:
                out = self._still_ready(conversation_id) or await self._ready_outbound(
                    conversation_id
                )
                ciphertext, index = self._encrypt(out, plaintext)
        else:
            ciphertext, index = self._encrypt(out, plaintext)
        sid = out.session_id
        event = {"algorithm": MEGOLM_ALGORITHM, "ciphertext": ciphertext, "session_id": sid}
        return event, sid, index  # formats.megolm_content, inline: this is per message

    def _encrypt(self, out: Outbound, plaintext: bytes) -> tuple[str, int]:
        started = time.perf_counter()
        ciphertext, index = self.groups.encrypt(out, plaintext)
        self.stats.crypto += time.perf_counter() - started
        self.stats.messages_encrypted += 1
        return ciphertext, index

    def _still_ready(self, conversation_id: str) -> Outbound | None:
        """The outbound session, if nothing that could require rotating or sharing it has
        happened since it was last checked (the fast path: no SQL, no set building)."""
        ready = self._ready.get(conversation_id)
        if ready is None or ready[0] != self.devices.generation:
            return None
        out = ready[1]
        if (
            self.groups.outbound(conversation_id) is not out
            or out.session.message_index >= ROTATE_AFTER_MESSAGES
            or self.clock.now_ms() - out.created_ms >= ROTATE_AFTER_MS
        ):
            return None
        return out

    async def _ready_outbound(self, conversation_id: str) -> Outbound:
        conv = await self.conversation(conversation_id)
        members = frozenset(conv["members"])
        by_user = await self.devices.devices_for(sorted(members))
        targets = {
            (u, d): dev
            for u, devs in by_user.items()
            for d, dev in devs.items()
            if (u, d) != (self.user_id, self.device_id)
        }
        now = self.clock.now_ms()
        out = self.groups.outbound(conversation_id)
        if out is not None:
            reason = self.groups.rotation_reason(out, members, set(targets), now)
            if reason:
                log.info("rotating the session of %s: %s", conversation_id, reason)
                out = None
        if out is None:
            out = self.groups.new_outbound(conversation_id, members, now, self.origin)
            self.cache.new_session(out.session_id)
        missing = [
            dev
            for key, dev in targets.items()
            if key not in out.shared_with
            and now - self._unreachable.get(key, -UNREACHABLE_RETRY_MS) >= UNREACHABLE_RETRY_MS
        ]
        if missing:
            await self._share(out, missing)
        if set(targets) <= out.shared_with:
            self._ready[conversation_id] = (self.devices.generation, out)
        return out

    async def _share(self, out: Outbound, devices: list[Device]) -> None:
        key = formats.RoomKey(
            self.room_id(out.conversation_id), out.session_id, out.session.session_key.to_base64()
        )
        content = key.content()
        self.groups.save_outbound(out)
        started, waited = time.perf_counter(), self.transport.seconds
        unreachable = await self.olm.send([(d, formats.ROOM_KEY, content) for d in devices])
        self.stats.crypto += time.perf_counter() - started - (self.transport.seconds - waited)
        now = self.clock.now_ms()
        for d in devices:
            k = (d.user_id, d.device_id)
            if k in unreachable:
                self._unreachable[k] = now
            else:
                out.shared_with.add(k)
                self._unreachable.pop(k, None)
        out.dirty = True
        self.commit()

    def record_sent(
        self,
        session_id: str,
        index: int,
        content: content_mod.Content,
        seq: int,
        sent_at: int,
        conversation_id: str,
    ) -> None:
        """Keep a message this device sent (its seq and time came from the server)."""
        self.cache.put_sent(
            conversation_id, seq, self.user_id, self.device_id, sent_at, session_id, index, content
        )
        self.store.mark_read(conversation_id, seq)
        self.maybe_commit()

    # -- receiving: messages --------------------------------------------------------------

    def receive(self, raw: dict[str, Any], *, known_new: bool = False) -> tuple[Message, bool]:
        """Decrypt one wire message (from sync or history), through the cache.

        Returns (message, changed): ``changed`` is False when the cache already had it in
        the same state. Messages we cannot decrypt yet trigger a key request."""
        conv, seq = str(raw["conversation_id"]), int(raw["seq"])
        cached = None if known_new else self.cache.get(conv, seq)
        if cached is not None and cached.state is MessageState.DECRYPTED:
            return cached, False
        msg, session_id, index = decrypt_message(
            raw, conv, seq, self.room_id(conv), self.groups, self.cache, self.stats
        )
        if msg.state is MessageState.WAITING_FOR_KEY:
            msg = self.keys.annotate(msg, session_id)
        if cached is not None and (
            (cached.state, cached.code) == (msg.state, msg.code)
            or (cached.state is MessageState.WITHHELD and msg.state is MessageState.WAITING_FOR_KEY)
        ):
            return cached, False
        self.cache.put(msg, session_id, index, raw.get("content") or {})
        self.store.bump_last_seq(conv, seq)
        if msg.state is MessageState.WAITING_FOR_KEY:
            self.keys.want(raw, msg)
        return msg, True

    def decrypt(self, raw: dict[str, Any]) -> tuple[Message, str, int | None]:
        """Decrypt a wire message without touching the cache (see ``decrypt_message``)."""
        conv, seq = str(raw["conversation_id"]), int(raw["seq"])
        return decrypt_message(
            raw, conv, seq, self.room_id(conv), self.groups, self.cache, self.stats
        )

    # -- receiving: to-device -------------------------------------------------------------

    async def receive_to_device(self, events: list[dict[str, Any]]) -> list[Event]:
        """Apply sync's ``to_device.events``: each an ``m.room.encrypted`` event from a
        device. One that cannot be decrypted or checked is recorded and shown (a
        ``KeyProblem``), never silently dropped; the batch goes on."""
        out: list[Event] = []
        for event in events:
            sender, sender_device = str(event.get("sender")), str(event.get("sender_device"))
            event_type = str(event.get("type"))[:100]
            try:
                if event_type != formats.ENCRYPTED:
                    raise formats.InvalidEvent(
                        f"a to-device {event_type!r} event is not encrypted; only Olm is accepted"
                    )
                payload = await self.olm.decrypt(sender, sender_device, event.get("content"))
            except CryptoError as exc:
                out += self.keys.refuse(sender, sender_device, event_type, exc)
                continue
            try:
                out += await self.keys.dispatch(payload)
            except CryptoError as exc:
                log.warning(
                    "dropped a %s from %s/%s: %s", payload.type, sender, sender_device, exc.message
                )
        return out
