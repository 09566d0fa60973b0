"""What travels inside a Megolm message: a small typed schema with a version field.

Encrypted payload (the Megolm plaintext)::

    {"v": 1, "conversation_id": <id>, "type": "text", "body": <str>}
    {"v": 1, "conversation_id": <id>, "type": "share_card", "title": <str>, "url": <str>,
     "preview": <str | null>, "via": <str | null>}

The conversation id is inside the encryption so a server cannot move a ciphertext from
one conversation into another. Control messages (room keys, key requests, withheld
notices) never travel here; they go over Olm only (``clearpost.core.e2ee.control``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from clearpost.client.errors import UnsupportedContent

VERSION = 1
MAX_TEXT = 16_000


@dataclass(frozen=True, slots=True)
class Text:
    """A plain text message."""

    body: str
    type: ClassVar[str] = "text"

    def fields(self) -> dict[str, Any]:
        return {"body": self.body}

    def summary(self) -> str:
        return self.body


@dataclass(frozen=True, slots=True)
class ShareCard:
    """Something shared from a partner app ("via <partner>"), with its tracking link."""

    title: str
    url: str
    preview: str | None = None
    via: str | None = None
    type: ClassVar[str] = "share_card"

    def fields(self) -> dict[str, Any]:
        return {"title": self.title, "url": self.url, "preview": self.preview, "via": self.via}

    def summary(self) -> str:
        via = f" (via {self.via})" if self.via else ""
        return f"[{self.title}] {self.url}{via}"


Content = Text | ShareCard


def encode(conversation_id: str, content: Content) -> bytes:
    if isinstance(content, Text) and len(content.body) > MAX_TEXT:
        raise UnsupportedContent(
            f"a text message is at most {MAX_TEXT} characters", code="content_too_large"
        )
    return orjson.dumps(
        {"v": VERSION, "conversation_id": conversation_id, "type": content.type, **content.fields()}
    )


def _str(d: dict[str, Any], name: str, optional: bool = False) -> Any:
    value = d.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise UnsupportedContent(f"content field {name!r} must be a string")
    return value


def decode(conversation_id: str, data: bytes) -> Content:
    """Parse a decrypted payload; raise ``UnsupportedContent`` for anything unexpected."""
    try:
        d = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UnsupportedContent("the decrypted payload is not JSON") from exc
    if not isinstance(d, dict):
        raise UnsupportedContent("the decrypted payload is not an object")
    if d.get("v") != VERSION:
        raise UnsupportedContent(
            f"content version {str(d.get('v'))[:10]!r} is not supported (expected {VERSION})"
        )
    if d.get("conversation_id") != conversation_id:
        raise UnsupportedContent(
            "the message was encrypted for another conversation", code="wrong_conversation"
        )
    body = d.get("body")
    if d.get("type") == "text" and isinstance(body, str):  # the common case, without a detour
        return Text(body)
    return from_json(d)


def from_json(d: dict[str, Any]) -> Content:
    """Build content from its fields (``type`` plus the type's fields)."""
    kind = d.get("type")
    if kind == Text.type:
        return Text(_str(d, "body"))
    if kind == ShareCard.type:
        return ShareCard(
            _str(d, "title"), _str(d, "url"), _str(d, "preview", True), _str(d, "via", True)
        )
    raise UnsupportedContent(f"content type {str(kind)[:40]!r} is not supported")


def to_json(content: Content) -> dict[str, Any]:
    return {"type": content.type, **content.fields()}
