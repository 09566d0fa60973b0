"""The Matrix Synapse implementation of ``Target``: the client-server API (v3).

It drives the same workload as ``ClearpostTarget`` with the same kind of bytes: every
message is an ``m.room.encrypted`` event whose ``ciphertext`` is a real vodozemac Megolm
message from the sender's own outbound session, encrypted before any clock starts, with
``sender_key``, ``session_id`` and ``device_id`` as a Matrix client sends them. Each
device uploads self-signed identity keys and signed one-time keys, as Element would.

Conversations are rooms: ``createRoom`` (preset ``private_chat``, an ``invite`` list,
``m.room.encryption`` in the initial state, ``is_direct`` for direct rooms), then each
invitee joins. Sync uses two stored filters, both keeping only the timeline of rooms:
one with a one-event timeline for the first ("now") sync, one with a long timeline for
the long-polls, so a burst between two polls is never cut off (``limited``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
import vodozemac
from http1 import Connection, HTTPError
from target import Ciphertext, Received, Session, SyncBatch

__all__ = ["SynapseTarget"]

_JSON = b"Content-Type: application/json\r\n"
_V3 = "/_matrix/client/v3"
MEGOLM = "m.megolm.v1.aes-sha2"
OLM = "m.olm.v1.curve25519-aes-sha2"


@dataclass
class _Device:
    account: vodozemac.Account = field(default_factory=vodozemac.Account)
    group: vodozemac.GroupSession = field(default_factory=vodozemac.GroupSession)
    initial_filter: str = ""
    """Filter id for the first sync: one timeline event per room."""
    poll_filter: str = ""
    """Filter id for long-polls: room timelines only, up to ``timeline_limit`` events."""


def _canonical(obj: dict[str, Any]) -> bytes:
    """Matrix canonical JSON of ``obj`` without ``signatures`` and ``unsigned`` (sorted keys,
    no whitespace; every value here is ASCII, so orjson's output is canonical)."""
    return orjson.dumps(
        {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")},
        option=orjson.OPT_SORT_KEYS,
    )


def _sign(session: Session, obj: dict[str, Any]) -> dict[str, Any]:
    device: _Device = session.state
    sig = device.account.sign(_canonical(obj)).to_base64()
    return {**obj, "signatures": {session.user_id: {f"ed25519:{session.device_id}": sig}}}


def _timeline_filter(limit: int) -> dict[str, Any]:
    nothing: dict[str, Any] = {"types": []}
    return {
        "event_fields": ["type", "sender", "content.ciphertext"],
        "presence": nothing,
        "account_data": nothing,
        "room": {
            "timeline": {"limit": limit, "types": ["m.room.encrypted"]},
            "state": {"types": [], "lazy_load_members": True},
            "ephemeral": nothing,
            "account_data": nothing,
        },
    }


class SynapseTarget:
    name = "synapse"
    health_path = "/_matrix/client/versions"

    def __init__(self, one_time_keys: int = 5, timeline_limit: int = 500) -> None:
        self.one_time_keys = one_time_keys
        self.timeline_limit = timeline_limit

    async def register(self, conn: Connection, username: str, password: str) -> Session:
        # Open registration with the dummy stage: no email, no captcha (see homeserver.yaml).
        body = await conn.send_json(
            "POST",
            f"{_V3}/register",
            {
                "username": username,
                "password": password,
                "auth": {"type": "m.login.dummy"},
                "initial_device_display_name": "loadgen",
            },
        )
        token = str(body["access_token"])
        session = Session(
            user_id=str(body["user_id"]),
            device_id=str(body["device_id"]),
            access_token=token,
            auth_header=f"Authorization: Bearer {token}\r\n".encode(),
            state=_Device(),
        )
        await self._upload_keys(conn, session)
        device: _Device = session.state
        device.initial_filter = await self._filter(conn, session, _timeline_filter(1))
        device.poll_filter = await self._filter(
            conn, session, _timeline_filter(self.timeline_limit)
        )
        return session

    async def _upload_keys(self, conn: Connection, session: Session) -> None:
        device: _Device = session.state
        dev = session.device_id
        body: dict[str, Any] = {
            "device_keys": _sign(
                session,
                {
                    "user_id": session.user_id,
                    "device_id": dev,
                    "algorithms": [OLM, MEGOLM],
                    "keys": {
                        f"curve25519:{dev}": device.account.curve25519_key.to_base64(),
                        f"ed25519:{dev}": device.account.ed25519_key.to_base64(),
                    },
                },
            )
        }
        if self.one_time_keys:
            device.account.generate_one_time_keys(self.one_time_keys)
            body["one_time_keys"] = {
                f"signed_curve25519:{kid}": _sign(session, {"key": k.to_base64()})
                for kid, k in device.account.one_time_keys.items()
            }
            device.account.mark_keys_as_published()
        await conn.send_json("POST", f"{_V3}/keys/upload", body, session.auth_header)

    async def _filter(self, conn: Connection, session: Session, spec: dict[str, Any]) -> str:
        body = await conn.send_json(
            "POST",
            f"{_V3}/user/{quote(session.user_id, safe='')}/filter",
            spec,
            session.auth_header,
        )
        return str(body["filter_id"])

    async def _create_room(
        self, conn: Connection, owner: Session, invitees: Sequence[Session], direct: bool
    ) -> str:
        spec: dict[str, Any] = {
            "preset": "private_chat",
            "invite": [m.user_id for m in invitees],
            "initial_state": [
                {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": MEGOLM}}
            ],
        }
        if direct:
            spec["is_direct"] = True
        body = await conn.send_json("POST", f"{_V3}/createRoom", spec, owner.auth_header)
        room_id = str(body["room_id"])
        for m in invitees:
            await conn.send_json("POST", f"{_V3}/join/{quote(room_id, safe='')}", {}, m.auth_header)
        return room_id

    async def create_group(
        self, conn: Connection, owner: Session, members: Sequence[Session]
    ) -> str:
        return await self._create_room(conn, owner, members, direct=False)

    async def create_direct(self, conn: Connection, a: Session, b: Session) -> str:
        return await self._create_room(conn, a, [b], direct=True)

    def encrypt(self, sender: Session, plaintext: bytes) -> Ciphertext:
        device: _Device = sender.state
        message = device.group.encrypt(plaintext)
        ciphertext = message.to_base64()
        content = {
            "algorithm": MEGOLM,
            "sender_key": device.account.curve25519_key.to_base64(),
            "ciphertext": ciphertext,
            "session_id": device.group.session_id,
            "device_id": sender.device_id,
        }
        return Ciphertext(ciphertext, orjson.dumps(content), len(message.to_bytes()))

    async def send(
        self, conn: Connection, sender: Session, conversation_id: str, txn_id: str, ct: Ciphertext
    ) -> None:
        room = quote(conversation_id, safe="")
        r = await conn.request(
            "PUT",
            f"{_V3}/rooms/{room}/send/m.room.encrypted/{quote(txn_id, safe='')}",
            ct.body,
            _JSON + sender.auth_header,
        )
        if r.status != 200:
            raise HTTPError(f"send -> {r.status}: {r.body[:300]!r}")

    async def sync(
        self, conn: Connection, session: Session, since: str | None, timeout_ms: int
    ) -> SyncBatch:
        device: _Device = session.state
        if since is None:
            query = f"filter={device.initial_filter}&timeout=0"
        else:
            query = f"filter={device.poll_filter}&timeout={timeout_ms}&since={quote(since)}"
        r = await conn.request(
            "GET",
            f"{_V3}/sync?{query}",
            headers=session.auth_header,
            timeout=timeout_ms / 1000 + 30,
        )
        if r.status != 200:
            raise HTTPError(f"sync -> {r.status}: {r.body[:300]!r}")
        body = orjson.loads(r.body)
        messages: list[Received] = []
        if since is not None:  # the first sync only fixes "now"
            for room_id, room in body.get("rooms", {}).get("join", {}).items():
                for ev in room.get("timeline", {}).get("events", ()):
                    if ev.get("type") == "m.room.encrypted":
                        messages.append(
                            Received(room_id, ev["sender"], ev["content"]["ciphertext"])
                        )
        return SyncBatch(cursor=body["next_batch"], received_at=r.at, messages=messages)
