"""Share intents from partner apps, and the apps you connected.

A partner app (say, a streaming service) may *suggest* something to share. The
suggestion — a share intent — reaches only your own devices. Nothing goes to anyone until
you choose recipients here; then the card travels as an ordinary end-to-end encrypted
message, and the server learns only how many people you sent it to:

1. the intent is one you still hold (pending, not expired: intents last 24 hours);
2. each recipient's direct conversation is found or created; conversations you name are
   checked to exist and counted by their other members;
3. the card (title, the tracking link, "via <partner>") is encrypted and sent to each
   conversation, with a transaction id derived from the intent and the conversation, so a
   repeated ``share`` after a failure never delivers a second card;
4. the intent is marked complete with the number of distinct recipients, nothing else.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clearpost.client.content import ShareCard
from clearpost.client.errors import ClientError, ShareError

if TYPE_CHECKING:
    from clearpost.client.client import Client
    from clearpost.client.model import Sent

__all__ = ["MAX_RECIPIENTS", "ConnectedApp", "ShareIntent", "Shared", "send_share"]

MAX_RECIPIENTS = 1000
"""The most people one share may reach (the server refuses a larger count)."""


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


def share_txn_id(intent_id: str, conversation_id: str) -> str:
    """The same transaction id for the same intent and conversation, every time."""
    digest = hashlib.sha256(f"share\n{intent_id}\n{conversation_id}".encode()).digest()
    return "sh" + base64.urlsafe_b64encode(digest[:18]).decode()


async def send_share(
    client: Client,
    intent: ShareIntent | str,
    to: Sequence[str] = (),
    conversations: Sequence[str] = (),
) -> Shared:
    """Send a share intent's card to users (their direct conversations) and conversations,
    then complete the intent with the number of recipients. Steps in the module docstring."""
    # 1.
    if isinstance(intent, str):
        intent = await client.share_intent(intent)
    if intent.expired(client.clock.now_ms()):
        raise ShareError(
            f"the share intent {intent.intent_id} has expired (intents last 24 hours)",
            code="intent_expired",
        )
    if not to and not conversations:
        raise ShareError("choose at least one recipient or conversation", code="no_recipients")
    # 2.
    targets: dict[str, None] = {}
    recipients: set[str] = set()
    for user in dict.fromkeys(to):
        if user == client.user_id:
            raise ShareError("you cannot share with yourself", code="invalid_recipient")
        targets[await client.direct(user)] = None
        recipients.add(user)
    for conversation_id in dict.fromkeys(conversations):
        conv = await client.crypto.conversation(conversation_id)
        targets[conversation_id] = None
        recipients.update(m for m in conv["members"] if m != client.user_id)
    if not recipients:
        raise ShareError("nobody else is in that conversation", code="no_recipients")
    if len(recipients) > MAX_RECIPIENTS:
        raise ShareError(
            f"a share reaches at most {MAX_RECIPIENTS} people; this one would reach "
            f"{len(recipients)}",
            code="too_many_recipients",
        )
    # 3.
    card = intent.card()
    sent = []
    for conversation_id in targets:
        txn_id = share_txn_id(intent.intent_id, conversation_id)
        sent.append(await client.send(conversation_id, card, txn_id=txn_id))
    # 4.
    await client.transport.complete_share_intent(intent.intent_id, len(recipients))
    return Shared(intent.intent_id, len(recipients), tuple(sent))


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
