"""Identifier types, their grammar and their generators.

User ids and room ids are Matrix's: ``@<username>:<server_name>`` and
``!<conversation_id>:<server_name>``. ``server_name`` is fixed for a deployment when it is
created (``server/config.py``, stored in the database), so every id this server issues ends
in the same server name and an id ending in another names nobody here.

Ids are opaque strings. Random parts come from ``secrets`` so they cannot be guessed.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from typing import NewType

from clearpost.core.errors import InvalidInput

UserId = NewType("UserId", str)
"""A user's id: ``@<username>:<server_name>``, e.g. ``@alice:clearpost.localhost``. Stable
for the account's life."""

DeviceId = NewType("DeviceId", str)
"""A device's id, unique per user, chosen by the server at login (10 upper-case letters)."""

ConversationId = NewType("ConversationId", str)
"""A conversation's id: ``c_`` followed by 22 random url-safe characters."""

RoomId = NewType("RoomId", str)
"""A conversation's Matrix room id: ``!<conversation_id>:<server_name>``."""

# The id patterns anchor with \A and \Z, never $ (which also matches before a final
# newline: "alice\n" passed as a look-alike of @alice), so .match() checks the whole string.
USERNAME_RE = re.compile(r"\A[a-z][a-z0-9_.-]{2,31}\Z")
"""Usernames (a user id's localpart): 3 to 32 characters of a-z, 0-9, ``_ . -``, starting
with a letter."""

DEVICE_ID_RE = re.compile(r"\A[A-Z]{10}\Z")
CONVERSATION_ID_RE = re.compile(r"\Ac_[A-Za-z0-9_-]{22}\Z")
TXN_ID_RE = re.compile(r"\A[A-Za-z0-9._~-]{1,64}\Z")
"""Client transaction ids: 1 to 64 URL-safe characters."""

MAX_SERVER_NAME = 200
"""At most this many characters, so that a user id stays within Matrix's 255 bytes."""
MAX_USER_ID = 1 + 32 + 1 + MAX_SERVER_NAME

# Matrix's server-name grammar: a DNS name, an IPv4 literal or a bracketed IPv6 literal,
# then an optional port of 1 to 5 digits.
_SERVER_NAME_RE = re.compile(
    r"\A(?P<host>\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,255})(?::(?P<port>[0-9]{1,5}))?\Z"
)
_MATRIX_LOCALPART_RE = re.compile(r"\A[a-z0-9._=/+-]{1,255}\Z")
"""Any Matrix localpart (another server's user ids are judged by Matrix's grammar, not ours)."""

_DEVICE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def is_server_name(value: str) -> bool:
    """Whether ``value`` follows Matrix's server-name grammar (and fits ``MAX_SERVER_NAME``)."""
    if not isinstance(value, str) or len(value) > MAX_SERVER_NAME:
        return False
    m = _SERVER_NAME_RE.match(value)
    if m is None:
        return False
    host = m.group("host")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    return not (host.startswith(("-", ".")) or host.endswith("-") or ".." in host)


def user_id_for(username: str, server_name: str) -> UserId:
    return UserId(f"@{username}:{server_name}")


def room_id_for(conversation_id: str, server_name: str) -> RoomId:
    return RoomId(f"!{conversation_id}:{server_name}")


def localpart(user_id: str) -> str:
    """The username of one of this server's user ids (the part between ``@`` and ``:``)."""
    return user_id[1:].partition(":")[0]


def is_user_id(value: str, server_name: str) -> bool:
    """Whether ``value`` is a well-formed user id of this server (whether or not it exists)."""
    try:
        parse_user_id(value, server_name)
    except InvalidInput:
        return False
    return True


def parse_user_id(value: object, server_name: str) -> UserId:
    """``value`` as one of this server's user ids, or raise ``InvalidInput`` with code
    ``invalid_user_id`` (not a user id at all) or ``foreign_user_id`` (a well-formed Matrix
    user id of another server: this server has no user there)."""
    shown = repr(value)[:80]
    if not isinstance(value, str) or not value.startswith("@") or ":" not in value:
        raise InvalidInput(
            f"{shown} is not a user id (like '@alice:{server_name}')", code="invalid_user_id"
        )
    local, _, server = value[1:].partition(":")
    if server != server_name:
        if is_server_name(server) and _MATRIX_LOCALPART_RE.match(local):
            raise InvalidInput(
                f"this server is {server_name}; it has no user on {server[:MAX_SERVER_NAME]}",
                code="foreign_user_id",
            )
        raise InvalidInput(
            f"{shown} is not a user id (like '@alice:{server_name}')", code="invalid_user_id"
        )
    if not USERNAME_RE.match(local):
        raise InvalidInput(
            f"{shown} is not a user id (like '@alice:{server_name}')", code="invalid_user_id"
        )
    return UserId(value)


def new_device_id() -> DeviceId:
    return DeviceId("".join(secrets.choice(_DEVICE_ALPHABET) for _ in range(10)))


def new_conversation_id() -> ConversationId:
    return ConversationId("c_" + secrets.token_urlsafe(16))


def new_access_token() -> str:
    """An opaque bearer token: 32 random bytes. Only its SHA-256 is ever stored."""
    return "cpt_" + secrets.token_urlsafe(32)
