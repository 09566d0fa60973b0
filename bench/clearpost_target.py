"""The Clearpost implementation of ``Target``: the /v1 HTTP API with real vodozemac keys.

Each device publishes self-signed identity keys and a few signed one-time keys, as a real
client would, and encrypts with its own outbound Megolm session; the server checks that
every ciphertext parses as a Megolm message, so nothing here is a placeholder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import vodozemac
from http1 import Connection, HTTPError
from target import Ciphertext, Received, Session, SyncBatch

from clearpost.core.canonical import signable

__all__ = ["ClearpostTarget"]

_JSON = b"Content-Type: application/json\r\n"
OLM = "m.olm.v1.curve25519-aes-sha2"
MEGOLM = "m.megolm.v1.aes-sha2"


@dataclass
class _Keys:
    account: vodozemac.Account = field(default_factory=vodozemac.Account)
    group: vodozemac.GroupSession = field(default_factory=vodozemac.GroupSession)


def _sign(session: Session, obj: dict[str, Any]) -> dict[str, Any]:
    keys: _Keys = session.state
    sig = keys.account.sign(signable(obj)).to_base64()
    return {**obj, "signatures": {session.user_id: {f"ed25519:{session.device_id}": sig}}}


class ClearpostTarget:
    name = "clearpost"
    health_path = "/health"

    def __init__(self, one_time_keys: int = 5) -> None:
        self.one_time_keys = one_time_keys

    async def register(self, conn: Connection, username: str, password: str) -> Session:
        creds = {"username": username, "password": password}
        await conn.send_json("POST", "/v1/accounts", creds)
        body = await conn.send_json("POST", "/v1/login", {**creds, "device_name": "loadgen"})
        token = str(body["access_token"])
        session = Session(
            user_id=str(body["user_id"]),
            device_id=str(body["device_id"]),
            access_token=token,
            auth_header=f"Authorization: Bearer {token}\r\n".encode(),
            state=_Keys(),
        )
        keys: _Keys = session.state
        dev = session.device_id
        device_keys = _sign(
            session,
            {
                "user_id": session.user_id,
                "device_id": dev,
                "algorithms": [OLM, MEGOLM],
                "keys": {
                    f"curve25519:{dev}": keys.account.curve25519_key.to_base64(),
                    f"ed25519:{dev}": keys.account.ed25519_key.to_base64(),
                },
            },
        )
        upload: dict[str, Any] = {"device_keys": device_keys}
        if self.one_time_keys:
            keys.account.generate_one_time_keys(self.one_time_keys)
            upload["one_time_keys"] = {
                f"signed_curve25519:{kid}": _sign(session, {"key": k.to_base64()})
                for kid, k in keys.account.one_time_keys.items()
            }
            keys.account.mark_keys_as_published()
        await conn.send_json("POST", "/v1/keys/upload", upload, session.auth_header)
        return session

    async def _create(self, conn: Connection, owner: Session, kind: str, members: list[str]) -> str:
        body = await conn.send_json(
            "POST", "/v1/conversations", {"kind": kind, "members": members}, owner.auth_header
        )
        return str(body["conversation_id"])

    async def create_group(
        self, conn: Connection, owner: Session, members: Sequence[Session]
    ) -> str:
        return await self._create(conn, owner, "group", [m.user_id for m in members])

    async def create_direct(self, conn: Connection, a: Session, b: Session) -> str:
        return await self._create(conn, a, "direct", [b.user_id])

    def encrypt(self, sender: Session, plaintext: bytes) -> Ciphertext:
        keys: _Keys = sender.state
        message = keys.group.encrypt(plaintext)
        ciphertext = message.to_base64()
        envelope = {
            "algorithm": MEGOLM,
            "sender_key": keys.account.curve25519_key.to_base64(),
            "session_id": keys.group.session_id,
            "device_id": sender.device_id,
            "ciphertext": ciphertext,
        }
        return Ciphertext(ciphertext, orjson.dumps(envelope), len(message.to_bytes()))

    async def send(
        self, conn: Connection, sender: Session, conversation_id: str, txn_id: str, ct: Ciphertext
    ) -> None:
        r = await conn.request(
            "PUT",
            f"/v1/conversations/{conversation_id}/messages/{txn_id}",
            ct.body,
            _JSON + sender.auth_header,
        )
        if r.status != 200:
            raise HTTPError(f"send -> {r.status}: {r.body[:300]!r}")

    async def sync(
        self, conn: Connection, session: Session, since: str | None, timeout_ms: int
    ) -> SyncBatch:
        query = f"timeout={timeout_ms}" + (f"&since={since}" if since else "")
        r = await conn.request(
            "GET", f"/v1/sync?{query}", headers=session.auth_header, timeout=timeout_ms / 1000 + 30
        )
        if r.status != 200:
            raise HTTPError(f"sync -> {r.status}: {r.body[:300]!r}")
        body = orjson.loads(r.body)
        return SyncBatch(
            cursor=body["cursor"],
            received_at=r.at,
            messages=[
                Received(m["conversation_id"], m["sender"], m["content"]["ciphertext"])
                for m in body["messages"]
            ],
        )
