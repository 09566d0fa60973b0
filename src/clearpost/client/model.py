"""What the SDK hands to applications: messages in a clear state, and events."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from clearpost.client.content import Content, to_json
from clearpost.client.directory import DirectoryAlarm
from clearpost.client.shares import ShareIntent
from clearpost.client.verify import DeviceListChange


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


Event = MessageEvent | MembershipEvent | DeviceListChange | ShareIntentEvent | DirectoryAlarm
