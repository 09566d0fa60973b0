"""Room keys, key requests and withheld notices: the Olm-borne control flow.

A device that cannot decrypt a message asks the sender's devices for the key. A device
that holds it answers only a requester whose user is a member of the conversation now
*and* was a member when the session was in use (the session's member list, taken from
the server's member list when the session was created; sessions rotate on every
membership change). Otherwise it answers "withheld" with the reason, which the
requester shows instead of an error.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import vodozemac

from clearpost.client.cache import MessageCache
from clearpost.client.decrypt import decrypt_message
from clearpost.client.errors import ClientError, UntrustedSender
from clearpost.client.megolm import GroupSessions, Inbound
from clearpost.client.model import Event, Message, MessageEvent, MessageState, Stats
from clearpost.client.olm import OlmMachine
from clearpost.client.store import DeviceStore
from clearpost.client.transport import Transport
from clearpost.client.verify import DeviceTracker
from clearpost.core.clock import Clock
from clearpost.core.e2ee import control

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
        self._wanted: dict[str, tuple[str, str, str, int]] = {}

    # -- asking ---------------------------------------------------------------------------

    def want(self, raw: dict[str, Any], msg: Message) -> None:
        """Note that ``msg`` needs a key; ``send_requests`` asks for it."""
        env = raw.get("envelope") or {}
        try:
            index = vodozemac.MegolmMessage.from_base64(env["ciphertext"]).message_index()
        except (KeyError, TypeError, ValueError):
            index = 0
        session_id = str(env.get("session_id", ""))
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
                request = control.KeyRequest(
                    conv, session_id, device, index, secrets.token_urlsafe(12)
                )
                content = control.key_request_content(request)
                await c.olm.send([(d, control.KEY_REQUEST, content) for d in targets])
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

    async def dispatch(self, payload: control.OlmPayload) -> list[Event]:
        if payload.type == control.ROOM_KEY:
            return await self._room_key(payload)
        if payload.type == control.KEY_REQUEST:
            await self._answer(payload)
            return []
        return self._withheld(payload)

    async def _room_key(self, p: control.OlmPayload) -> list[Event]:
        """Store a room key after checking who may give it to us.

        Steps:
        1. An original key (``exported`` false) must come from its origin device itself:
           the origin named in it is exactly the Olm sender and its verified keys.
        2. A forwarded key must come from the origin device or another verified device of
           the origin's user (not from our own devices: a device added to our account
           behind our back must not be able to put words in someone else's mouth); if we
           know the origin device, its keys must match the ones named.
        3. The key opens a session with the id it names.
        4. A session we already hold keeps its origin and conversation; a key is only
           taken if it reaches further back (a lower first index).
        """
        c = self
        key = control.parse_room_key(p.content)
        sender = c.devices.device(p.sender.user_id, p.sender.device_id)
        if sender is None:
            raise UntrustedSender("a room key came from a device we have not verified")
        as_origin = control.Origin(
            sender.user_id, sender.device_id, sender.curve25519, sender.ed25519
        )
        try:
            if not key.exported:
                # 1.
                if key.origin != as_origin:
                    raise UntrustedSender("a room key names another device as its origin")
                session = vodozemac.InboundGroupSession(vodozemac.SessionKey(key.session_key))
                forwarded_by = None
            else:
                # 2.
                if sender.user_id != key.origin.user_id:
                    raise UntrustedSender(
                        f"{sender.user_id} forwarded a key of {key.origin.user_id}; refused"
                    )
                origin_dev = c.devices.device(key.origin.user_id, key.origin.device_id)
                if origin_dev is None and key.origin != as_origin:
                    await c.devices.refresh(key.origin.user_id)
                    origin_dev = c.devices.device(key.origin.user_id, key.origin.device_id)
                if origin_dev is not None and (origin_dev.curve25519, origin_dev.ed25519) != (
                    key.origin.curve25519,
                    key.origin.ed25519,
                ):
                    raise UntrustedSender(
                        "a forwarded room key names origin keys that do not match"
                    )
                session = vodozemac.InboundGroupSession.import_session(
                    vodozemac.ExportedSessionKey(key.session_key)
                )
                forwarded_by = f"{sender.user_id}/{sender.device_id}"
        except (vodozemac.SessionKeyDecodeException, vodozemac.KeyException, ValueError) as exc:
            raise UntrustedSender("a room key does not decode") from exc
        # 3.
        if session.session_id != key.session_id:
            raise UntrustedSender("a room key opens a different session than it names")
        # 4.
        existing = c.groups.inbound(key.session_id)
        if existing is not None:
            if (existing.origin, existing.conversation_id) != (key.origin, key.conversation_id):
                raise UntrustedSender("a room key conflicts with the session we already hold")
            if existing.first_index <= session.first_known_index:
                return []
        c.groups.save_inbound(
            Inbound(session, key.conversation_id, key.origin, forwarded_by, key.members)
        )
        if existing is None:  # inbound sessions are never deleted: nothing decrypted with it yet
            c.cache.new_session(key.session_id)
        c.store.write("DELETE FROM key_requests WHERE session_id = ?", (key.session_id,))
        self._wanted.pop(key.session_id, None)
        return self.retry_session(key.session_id)

    async def _answer(self, p: control.OlmPayload) -> None:
        """Answer a key request (the Olm layer already verified the requesting device).

        Steps:
        1. We hold the session and it belongs to the conversation named.
        2. The requester's user is a member now, per the server -- else withheld (not_member).
        3. The requester's user was a member when the session was in use -- else withheld
           (not_member_then).
        4. Send the session exported from its first known index to the requesting device only.
        """
        c = self
        req = control.parse_key_request(p.content)
        requester = c.devices.device(p.sender.user_id, p.sender.device_id)
        inbound = c.groups.inbound(req.session_id)
        # 1.
        if requester is None or inbound is None or inbound.conversation_id != req.conversation_id:
            return
        # 2.
        try:
            conv = await c.transport.conversation(req.conversation_id)
        except ClientError:
            return  # we are not a member ourselves any more
        withheld: tuple[str, str] | None = None
        if requester.user_id not in conv["members"]:
            withheld = (control.WITHHELD_NOT_MEMBER, NOT_MEMBER)
        # 3.
        elif requester.user_id not in inbound.members:
            withheld = (control.WITHHELD_NOT_MEMBER_THEN, NOT_MEMBER_THEN)
        if withheld is not None:
            notice = control.Withheld(req.conversation_id, req.session_id, *withheld)
            await c.olm.send([(requester, control.WITHHELD, control.withheld_content(notice))])
            return
        # 4.
        await c.olm.send([(requester, control.ROOM_KEY, self._export(req.session_id, inbound))])

    @staticmethod
    def _export(session_id: str, inbound: Inbound) -> dict[str, Any]:
        exported = inbound.session.export_at(inbound.first_index)
        if exported is None:  # pragma: no cover - the first known index is always exportable
            raise UntrustedSender("cannot export a session")
        return control.room_key_content(
            control.RoomKey(
                inbound.conversation_id,
                session_id,
                exported.to_base64(),
                True,
                inbound.first_index,
                inbound.members,
                inbound.origin,
            )
        )

    def _withheld(self, p: control.OlmPayload) -> list[Event]:
        """Show a withheld reason on the messages it concerns: only for a key this device
        asked for, and only from the messages' sender (issue 15: an unasked notice put a
        peer's text in place of "waiting for the key")."""
        c = self
        notice = control.parse_withheld(p.content)
        asked = c.store.query(
            "SELECT conversation_id FROM key_requests WHERE session_id = ?", (notice.session_id,)
        )
        if not asked or asked[0][0] != notice.conversation_id:
            log.warning("ignoring a withheld notice from %s for a key not asked for", p.sender)
            return []
        events: list[Event] = []
        for raw, msg in c.cache.waiting(notice.session_id):
            if msg.sender != p.sender.user_id or msg.conversation_id != notice.conversation_id:
                continue
            updated = replace(
                msg,
                state=MessageState.WITHHELD,
                code=notice.code,
                problem=f"{p.sender.user_id} withheld the key: {notice.reason}",
            )
            c.cache.put(updated, notice.session_id, None, raw["envelope"])
            events.append(MessageEvent(updated, updated=True))
        return events

    def retry_session(self, session_id: str) -> list[Event]:
        """Re-decrypt the messages that were waiting for ``session_id``."""
        events: list[Event] = []
        for raw, before in self.cache.waiting(session_id):
            conv, seq = str(raw["conversation_id"]), int(raw["seq"])
            msg, session, index = decrypt_message(
                raw, conv, seq, self.groups, self.cache, self.stats
            )
            if msg.state is MessageState.WAITING_FOR_KEY and before.state is MessageState.WITHHELD:
                continue
            if (msg.state, msg.code) != (before.state, before.code):
                self.cache.put(msg, session, index, raw["envelope"])
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
            content = self._export(session_id, inbound)
            items += [(d, control.ROOM_KEY, content) for d in devices]
            count += 1
        if items:
            await c.olm.send(items)
        return count
