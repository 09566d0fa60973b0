"""What the SDK hands to applications: messages in a clear state, devices, share intents,
and the events ``sync`` and ``listen`` yield. Plain data: no I/O, no crypto."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from clearpost.client.content import Content, ShareCard, to_json
from clearpost.client.errors import ClientError


class MessageState(StrEnum):
    DECRYPTED = "decrypted"
    WAITING_FOR_KEY = "waiting_for_key"
    """We do not hold the key yet; it was requested from the sender's devices."""
    WITHHELD = "withheld"
    """The sender's device refused to share the key and said why (``problem``)."""
    FAILED = "failed"
    """The message failed a check (tampered, replayed, wrong sender); ``code`` says which."""


@dataclass(slots=True)
class Message:
    """One conversation message as this device sees it. Treat it as read-only (it is not
    frozen only because this sits on the per-message path, where frozen dataclasses cost)."""

    conversation_id: str
    seq: int
    sender: str
    sender_device: str
    sent_at: int
    state: MessageState
    content: Content | None = None
    problem: str | None = None
    """Human explanation when not decrypted: "waiting for the key from ...", a withheld reason."""
    code: str | None = None
    """Machine code when not decrypted: ``waiting_for_key``, ``not_member_then``, ``tampered``,
    ``replay``, ``untrusted_sender`` ..."""

    @property
    def text(self) -> str:
        """What a user is shown for this message."""
        if self.content is not None:
            return self.content.summary()
        return f"({self.problem or self.state.value})"

    def to_json(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "seq": self.seq,
            "sender": self.sender,
            "sender_device": self.sender_device,
            "sent_at": self.sent_at,
            "state": self.state.value,
            "content": to_json(self.content) if self.content is not None else None,
            "problem": self.problem,
            "code": self.code,
        }


@dataclass(frozen=True, slots=True)
class Sent:
    conversation_id: str
    seq: int
    sent_at: int
    session_id: str


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A new message (``updated`` is True when an earlier message changed state, e.g. its
    key arrived and it decrypted, or the key was withheld)."""

    message: Message
    updated: bool = False


@dataclass(frozen=True, slots=True)
class MembershipEvent:
    conversation_id: str
    change: str
    user_id: str | None
    by: str | None


@dataclass(frozen=True, slots=True)
class ShareIntentEvent:
    """A partner app suggested something to share; it reached only your devices. Send it
    with ``Client.share`` (or let it expire after 24 hours)."""

    intent: ShareIntent


@dataclass(frozen=True, slots=True)
class InboxEntry:
    conversation_id: str
    kind: str
    members: tuple[str, ...]
    last_seq: int
    unread: int


@dataclass(slots=True)
class Stats:
    """Seconds spent per kind of work, for the benchmark and for curiosity."""

    crypto: float = 0.0
    """In vodozemac calls: Megolm and Olm encryption and decryption, base64, parsing."""
    store: float = 0.0
    """Writing the device store: pages and sessions sealed and written, and commits.
    (Buffering a message for the next commit is in-memory work and is not counted.)"""
    messages_encrypted: int = 0
    messages_decrypted: int = 0


@dataclass(frozen=True, slots=True)
class Device:
    """A device whose self-signed keys verified."""

    user_id: str
    device_id: str
    curve25519: str
    ed25519: str
    display_name: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceListChange:
    """A user's verified device list changed: devices added, removed, or refused."""

    user_id: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()
    own: bool = False
    reasons: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [
            f"{len(self.added)} added ({', '.join(self.added)})" if self.added else "",
            f"{len(self.removed)} removed ({', '.join(self.removed)})" if self.removed else "",
            f"{len(self.rejected)} refused ({', '.join(self.rejected)})" if self.rejected else "",
        ]
        who = "your" if self.own else f"{self.user_id}'s"
        return f"{who} devices changed: " + "; ".join(p for p in parts if p)


