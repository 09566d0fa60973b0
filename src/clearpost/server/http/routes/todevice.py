"""To-device events (Olm-encrypted ``m.room.encrypted``; they carry room keys)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from clearpost.core.errors import InvalidInput
from clearpost.server.http import wire
from clearpost.server.http.deps import JSON, Auth, Svc, check_txn_id, json_body
from clearpost.server.http.openapi import ok, problems
from clearpost.server.http.routing import OrjsonRoute

router = APIRouter(prefix="/v1", tags=["to-device"], route_class=OrjsonRoute)

_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["messages"],
                    "properties": {
                        "messages": {
                            "type": "object",
                            "description": "user id -> device id -> "
                            "m.olm.v1.curve25519-aes-sha2 content {algorithm, sender_key, "
                            "ciphertext: {<recipient curve25519>: {type, body}}}",
                        }
                    },
                }
            }
        },
    }
}


@router.put(
    "/to-device/{event_type}/{txn_id}",
    response_class=JSON,
    openapi_extra=_SCHEMA,
    responses=ok(wire.Queued) | problems(409, 422),
)
async def send(event_type: str, txn_id: str, request: Request, caller: Auth, svc: Svc) -> JSON:
    """Matrix send-to-device. ``event_type`` must be ``m.room.encrypted`` and every content
    Olm (``m.olm.v1.curve25519-aes-sha2``). Idempotent per (device, txn_id); each is
    delivered once."""
    check_txn_id(txn_id)
    body = await json_body(request, svc.settings.max_body_bytes)
    if (
        not isinstance(body, dict)
        or set(body) != {"messages"}
        or not isinstance(body["messages"], dict)
    ):
        raise InvalidInput("the body must be {'messages': {user_id: {device_id: content}}}")
    queued, unknown = await svc.to_device.send(caller, event_type, txn_id, body["messages"])
    return JSON(
        {"queued": queued, "unknown_devices": [{"user_id": u, "device_id": d} for u, d in unknown]}
    )
