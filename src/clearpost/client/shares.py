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
from typing import Protocol

from clearpost.client.content import Content
from clearpost.client.errors import ShareError
from clearpost.client.model import Sent, Shared, ShareIntent
from clearpost.core.clock import Clock

__all__ = ["MAX_RECIPIENTS", "Sharer", "send_share", "share_txn_id"]

MAX_RECIPIENTS = 1000
"""The most people one share may reach (the server refuses a larger count)."""


class Sharer(Protocol):
    """What sending a share needs from a client (``Client`` is one)."""

    @property
    def user_id(self) -> str: ...
    @property
    def clock(self) -> Clock: ...
    async def share_intent(self, intent_id: str) -> ShareIntent: ...
    async def direct(self, user_id: str) -> str: ...
    async def members(self, conversation_id: str) -> list[str]: ...
    async def send(
        self, conversation_id: str, content: Content | str, *, txn_id: str | None = None
    ) -> Sent: ...
    async def complete_share_intent(self, intent_id: str, recipients: int) -> None: ...


def share_txn_id(intent_id: str, conversation_id: str) -> str:
    """The same transaction id for the same intent and conversation, every time."""
    digest = hashlib.sha256(f"share\n{intent_id}\n{conversation_id}".encode()).digest()
    return "sh" + base64.urlsafe_b64encode(digest[:18]).decode()


async def send_share(
    client: Sharer,
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
        members = await client.members(conversation_id)
        targets[conversation_id] = None
        recipients.update(m for m in members if m != client.user_id)
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
    await client.complete_share_intent(intent.intent_id, len(recipients))
    return Shared(intent.intent_id, len(recipients), tuple(sent))
