"""Conversations, their members, and their (encrypted) messages."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from clearpost.core.e2ee.envelope import ENCRYPTED_EVENT
from clearpost.core.ids import room_id_for
from clearpost.server.http import wire
from clearpost.server.http.deps import JSON, Auth, Svc, check_txn_id, parse_json
from clearpost.server.http.openapi import empty, ok, problems
from clearpost.server.http.routing import OrjsonRoute
from clearpost.server.services.accounts import Caller
from clearpost.server.services.container import Services
from clearpost.server.services.conversations import ConversationRow
from clearpost.server.services.messages import StoredMessage

router = APIRouter(prefix="/v1/conversations", tags=["conversations"], route_class=OrjsonRoute)


class NewConversation(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"kind": "direct", "members": ["@bob:clearpost.localhost"]}]
        },
    )
    kind: Literal["direct", "group"]
    members: list[str] = Field(max_length=1000, description="user ids of the other members")


def conversation_json(c: ConversationRow, server_name: str) -> dict[str, Any]:
    return {
        "conversation_id": c.conversation_id,
        "room_id": room_id_for(c.conversation_id, server_name),
        "kind": c.kind,
        "created_by": c.created_by,
        "created_at": c.created_at,
        "members": c.members,
        "last_seq": c.last_seq,
        "joined_from_seq": c.joined_from_seq,
    }


def event_id_for(conversation_id: str, seq: int) -> str:
    """A message's Matrix event id: unique, and the same wherever the message is shown."""
    return f"${conversation_id}.{seq}"


def message_json(m: StoredMessage, server_name: str) -> dict[str, Any]:
    """A message as a Matrix room event (``m.room.encrypted``) plus Clearpost's fields."""
    return {
        "type": ENCRYPTED_EVENT,
        "event_id": event_id_for(m.conversation_id, m.seq),
        "room_id": room_id_for(m.conversation_id, server_name),
        "sender": m.sender_user,
        "origin_server_ts": m.sent_at,
        "content": orjson.Fragment(m.envelope),
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "sender_device": m.sender_device,
    }


_BY_ID = {"conversation_id": "$response.body#/conversation_id"}
_LINKS = {
    name: {"operationId": f"conversations_{op}", "parameters": _BY_ID}
    for name, op in (
        ("Get", "get"),
        ("Send", "send"),
        ("History", "history"),
        ("AddMember", "add_member"),
        ("RemoveMember", "remove_member"),
        ("Leave", "leave"),
    )
}
"""OpenAPI links: what a client (or a fuzzer) can do next with the conversation's id."""


@router.post(
    "",
    response_class=JSON,
    status_code=201,
    responses=ok(wire.Conversation, 201, "Created", links=_LINKS)
    | ok(wire.Conversation, 200, "The existing direct conversation of this pair", links=_LINKS)
    | problems(404, 409, 422),
)
async def create(body: NewConversation, caller: Auth, svc: Svc) -> JSON:
    """Start a direct conversation (the same pair gets the same one back) or a group."""
    conv, created = await svc.conversations.create(caller, body.kind, body.members)
    return JSON(
        conversation_json(conv, svc.settings.server_name), status_code=201 if created else 200
    )


@router.get("", response_class=JSON, responses=ok(wire.Conversations))
async def list_mine(
    caller: Auth,
    svc: Svc,
    after: str | None = Query(None, max_length=100, description="``next`` of the page before"),
    limit: int = Query(500, ge=1, le=500, description="conversations per page"),
) -> JSON:
    """Your conversations, oldest first, a page at a time: ``total`` counts them all and
    ``next`` (null on the last page) fetches the following page."""
    convs, total, nxt = await svc.conversations.list(caller, after, limit)
    return JSON(
        {
            "conversations": [conversation_json(c, svc.settings.server_name) for c in convs],
            "total": total,
            "next": nxt,
        }
    )


@router.get(
    "/{conversation_id}", response_class=JSON, responses=ok(wire.Conversation) | problems(404)
)
async def get(conversation_id: str, caller: Auth, svc: Svc) -> JSON:
    conv = await svc.conversations.get(caller, conversation_id)
    return JSON(conversation_json(conv, svc.settings.server_name))


