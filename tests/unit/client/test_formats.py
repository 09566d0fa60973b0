"""The Matrix formats the SDK builds and parses: exact shapes, every required field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import vodozemac

from clearpost.client import ShareCard, Text, UnsupportedContent, formats
from clearpost.client import content as content_mod
from clearpost.client.formats import (
    ForwardedRoomKey,
    InvalidEvent,
    KeyRequest,
    MegolmContent,
    OlmPayload,
    RoomKey,
    Withheld,
)

ROOM = "!c_AAAAAAAAAAAAAAAAAAAAAA:clearpost.localhost"
SESSION_KEY = vodozemac.GroupSession().session_key.to_base64()


def test_an_olm_payload_is_matrix_exactly() -> None:
    payload = OlmPayload(
        "m.room_key", {"x": 1}, "@a:s.test", "AAAAAAAAAA", "ed_a", "@b:s.test", "ed_b"
    )
    assert orjson.loads(payload.to_bytes()) == {
        "type": "m.room_key",
        "content": {"x": 1},
        "sender": "@a:s.test",
        "sender_device": "AAAAAAAAAA",
        "keys": {"ed25519": "ed_a"},
        "recipient": "@b:s.test",
        "recipient_keys": {"ed25519": "ed_b"},
    }
    extra = {**orjson.loads(payload.to_bytes()), "org.matrix.msc4147.device_keys": {}}
    assert OlmPayload.parse(orjson.dumps(extra)) == payload  # unknown fields are ignored
    for field in ("type", "content", "sender", "sender_device", "keys", "recipient"):
        broken = {k: v for k, v in extra.items() if k != field}
        with pytest.raises(InvalidEvent, match=field):
            OlmPayload.parse(orjson.dumps(broken))
    with pytest.raises(InvalidEvent):
        OlmPayload.parse(b"junk")
    # matrix-sdk-crypto writes no sender_device: the device the Olm session authenticated
    # stands in, and one the payload does name is kept for the receiver to check.
    bare = {k: v for k, v in extra.items() if k != "sender_device"}
    assert OlmPayload.parse(orjson.dumps(bare), "AAAAAAAAAA") == payload
    assert OlmPayload.parse(orjson.dumps(extra), "BBBBBBBBBB").sender_device == "AAAAAAAAAA"


def test_a_room_key_needs_every_field() -> None:
    key = RoomKey(ROOM, "sid", SESSION_KEY)
    assert key.content() == {
        "algorithm": "m.megolm.v1.aes-sha2",
        "room_id": ROOM,
        "session_id": "sid",
        "session_key": SESSION_KEY,
    }
    assert RoomKey.parse({**key.content(), "org.matrix.msc3061.shared_history": True}) == key
    for field in ("algorithm", "room_id", "session_id", "session_key"):
        partial = {k: v for k, v in key.content().items() if k != field}
        with pytest.raises(InvalidEvent) as caught:
            RoomKey.parse(partial)
        assert caught.value.message == f"an m.room_key: field {field!r} is missing"
    with pytest.raises(InvalidEvent, match=r"is not m\.megolm\.v1\.aes-sha2"):
        RoomKey.parse({**key.content(), "algorithm": "megolm.v1"})


def test_forwarded_keys_requests_and_withheld_round_trip() -> None:
    fwd = ForwardedRoomKey(ROOM, "sid", "exported", "curve", "ed")
    assert set(fwd.content()) == {
        "algorithm",
        "room_id",
        "sender_key",
        "session_id",
        "session_key",
        "sender_claimed_ed25519_key",
        "forwarding_curve25519_key_chain",
    }
    assert fwd.content()["forwarding_curve25519_key_chain"] == []
    assert ForwardedRoomKey.parse(fwd.content()) == fwd
    with pytest.raises(InvalidEvent, match="sender_claimed_ed25519_key"):
        ForwardedRoomKey.parse({**fwd.content(), "sender_claimed_ed25519_key": None})

    req = KeyRequest("request", "BBBBBBBBBB", "r1", ROOM, "sid", "curve")
    assert req.content() == {
        "action": "request",
        "requesting_device_id": "BBBBBBBBBB",
        "request_id": "r1",
        "body": {
            "algorithm": "m.megolm.v1.aes-sha2",
            "room_id": ROOM,
            "session_id": "sid",
            "sender_key": "curve",
        },
    }
    assert KeyRequest.parse(req.content()) == req
    cancel = KeyRequest("request_cancellation", "BBBBBBBBBB", "r1")
    assert "body" not in cancel.content() and KeyRequest.parse(cancel.content()) == cancel
    with pytest.raises(InvalidEvent, match="action"):
        KeyRequest.parse({**req.content(), "action": "gimme"})

    w = Withheld(ROOM, "sid", "curve", formats.UNAUTHORISED, "not a member then", "AAAAAAAAAA")
    assert w.content()["code"] == "m.unauthorised" and w.content()["from_device"] == "AAAAAAAAAA"
    assert Withheld.parse(w.content()) == w
    with pytest.raises(InvalidEvent, match="unknown code"):
        Withheld.parse({**w.content(), "code": "not_member_then"})  # Clearpost's old code


def test_olm_and_megolm_contents() -> None:
    content = formats.olm_content("sender", "me", 0, "AwgA")
    assert content == {
        "algorithm": "m.olm.v1.curve25519-aes-sha2",
        "sender_key": "sender",
        "ciphertext": {"me": {"type": 0, "body": "AwgA"}},
    }
    assert formats.olm_ciphertext(content, "me") == ("sender", 0, "AwgA")
    with pytest.raises(InvalidEvent) as caught:
        formats.olm_ciphertext(content, "someone else")
    assert caught.value.code == "not_for_us"
    with pytest.raises(InvalidEvent):
        formats.olm_ciphertext({**content, "algorithm": "olm.v1"}, "me")

    assert formats.megolm_content("AwgA", "sid") == {
        "algorithm": "m.megolm.v1.aes-sha2",
        "ciphertext": "AwgA",
        "session_id": "sid",
    }
    parsed = MegolmContent.parse({**formats.megolm_content("AwgA", "sid"), "device_id": "D"})
    assert parsed == MegolmContent("AwgA", "sid", None, "D")
    with pytest.raises(InvalidEvent, match="session_id"):
        MegolmContent.parse({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA"})


def test_room_ids_name_conversations_of_this_server() -> None:
    assert formats.room_id_for("c_x", "s.test") == "!c_x:s.test"
    assert formats.conversation_of("!c_x:s.test:8448", "s.test:8448", "k") == "c_x"
    for bad in ("!c_x:other.test", "c_x:s.test", "!:s.test", "!c_x"):
        with pytest.raises(InvalidEvent):
            formats.conversation_of(bad, "s.test", "k")


def message(content: dict[str, Any], room: str = ROOM) -> bytes:
    return orjson.dumps({"type": "m.room.message", "content": content, "room_id": room})


def test_text_and_share_cards_are_room_messages() -> None:
    assert orjson.loads(content_mod.encode(ROOM, Text("hi"))) == {
        "type": "m.room.message",
        "content": {"msgtype": "m.text", "body": "hi"},
        "room_id": ROOM,
    }
    card = ShareCard("A film", "https://cp.example/s/abc", "preview", "FilmCo")
    sent = orjson.loads(content_mod.encode(ROOM, card))["content"]
    assert sent == {
        "msgtype": "m.text",
        "body": "A film https://cp.example/s/abc (via FilmCo)",  # what a plain Matrix client shows
        "org.clearpost.share": {
            "title": "A film",
            "url": "https://cp.example/s/abc",
            "preview": "preview",
            "via": "FilmCo",
        },
    }
    for item in (Text("hi"), card):
        assert content_mod.decode(ROOM, content_mod.encode(ROOM, item)) == item
    assert content_mod.decode(ROOM, message({"msgtype": "m.notice", "body": "n"})) == Text("n")
    with pytest.raises(UnsupportedContent) as caught:
        content_mod.decode("!c_other:clearpost.localhost", content_mod.encode(ROOM, Text("moved")))
    assert caught.value.code == "wrong_conversation"
    for bad in (
        b"not json",
        b"[]",
        orjson.dumps({"type": "m.reaction", "content": {}, "room_id": ROOM}),
        message({"msgtype": "m.text", "body": 5}),
        message({"msgtype": "m.text", "body": "x", "org.clearpost.share": {"title": "t"}}),
        orjson.dumps({"v": 1, "conversation_id": "c_1", "type": "text", "body": "old format"}),
    ):
        with pytest.raises(UnsupportedContent):
            content_mod.decode(ROOM, bad)
    assert (
        ShareCard("A film", "https://x/s/1", via="FilmCo").summary()
        == "[A film] https://x/s/1 (via FilmCo)"
    )
