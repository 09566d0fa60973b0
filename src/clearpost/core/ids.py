"""Identifier types and their generators.

Ids are opaque strings. Random parts come from ``secrets`` so they cannot be guessed.
"""

from __future__ import annotations

import re
import secrets
from typing import NewType

UserId = NewType("UserId", str)
"""A user's id: ``@`` followed by the username, e.g. ``@alice``. Stable for the account's life."""

DeviceId = NewType("DeviceId", str)
"""A device's id, unique per user, chosen by the server at login (10 upper-case letters)."""

ConversationId = NewType("ConversationId", str)
"""A conversation's id: ``c_`` followed by 22 random url-safe characters."""

# The id patterns anchor with \A and \Z, never $ (which also matches before a final
# newline: "alice\n" passed as a look-alike of @alice), so .match() checks the whole string.
USERNAME_RE = re.compile(r"\A[a-z][a-z0-9_.-]{2,31}\Z")
"""Usernames: 3 to 32 characters of a-z, 0-9, ``_ . -``, starting with a letter."""

DEVICE_ID_RE = re.compile(r"\A[A-Z]{10}\Z")
CONVERSATION_ID_RE = re.compile(r"\Ac_[A-Za-z0-9_-]{22}\Z")
TXN_ID_RE = re.compile(r"\A[A-Za-z0-9._~-]{1,64}\Z")
"""Client transaction ids: 1 to 64 URL-safe characters."""

_DEVICE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def user_id_for(username: str) -> UserId:
    return UserId("@" + username)


def is_user_id(value: str) -> bool:
    return value.startswith("@") and USERNAME_RE.match(value[1:]) is not None


def new_device_id() -> DeviceId:
    return DeviceId("".join(secrets.choice(_DEVICE_ALPHABET) for _ in range(10)))


def new_conversation_id() -> ConversationId:
    return ConversationId("c_" + secrets.token_urlsafe(16))


def new_access_token() -> str:
    """An opaque bearer token: 32 random bytes. Only its SHA-256 is ever stored."""
    return "cpt_" + secrets.token_urlsafe(32)
