"""What travels inside a Megolm message: a Matrix room event, ``m.room.message``.

Encrypted payload (the Megolm plaintext), as every Matrix client writes it::

    {"type": "m.room.message", "room_id": "!c_...:server", "content": {...}}

    text        {"msgtype": "m.text", "body": <str>}
    share card  {"msgtype": "m.text", "body": "<title> <link> (via <partner>)",
                 "org.clearpost.share": {"title", "url", "preview", "via"}}

The room id is inside the encryption so a server cannot move a ciphertext from one
conversation into another. A share card's ``body`` is readable text, so a plain Matrix
client shows the card as a message with its link; Clearpost reads the namespaced field.
Any other ``msgtype`` with a text ``body`` is shown as text (Matrix's rule for message
types a client does not know). Key events never travel here; they go over Olm only
(``formats``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from clearpost.client.errors import UnsupportedContent

MESSAGE = "m.room.message"
TEXT = "m.text"
SHARE_FIELD = "org.clearpost.share"
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

    def event_content(self) -> dict[str, Any]:
        return {"msgtype": TEXT, "body": self.body}


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

    def event_content(self) -> dict[str, Any]:
        via = f" (via {self.via})" if self.via else ""
        return {
            "msgtype": TEXT,
            "body": f"{self.title} {self.url}{via}",
            SHARE_FIELD: self.fields(),
        }


Content = Text | ShareCard


def encode(room_id: str, content: Content) -> bytes:
    """The Megolm plaintext of ``content`` in room ``room_id``."""
    if isinstance(content, Text) and len(content.body) > MAX_TEXT:
        raise UnsupportedContent(
            f"a text message is at most {MAX_TEXT} characters", code="content_too_large"
        )
    return orjson.dumps({"type": MESSAGE, "content": content.event_content(), "room_id": room_id})


def _str(d: dict[str, Any], name: str, optional: bool = False) -> Any:
    value = d.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise UnsupportedContent(f"content field {name!r} must be a string")
    return value


def decode(room_id: str, data: bytes) -> Content:
    """Parse a decrypted payload; raise ``UnsupportedContent`` for anything unexpected."""
    try:
        d = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise UnsupportedContent("the decrypted payload is not JSON") from exc
    if not isinstance(d, dict):
        raise UnsupportedContent("the decrypted payload is not an object")
    if d.get("room_id") != room_id:
        raise UnsupportedContent(
            "the message was encrypted for another conversation", code="wrong_conversation"
        )
    c = d.get("content")
    if d.get("type") == MESSAGE and type(c) is dict and len(c) == 2:  # {msgtype, body}
        body = c.get("body")
        if type(body) is str and SHARE_FIELD not in c:  # the common case, without a detour
            return Text(body)
    if d.get("type") != MESSAGE:
        raise UnsupportedContent(f"event type {str(d.get('type'))[:60]!r} is not supported")
    if not isinstance(c, dict):
        raise UnsupportedContent("the event has no content object")
    body = c.get("body")
    if not isinstance(body, str):
        raise UnsupportedContent("the message has no text body")
    card = c.get(SHARE_FIELD)
    if card is None:
        return Text(body)
    if not isinstance(card, dict):
        raise UnsupportedContent(f"{SHARE_FIELD} must be an object")
    return ShareCard(
        _str(card, "title"), _str(card, "url"), _str(card, "preview", True), _str(card, "via", True)
    )


def from_json(d: dict[str, Any]) -> Content:
    """Build content from its SDK JSON form (``type`` plus the type's fields), as
    ``Message.to_json`` and the local message cache write it."""
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
