"""Room keys, key requests, forwarded keys and withheld notices: the Olm-borne key flow.

A device that cannot decrypt a message asks the sender's devices for the key
(``m.room_key_request``). A device that holds it answers only a requester whose user is a
member of the conversation now *and* was a member when the session was in use (the
session's member list: the server's member list when the session was created, or when
its key arrived; sessions rotate on every membership change). It answers with an
``m.forwarded_room_key``, or else an ``m.room_key.withheld`` (``m.unauthorised``) with the
reason, which the requester shows instead of an error.

A key event that fails a check -- a field missing, a key that does not decode, a sender
that may not give it -- is refused, never kept, and never silent: it is recorded in the
store as a ``KeyProblem`` (``Client.key_problems``), yielded as an event, and the
messages waiting for that session say so.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import vodozemac

from clearpost.client import formats
from clearpost.client.cache import MessageCache
from clearpost.client.decrypt import decrypt_message
from clearpost.client.errors import ClientError, CryptoError, UntrustedSender
from clearpost.client.formats import ForwardedRoomKey, KeyRequest, OlmPayload, RoomKey, Withheld
from clearpost.client.megolm import GroupSessions, Inbound, Origin
from clearpost.client.model import (
    Device,
    Event,
    KeyProblem,
    Message,
    MessageEvent,
    MessageState,
    Stats,
)
from clearpost.client.olm import OlmMachine
from clearpost.client.store import DeviceStore
from clearpost.client.transport import Transport
from clearpost.client.verify import DeviceTracker
from clearpost.core.clock import Clock

log = logging.getLogger("clearpost.client")

REQUEST_RETRY_MS = 5 * 60_000

NOT_MEMBER = "you are not a member of this conversation"
NOT_MEMBER_THEN = "you were not a member of this conversation when this message was sent"


class KeyShare:
    """The control flow over Olm, built by ``Crypto`` from its parts."""

    def __init__(
        self,
        store: DeviceStore,
        transport: Transport,
        clock: Clock,
        devices: DeviceTracker,
        olm: OlmMachine,
        groups: GroupSessions,
        cache: MessageCache,
        stats: Stats,
        commit: Callable[[], None],
    ) -> None:
        self.store, self.transport, self.clock, self.devices = store, transport, clock, devices
        self.olm, self.groups, self.cache, self.stats = olm, groups, cache, stats
        self.user_id, self.device_id = olm.user_id, olm.device_id
        self.commit = commit
        self.server_name = formats.server_name_of(self.user_id)
        self._wanted: dict[str, tuple[str, str, str, int]] = {}
        self._refused: dict[str, str | None] = {}
        """Session id -> why its last key was refused (None: none was), read lazily."""
        self._withheld_notes: dict[str, tuple[str, str, str, str] | None] = {}
        """Session id -> (sender, device, code, problem) of a withheld notice, read lazily."""

    def room_id(self, conversation_id: str) -> str:
        return formats.room_id_for(conversation_id, self.server_name)

    def _conversation(self, room_id: str, what: str) -> str:
        return formats.conversation_of(room_id, self.server_name, what)

    # -- asking ---------------------------------------------------------------------------

    def want(self, raw: dict[str, Any], msg: Message) -> None:
        """Note that ``msg`` needs a key; ``send_requests`` asks for it."""
        content = raw.get("content") or {}
        try:
            index = vodozemac.MegolmMessage.from_base64(content["ciphertext"]).message_index()
        except (KeyError, TypeError, ValueError):
            index = 0
        session_id = str(content.get("session_id", ""))
        known = self._wanted.get(session_id)
        if known is None or index < known[3]:
            self._wanted[session_id] = (msg.conversation_id, msg.sender, msg.sender_device, index)

    async def send_requests(self) -> int:
        """Ask the senders' devices for the keys we are missing; returns requests sent."""
        c = self
        sent = 0
        now = c.clock.now_ms()
        wanted, self._wanted = self._wanted, {}
        for session_id, (conv, sender, device, index) in wanted.items():
            rows = c.store.query(
                "SELECT requested_ms FROM key_requests WHERE session_id = ?", (session_id,)
            )
            if rows and now - rows[0][0] < REQUEST_RETRY_MS:
                continue
            try:
                devices = (await c.devices.devices_for([sender]))[sender]
                targets = [
                    d
                    for d in devices.values()
                    if (d.user_id, d.device_id) != (c.user_id, c.device_id)
                ]
                if not targets:
                    continue
                origin = devices.get(device)
                request = KeyRequest(
                    "request",
                    c.device_id,
                    secrets.token_urlsafe(12),
                    self.room_id(conv),
                    session_id,
                    origin.curve25519 if origin is not None else None,
                )
                content = request.content()
                await c.olm.send([(d, formats.ROOM_KEY_REQUEST, content) for d in targets])
            except ClientError as exc:
                log.warning("could not request a key from %s: %s", sender, exc.message)
                self._wanted.setdefault(session_id, (conv, sender, device, index))
                continue
            c.store.write(
                "INSERT INTO key_requests (session_id, conversation_id, requested_ms) "
                "VALUES (?, ?, ?) ON CONFLICT (session_id) "
                "DO UPDATE SET requested_ms = excluded.requested_ms",
                (session_id, conv, now),
            )
            sent += 1
        if wanted:
            c.commit()
        return sent

    # -- receiving ------------------------------------------------------------------------

    async def dispatch(self, payload: OlmPayload) -> list[Event]:
        """Act on one decrypted key event; a refused one is recorded and returned as a
        ``KeyProblem`` (and updates the messages waiting for its session)."""
        try:
            if payload.type == formats.ROOM_KEY:
                return await self._room_key(payload)
            if payload.type == formats.FORWARDED_ROOM_KEY:
                return await self._forwarded_room_key(payload)
            if payload.type == formats.ROOM_KEY_REQUEST:
                await self._answer(payload)
                return []
            if payload.type == formats.WITHHELD:
                return self._withheld(payload)
        except CryptoError as exc:
            if payload.type not in (formats.ROOM_KEY, formats.FORWARDED_ROOM_KEY):
                raise
            return self.refuse(payload.sender, payload.sender_device, payload.type, exc, payload)
        log.info("ignoring a to-device event of type %s", payload.type[:60])
        return []

    def refuse(
        self,
        sender: str,
        sender_device: str,
        event_type: str,
        exc: CryptoError,
        payload: OlmPayload | None = None,
    ) -> list[Event]:
        """Record a refused key event (or an undecryptable one) and show it."""
        content = payload.content if payload is not None else {}
        session_id = content.get("session_id")
        session_id = session_id if isinstance(session_id, str) and session_id else None
        room_id = content.get("room_id")
        conv = None
        if isinstance(room_id, str):
            try:
                conv = self._conversation(room_id, "a room key")
            except CryptoError:
                conv = None
        problem = KeyProblem(
            sender,
            sender_device,
            event_type,
            f"{event_type} from {sender}'s device {sender_device} was refused: {exc.message}",
            exc.code,
            session_id,
            conv,
            self.clock.now_ms(),
        )
        log.warning("%s", problem.reason)
        self.store.write(
            "INSERT INTO key_problems (at_ms, sender, sender_device, event_type, session_id, "
            "conversation_id, code, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                problem.at_ms,
                sender,
                sender_device,
                event_type,
                session_id,
                conv,
                problem.code,
                problem.reason,
            ),
        )
        events: list[Event] = [problem]
        if session_id is None:
            return events
        self._refused[session_id] = problem.reason
        for raw, msg in self.cache.waiting(session_id):
            if msg.state is not MessageState.WAITING_FOR_KEY:
                continue
            updated = self.annotate(msg, session_id)
            self.cache.put(updated, session_id, None, raw["content"])
            events.append(MessageEvent(updated, updated=True))
        return events

    def annotate(self, msg: Message, session_id: str) -> Message:
        """A message waiting for ``session_id`` shows a withheld notice its sender's device
        sent for that session, or says so if a key for it was refused."""
        note = self._withheld_note(session_id)
        if note is not None and (msg.sender, msg.sender_device) == note[:2]:
            return replace(msg, state=MessageState.WITHHELD, code=note[2], problem=note[3])
        if session_id not in self._refused:
            rows = self.store.query(
                "SELECT reason FROM key_problems WHERE session_id = ? ORDER BY at_ms DESC LIMIT 1",
                (session_id,),
            )
            self._refused[session_id] = rows[0][0] if rows else None
        reason = self._refused[session_id]
        if reason is None:
            return msg
        return replace(
            msg,
            code="room_key_refused",
            problem=f"waiting for the key from {msg.sender}'s device {msg.sender_device} "
            f"({reason})",
        )

    def _withheld_note(self, session_id: str) -> tuple[str, str, str, str] | None:
        if session_id not in self._withheld_notes:
            rows = self.store.query(
                "SELECT sender, sender_device, code, sealed_reason FROM withheld "
                "WHERE session_id = ?",
                (session_id,),
            )
            self._withheld_notes[session_id] = (
                None
                if not rows
                else (
                    rows[0][0],
                    rows[0][1],
                    rows[0][2],
                    self.store.unseal(
                        bytes(rows[0][3]), b"withheld:" + session_id.encode()
                    ).decode(),
                )
            )
        return self._withheld_notes[session_id]

    def _sender(self, p: OlmPayload) -> Device:
        sender = self.devices.device(p.sender, p.sender_device)
        if sender is None:  # pragma: no cover - the Olm layer verified it just before
            raise UntrustedSender("a room key came from a device we have not verified")
        return sender

    async def _room_key(self, p: OlmPayload) -> list[Event]:
        """Store an ``m.room_key``: a session's key from the device that created it.

        Steps:
        1. Every field is there (``algorithm``, ``room_id``, ``session_id``,
           ``session_key``) and the room is a conversation of this server.
        2. The session's origin is the Olm sender device itself, with its verified keys.
        3. The key opens a session with the id it names.
        4. A session we already hold keeps its origin and conversation; a key is only
           taken if it reaches further back (a lower first index).
        """
        # 1.
        key = RoomKey.parse(p.content)
        conv = self._conversation(key.room_id, "an m.room_key")
        # 2.
        sender = self._sender(p)
        origin = Origin(sender.user_id, sender.device_id, sender.curve25519, sender.ed25519)
        # 3.
        try:
            session = vodozemac.InboundGroupSession(vodozemac.SessionKey(key.session_key))
        except (vodozemac.SessionKeyDecodeException, vodozemac.KeyException, ValueError) as exc:
            raise UntrustedSender("the session key does not decode") from exc
        return await self._keep(session, key.session_id, conv, origin, None)

    async def _forwarded_room_key(self, p: OlmPayload) -> list[Event]:
        """Store an ``m.forwarded_room_key``: a session exported by a device that holds it.

        Steps:
        1. Every field is there and the room is a conversation of this server.
        2. The origin (``sender_key``, ``sender_claimed_ed25519_key``) is a verified device
           of the forwarder's own user (fetching that user's devices once if it is new),
           with exactly those keys: so a key comes from the origin device or another
           device of its user -- never from one of our own devices on someone else's
           behalf (a device added to our account behind our back must not put words in
           someone else's mouth).
        3. The exported key opens a session with the id it names, and is kept as in
           ``_room_key`` step 4.
        """
        # 1.
        key = ForwardedRoomKey.parse(p.content)
        conv = self._conversation(key.room_id, "an m.forwarded_room_key")
        # 2.
        sender = self._sender(p)
        origin_dev = self._by_curve(sender.user_id, key.sender_key)
        if origin_dev is None:
            await self.devices.refresh(sender.user_id)
            origin_dev = self._by_curve(sender.user_id, key.sender_key)
        if origin_dev is None:
            raise UntrustedSender(
                f"{sender.user_id} forwarded a key whose origin is none of its devices"
            )
        if origin_dev.ed25519 != key.sender_claimed_ed25519_key:
            raise UntrustedSender("a forwarded room key names origin keys that do not match")
        origin = Origin(
            origin_dev.user_id, origin_dev.device_id, origin_dev.curve25519, origin_dev.ed25519
        )
        # 3.
        try:
            session = vodozemac.InboundGroupSession.import_session(
                vodozemac.ExportedSessionKey(key.session_key)
            )
        except (vodozemac.SessionKeyDecodeException, vodozemac.KeyException, ValueError) as exc:
            raise UntrustedSender("the exported session key does not decode") from exc
        return await self._keep(session, key.session_id, conv, origin, sender)

    def _by_curve(self, user_id: str, curve25519: str) -> Device | None:
        return next(
            (d for d in self.devices.known(user_id).values() if d.curve25519 == curve25519),
            None,
        )

    async def _members(self, conv: str) -> tuple[str, ...]:
        """The conversation's members now: from the store, or from the server when this
        device has not fetched the conversation yet (its room key can come in the same
        sync as the membership event, before anything stored it)."""
        stored = self.store.conversation(conv)
        if stored is None:
            try:
                stored = await self.transport.conversation(conv)
            except ClientError:
                return ()
        return tuple(sorted(stored["members"]))

    async def _keep(
        self,
        session: vodozemac.InboundGroupSession,
        session_id: str,
        conv: str,
        origin: Origin,
        forwarder: Device | None,
    ) -> list[Event]:
        if session.session_id != session_id:
            raise UntrustedSender("a room key opens a different session than it names")
        existing = self.groups.inbound(session_id)
        if existing is not None:
            if (existing.origin, existing.conversation_id) != (origin, conv):
                raise UntrustedSender("a room key conflicts with the session we already hold")
            if existing.first_index <= session.first_known_index:
                return []
        forwarded_by = None if forwarder is None else f"{forwarder.user_id}/{forwarder.device_id}"
        members = existing.members if existing is not None else await self._members(conv)
        self.groups.save_inbound(Inbound(session, conv, origin, forwarded_by, members))
        if existing is None:  # inbound sessions are never deleted: nothing decrypted with it yet
            self.cache.new_session(session_id)
        self.store.write("DELETE FROM key_requests WHERE session_id = ?", (session_id,))
        self._wanted.pop(session_id, None)
        self._refused.pop(session_id, None)
        if self._withheld_note(session_id) is not None:
            self.store.write("DELETE FROM withheld WHERE session_id = ?", (session_id,))
            self._withheld_notes[session_id] = None
        return self.retry_session(session_id)

    async def _answer(self, p: OlmPayload) -> None:
        """Answer a key request (the Olm layer already verified the requesting device).

        Steps:
        1. It is a request (cancellations need nothing: we answer at once) from the
           device named in it, and we hold the session for the conversation named -- else,
           to one of our own devices, withheld ``m.unavailable`` (Matrix's "the device
           asked does not have the key"), and silence to anyone else.
        2. The requester's user is a member now, per the server -- else withheld
           (``m.unauthorised``, "not a member").
        3. The requester's user was a member when the session was in use -- else withheld
           (``m.unauthorised``, "not a member then").
        4. Send the session exported from its first known index to the requesting device
           only, as an ``m.forwarded_room_key``.
        """
        c = self
        req = KeyRequest.parse(p.content)
        # 1.
        if (
            req.action != "request"
            or req.requesting_device_id != p.sender_device
            or req.room_id is None
            or req.session_id is None
        ):
            return
        conv = self._conversation(req.room_id, "an m.room_key_request")
        requester = c.devices.device(p.sender, p.sender_device)
        if requester is None:
            return
        inbound = c.groups.inbound(req.session_id)
        if inbound is None or inbound.conversation_id != conv:
            # Our own device: say we cannot help. The notice must name the session's origin
            # key (matrix-sdk-crypto drops one without it, and its requests carry none when
            # the event had none): from the request, or from a message of that session we
            # saw and could not decrypt either; else we stay silent.
            origin_key = req.sender_key or self._origin_key(req.session_id)
            if requester.user_id == c.user_id and origin_key:
                notice = Withheld(
                    req.room_id,
                    req.session_id,
                    origin_key,
                    formats.UNAVAILABLE,
                    "this device does not hold that session",
                    c.device_id,
                )
                await c.olm.send([(requester, formats.WITHHELD, notice.content())])
            return
        # 2.
        try:
            current = await c.transport.conversation(conv)
        except ClientError:
            return  # we are not a member ourselves any more
        reason: str | None = None
        if requester.user_id not in current["members"]:
            reason = NOT_MEMBER
        # 3.
        elif requester.user_id not in inbound.members:
            reason = NOT_MEMBER_THEN
        if reason is not None:
            notice = Withheld(
                req.room_id,
                req.session_id,
                inbound.origin.curve25519,
                formats.UNAUTHORISED,
                reason,
                c.device_id,
            )
            await c.olm.send([(requester, formats.WITHHELD, notice.content())])
            return
        # 4.
        await c.olm.send([(requester, formats.FORWARDED_ROOM_KEY, self._export(inbound))])

    def _origin_key(self, session_id: str) -> str | None:
        """The Curve25519 key of the device that sent the messages of a session we hold
        no key for (from a message of it we could not decrypt), or None."""
        for _raw, msg in self.cache.waiting(session_id):
            device = self.devices.device(msg.sender, msg.sender_device)
            if device is not None:
                return device.curve25519
        return None

    def _export(self, inbound: Inbound) -> dict[str, Any]:
        exported = inbound.session.export_at(inbound.first_index)
        if exported is None:  # pragma: no cover - the first known index is always exportable
            raise UntrustedSender("cannot export a session")
        return ForwardedRoomKey(
            self.room_id(inbound.conversation_id),
            inbound.session.session_id,
            exported.to_base64(),
            inbound.origin.curve25519,
            inbound.origin.ed25519,
        ).content()

    def _withheld(self, p: OlmPayload) -> list[Event]:
        """Show a withheld reason on the messages it concerns, only from the messages'
        sender, and only for a key this device asked for -- or, unasked, from the session's
        own origin device (its ``sender_key`` is the Olm sender's Curve25519 key and the
        messages came from that device: matrix-sdk-crypto sends ``m.unverified`` or
        ``m.blacklisted`` when it shares a session). Issue 15: an unasked notice from a
        third party put a peer's text in place of "waiting for the key"."""
        c = self
        notice = Withheld.parse(p.content)
        conv = self._conversation(notice.room_id, "an m.room_key.withheld")
        asked = c.store.query(
            "SELECT conversation_id FROM key_requests WHERE session_id = ?", (notice.session_id,)
        )
        from_origin = notice.sender_key == self._sender(p).curve25519
        if not from_origin and (not asked or asked[0][0] != conv):
            log.warning("ignoring a withheld notice from %s for a key not asked for", p.sender)
            return []
        problem = f"{p.sender} withheld the key: {notice.reason}"
        if from_origin:  # kept for messages of this session that have not arrived yet
            c.store.write(
                "INSERT INTO withheld (session_id, sender, sender_device, code, sealed_reason) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
                "code = excluded.code, sealed_reason = excluded.sealed_reason",
                (
                    notice.session_id,
                    p.sender,
                    p.sender_device,
                    notice.code,
                    c.store.seal(problem.encode(), b"withheld:" + notice.session_id.encode()),
                ),
            )
            self._withheld_notes[notice.session_id] = (
                p.sender,
                p.sender_device,
                notice.code,
                problem,
            )
        events: list[Event] = []
        for raw, msg in c.cache.waiting(notice.session_id):
            if msg.sender != p.sender or msg.conversation_id != conv:
                continue
            if from_origin and not asked and msg.sender_device != p.sender_device:
                continue
            updated = replace(msg, state=MessageState.WITHHELD, code=notice.code, problem=problem)
            c.cache.put(updated, notice.session_id, None, raw["content"])
            events.append(MessageEvent(updated, updated=True))
        return events

    def retry_session(self, session_id: str) -> list[Event]:
        """Re-decrypt the messages that were waiting for ``session_id``."""
        events: list[Event] = []
        for raw, before in self.cache.waiting(session_id):
            conv, seq = str(raw["conversation_id"]), int(raw["seq"])
            msg, session, index = decrypt_message(
                raw, conv, seq, self.room_id(conv), self.groups, self.cache, self.stats
            )
            if msg.state is MessageState.WAITING_FOR_KEY and before.state is MessageState.WITHHELD:
                continue
            if (msg.state, msg.code) != (before.state, before.code):
                self.cache.put(msg, session, index, raw["content"])
                events.append(MessageEvent(msg, updated=True))
        return events

    # -- sharing on purpose ---------------------------------------------------------------

    async def share_history(self, conversation_id: str, user_id: str) -> int:
        """Give ``user_id``'s devices the keys of our own past sessions in a conversation,
        so they can read messages sent before they joined. Only ever done on purpose.
        Returns the number of sessions shared."""
        c = self
        devices = list((await c.devices.devices_for([user_id]))[user_id].values())
        items = []
        count = 0
        for session_id in c.groups.inbound_for_conversation(conversation_id):
            inbound = c.groups.inbound(session_id)
            if inbound is None or inbound.origin.user_id != c.user_id:
                continue
            content = self._export(inbound)
            items += [(d, formats.FORWARDED_ROOM_KEY, content) for d in devices]
            count += 1
        if items:
            await c.olm.send(items)
        return count