@dataclass(frozen=True, slots=True)
class ShareIntent:
    """Something a partner app suggests you share; so far only your devices have it."""

    intent_id: str
    partner: str
    """The partner's id (its OAuth client id)."""
    partner_name: str
    """The partner's display name from its public agreement (the card says "via <name>")."""
    title: str
    url: str
    """Where the partner's link leads (on a domain of its agreement)."""
    link: str
    """The tracking link recipients get: ``<server>/s/<token>``; it counts a click and
    redirects to ``url``."""
    image_url: str | None
    description: str | None
    expires_at: int
    """Milliseconds since the epoch; the server refuses to complete it after that."""
    log_index: int | None
    """The transparency-log entry recording the partner's request."""

    @classmethod
    def from_json(cls, d: dict[str, Any], partner_name: str | None = None) -> ShareIntent:
        """From a ``share_intent`` sync event or a ``GET /v1/me/share-intents`` item."""
        try:
            partner = _text(d, "partner")
            log_index = d.get("log_index")
            return cls(
                intent_id=_text(d, "intent_id"),
                partner=partner,
                partner_name=partner_name or _opt(d, "partner_name") or partner,
                title=_text(d, "title"),
                url=_text(d, "url"),
                link=_text(d, "link"),
                image_url=_opt(d, "image_url"),
                description=_opt(d, "description"),
                expires_at=_int(d, "expires_at"),
                log_index=None if log_index is None else _int(d, "log_index"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ClientError(
                f"the server sent a malformed share intent ({exc})", code="bad_response"
            ) from exc

    def expires_in_ms(self, now_ms: int) -> int:
        """Milliseconds left (0 once expired)."""
        return max(0, self.expires_at - now_ms)

    def expired(self, now_ms: int) -> bool:
        return self.expires_at <= now_ms

    def card(self) -> ShareCard:
        """What recipients get: the title, the tracking link, and the partner's name."""
        return ShareCard(self.title, self.link, self.description, self.partner_name)

    def to_json(self) -> dict[str, Any]:
        return {
            "intent_id": self.intent_id,
            "partner": self.partner,
            "partner_name": self.partner_name,
            "title": self.title,
            "url": self.url,
            "link": self.link,
            "image_url": self.image_url,
            "description": self.description,
            "expires_at": self.expires_at,
            "log_index": self.log_index,
        }


@dataclass(frozen=True, slots=True)
class Shared:
    """The outcome of sending a share intent."""

    intent_id: str
    recipients: int
    """Distinct people it reached (other than you): the only number the server learns."""
    sent: tuple[Sent, ...]
    """One encrypted message per conversation."""

    def to_json(self) -> dict[str, Any]:
        return {
            "intent_id": self.intent_id,
            "recipients": self.recipients,
            "messages": [
                {"conversation_id": s.conversation_id, "seq": s.seq, "sent_at": s.sent_at}
                for s in self.sent
            ],
        }


@dataclass(frozen=True, slots=True)
class ConnectedApp:
    """A partner app you connected (one consent); ``revoked_at`` is set once you revoked it."""

    partner: str
    partner_name: str
    scopes: tuple[str, ...]
    since: int
    last_access: int | None
    grant_log_index: int | None
    revoked_at: int | None
    revoke_log_index: int | None

    @property
    def connected(self) -> bool:
        return self.revoked_at is None

    @classmethod
    def from_json(cls, d: dict[str, Any], partner_name: str | None = None) -> ConnectedApp:
        try:
            partner = _text(d, "partner_id")
            scopes = d["scopes"]
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise TypeError("scopes is not a list of strings")
            return cls(
                partner,
                partner_name or partner,
                tuple(scopes),
                _int(d, "since"),
                _opt_int(d, "last_access"),
                _opt_int(d, "grant_log_index"),
                _opt_int(d, "revoked_at"),
                _opt_int(d, "revoke_log_index"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ClientError(
                f"the server sent a malformed app entry ({exc})", code="bad_response"
            ) from exc

    def to_json(self) -> dict[str, Any]:
        return {
            "partner": self.partner,
            "partner_name": self.partner_name,
            "scopes": list(self.scopes),
            "since": self.since,
            "last_access": self.last_access,
            "grant_log_index": self.grant_log_index,
            "revoked_at": self.revoked_at,
            "revoke_log_index": self.revoke_log_index,
            "connected": self.connected,
        }


@dataclass(frozen=True, slots=True)
class KeyProblem:
    """A key event from another device was refused: a field missing, a key that does not
    decode, a sender that may not give it, or an Olm message that does not decrypt. It is
    recorded in the device store (``Client.key_problems``); messages waiting for the
    session it named say so in their ``problem``."""

    sender: str
    sender_device: str
    event_type: str
    """``m.room_key``, ``m.forwarded_room_key``, ... or ``m.room.encrypted`` when the Olm
    message itself could not be decrypted or checked."""
    reason: str
    """What to show a person: who sent what, and why it was refused."""
    code: str
    """``invalid_event`` (a field missing or malformed), ``untrusted_sender``, ``tampered``,
    ``not_for_us`` ..."""
    session_id: str | None = None
    conversation_id: str | None = None
    at_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "sender": self.sender,
            "sender_device": self.sender_device,
            "event_type": self.event_type,
            "reason": self.reason,
            "code": self.code,
            "session_id": self.session_id,
            "conversation_id": self.conversation_id,
            "at_ms": self.at_ms,
        }


@dataclass(frozen=True, slots=True)
class DirectoryAlarm:
    """Your account's device list changed in a version this device did not make.

    ``added`` and ``removed`` name the devices (by id) that the new versions brought in or
    took out; ``rolled_back`` is set when the directory shows fewer versions than before."""

    user_id: str
    version: int
    epoch: int
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rolled_back: bool = False
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        if self.rolled_back:
            return (
                f"ALARM: the key directory shows version {self.version} of your devices, "
                "older than one this device saw: the server rolled your directory back"
            )
        parts = []
        if self.added:
            parts.append(f"added device(s) {', '.join(self.added)}")
        if self.removed:
            parts.append(f"removed device(s) {', '.join(self.removed)}")
        what = "; ".join(parts) or "changed the signed keys of a device"
        return (
            f"ALARM: your devices changed in key-directory version {self.version} "
            f"(epoch {self.epoch}), which this device did not make: {what}. If that was not "
            "you, your account has a device you do not control."
        )


Event = (
    MessageEvent
    | MembershipEvent
    | DeviceListChange
    | ShareIntentEvent
    | KeyProblem
    | DirectoryAlarm
)


def _text(d: dict[str, Any], name: str) -> str:
    value = d[name]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} is not a non-empty string")
    return value


def _opt(d: dict[str, Any], name: str) -> str | None:
    value = d.get(name)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} is not a string")
    return value


def _int(d: dict[str, Any], name: str) -> int:
    value = d[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} is not an integer")
    return value


def _opt_int(d: dict[str, Any], name: str) -> int | None:
    return None if d.get(name) is None else _int(d, name)
