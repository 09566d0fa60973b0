"""Megolm sessions: one outbound session per conversation, inbound sessions per sender.

An outbound session is rotated when the conversation's members change, when a device it
was shared with disappears, after ``ROTATE_AFTER_MESSAGES`` messages or after
``ROTATE_AFTER_MS``. Every outbound session also becomes an inbound session of our own
(so we read our own messages and can answer key requests for them).

Durability: an outbound session is saved when it is created or shared, and its ratchet
again at a clean close -- not after each message, nor at each commit. If the process dies
before a clean close, the next open discards every outbound session, so a message index is
never reused; the new sessions are shared again before use. (A ratchet saved at an
ordinary commit would be discarded after a crash all the same.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
import vodozemac

from clearpost.client.store import DeviceStore

ROTATE_AFTER_MESSAGES = 100
ROTATE_AFTER_MS = 7 * 24 * 3600 * 1000

DeviceKey = tuple[str, str]
"""(user id, device id)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """The device that created a Megolm session: the only one whose messages it may carry."""

    user_id: str
    device_id: str
    curve25519: str
    ed25519: str


@dataclass(slots=True)
class Outbound:
    conversation_id: str
    session: vodozemac.GroupSession
    created_ms: int
    members: frozenset[str]
    shared_with: set[DeviceKey] = field(default_factory=set)
    dirty: bool = True
    session_id: str = field(init=False)
    """The session's id, read once (vodozemac computes it on each access)."""

    def __post_init__(self) -> None:
        self.session_id = self.session.session_id


@dataclass(slots=True)
class Inbound:
    session: vodozemac.InboundGroupSession
    conversation_id: str
    origin: Origin
    forwarded_by: str | None
    members: tuple[str, ...]

    @property
    def first_index(self) -> int:
        return self.session.first_known_index


class GroupSessions:
    def __init__(self, store: DeviceStore) -> None:
        self.store = store
        self._outbound: dict[str, Outbound | None] = {}
        self._inbound: dict[str, Inbound | None] = {}

    # -- outbound -------------------------------------------------------------------------

    def discard_all_outbound(self) -> None:
        """After a crash: the saved ratchets may be behind what was sent; never reuse them."""
        self.store.write("DELETE FROM outbound_groups")
        self._outbound.clear()

    def outbound(self, conversation_id: str) -> Outbound | None:
        if conversation_id not in self._outbound:
            rows = self.store.query(
                "SELECT pickle, created_ms, members, shared_with FROM outbound_groups "
                "WHERE conversation_id = ?",
                (conversation_id,),
            )
            self._outbound[conversation_id] = (
                None
                if not rows
                else Outbound(
                    conversation_id,
                    vodozemac.GroupSession.from_pickle(rows[0][0], self.store.pickle_key),
                    rows[0][1],
                    frozenset(orjson.loads(rows[0][2])),
                    {(u, d) for u, d in orjson.loads(rows[0][3])},
                    dirty=False,
                )
            )
        return self._outbound[conversation_id]

    def rotation_reason(
        self, out: Outbound, members: frozenset[str], devices: set[DeviceKey], now_ms: int
    ) -> str | None:
        if out.members != members:
            return "membership changed"
        if out.shared_with - devices:
            return "a device left"
        if out.session.message_index >= ROTATE_AFTER_MESSAGES:
            return f"{ROTATE_AFTER_MESSAGES} messages sent"
        if now_ms - out.created_ms >= ROTATE_AFTER_MS:
            return "the session is a week old"
        return None

    def new_outbound(
        self, conversation_id: str, members: frozenset[str], now_ms: int, me: Origin
    ) -> Outbound:
        out = Outbound(conversation_id, vodozemac.GroupSession(), now_ms, members)
        self._outbound[conversation_id] = out
        self.save_outbound(out)
        own = vodozemac.InboundGroupSession(out.session.session_key)
        self.save_inbound(Inbound(own, conversation_id, me, None, tuple(sorted(members))))
        return out

    def save_outbound(self, out: Outbound) -> None:
        self.store.write(
            "INSERT INTO outbound_groups (conversation_id, session_id, pickle, created_ms, "
            "members, shared_with) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (conversation_id) DO UPDATE SET session_id = "
            "excluded.session_id, "
            "pickle = excluded.pickle, created_ms = excluded.created_ms, members = "
            "excluded.members, "
            "shared_with = excluded.shared_with",
            (
                out.conversation_id,
                out.session_id,
                out.session.pickle(self.store.pickle_key),
                out.created_ms,
                orjson.dumps(sorted(out.members)).decode(),
                orjson.dumps(sorted(out.shared_with)).decode(),
            ),
        )
        out.dirty = False

    def flush(self) -> None:
        """Save outbound ratchets that moved (called at a clean close)."""
        for out in self._outbound.values():
            if out is not None and out.dirty:
                self.save_outbound(out)

    def encrypt(self, out: Outbound, plaintext: bytes) -> tuple[str, int]:
        """(ciphertext base64, message index)."""
        index = out.session.message_index
        ciphertext = out.session.encrypt(plaintext).to_base64()
        out.dirty = True
        return ciphertext, index

    # -- inbound --------------------------------------------------------------------------

    def inbound(self, session_id: str) -> Inbound | None:
        if session_id not in self._inbound:
            rows = self.store.query(
                "SELECT pickle, conversation_id, origin_user, origin_device, origin_curve, "
                "origin_ed25519, "
                "forwarded_by, members FROM inbound_groups WHERE session_id = ?",
                (session_id,),
            )
            self._inbound[session_id] = (
                None
                if not rows
                else Inbound(
                    vodozemac.InboundGroupSession.from_pickle(rows[0][0], self.store.pickle_key),
                    rows[0][1],
                    Origin(rows[0][2], rows[0][3], rows[0][4], rows[0][5]),
                    rows[0][6],
                    tuple(orjson.loads(rows[0][7])),
                )
            )
        return self._inbound[session_id]

    def inbound_for_conversation(self, conversation_id: str) -> list[str]:
        return [
            r[0]
            for r in self.store.query(
                "SELECT session_id FROM inbound_groups WHERE conversation_id = ?",
                (conversation_id,),
            )
        ]

    def save_inbound(self, inbound: Inbound) -> None:
        session_id = inbound.session.session_id
        self._inbound[session_id] = inbound
        o = inbound.origin
        self.store.write(
            "INSERT INTO inbound_groups (session_id, conversation_id, origin_user, origin_device, "
            "origin_curve, origin_ed25519, forwarded_by, first_index, members, pickle) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET "
            "forwarded_by = excluded.forwarded_by, first_index = excluded.first_index, "
            "pickle = excluded.pickle",
            (
                session_id,
                inbound.conversation_id,
                o.user_id,
                o.device_id,
                o.curve25519,
                o.ed25519,
                inbound.forwarded_by,
                inbound.first_index,
                orjson.dumps(list(inbound.members)).decode(),
                inbound.session.pickle(self.store.pickle_key),
            ),
        )