@router.post(
    "/{conversation_id}/members/{user_id}",
    response_class=JSON,
    responses=ok(wire.Conversation) | problems(403, 404, 409, 422),
)
async def add_member(conversation_id: str, user_id: str, caller: Auth, svc: Svc) -> JSON:
    """Add a member to a group. They see messages sent from now on."""
    conv = await svc.conversations.add_member(caller, conversation_id, user_id)
    return JSON(conversation_json(conv, svc.settings.server_name))


@router.delete(
    "/{conversation_id}/members/{user_id}",
    status_code=204,
    responses=empty("Removed") | problems(403, 404, 409, 422),
)
async def remove_member(conversation_id: str, user_id: str, caller: Auth, svc: Svc) -> None:
    """Remove a member (the group's creator only; anyone may remove themselves)."""
    await svc.conversations.remove_member(caller, conversation_id, user_id)


@router.post(
    "/{conversation_id}/leave",
    status_code=204,
    responses=empty("Left") | problems(404, 409),
)
async def leave(conversation_id: str, caller: Auth, svc: Svc) -> None:
    await svc.conversations.leave(caller, conversation_id)


_ENVELOPE_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["algorithm", "ciphertext", "session_id"],
                    "additionalProperties": False,
                    "properties": {
                        "algorithm": {"const": "m.megolm.v1.aes-sha2"},
                        "ciphertext": {
                            "type": "string",
                            "description": "a Megolm message, unpadded standard base64",
                        },
                        "session_id": {"type": "string"},
                        "sender_key": {
                            "type": "string",
                            "description": "deprecated; when present, your device's curve25519",
                        },
                        "device_id": {
                            "type": "string",
                            "description": "deprecated; when present, your device's id",
                        },
                    },
                    "examples": [
                        {
                            "algorithm": "m.megolm.v1.aes-sha2",
                            "session_id": "X3lUlvLELLYxeTx4yOVu6UDpasGEVO0Jbu+QFnm0cKQ",
                            "ciphertext": "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg...",
                        }
                    ],
                }
            }
        },
    },
}


@router.put(
    "/{conversation_id}/messages/{txn_id}",
    response_class=JSON,
    openapi_extra=_ENVELOPE_SCHEMA,
    responses=ok(wire.Sent) | problems(404, 409, 422),
)
async def send(conversation_id: str, txn_id: str, request: Request, caller: Auth, svc: Svc) -> JSON:
    """Send an encrypted message. Idempotent per (device, txn_id): a retry returns the first
    result. Anything that is not m.megolm.v1.aes-sha2 content is refused (not_encrypted /
    invalid_envelope)."""
    return JSON(await send_message(svc, caller, conversation_id, txn_id, await request.body()))


async def send_message(
    svc: Services, caller: Caller, conversation_id: str, txn_id: str, raw: bytes
) -> dict[str, Any]:
    """The send itself, shared with the fast path (``http/fastpath.py``)."""
    check_txn_id(txn_id)
    body = parse_json(raw, svc.settings.max_message_bytes)
    stored = await svc.messages.send(caller, conversation_id, txn_id, body)
    return {
        "event_id": event_id_for(stored.conversation_id, stored.seq),
        "conversation_id": stored.conversation_id,
        "seq": stored.seq,
        "sent_at": stored.sent_at,
    }


@router.get(
    "/{conversation_id}/messages", response_class=JSON, responses=ok(wire.History) | problems(404)
)
async def history(
    conversation_id: str,
    caller: Auth,
    svc: Svc,
    after: int = Query(0, ge=0, le=2**63 - 1, description="return messages with seq above this"),
    limit: int = Query(100, ge=1, le=500),
) -> JSON:
    """Page through history you may see (from when you joined), oldest first."""
    msgs = await svc.messages.history(caller, conversation_id, after, limit)
    return JSON(
        {
            "messages": [message_json(m, svc.settings.server_name) for m in msgs],
            "next_after": msgs[-1].seq if len(msgs) == limit else None,
        }
    )
