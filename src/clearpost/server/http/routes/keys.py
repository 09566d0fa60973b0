"""Device keys, one-time keys and key claims."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from clearpost.core.errors import InvalidInput, NotFound
from clearpost.core.ids import is_user_id
from clearpost.server.http import wire
from clearpost.server.http.deps import JSON, Auth, Svc, json_body
from clearpost.server.http.openapi import ok, problems
from clearpost.server.http.routing import OrjsonRoute

router = APIRouter(prefix="/v1", tags=["keys"], route_class=OrjsonRoute)


class OneTimeKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")
    one_time_keys: dict[str, dict[str, Any]] = Field(default_factory=dict)
    fallback_key: dict[str, dict[str, Any]] | None = None


class Claim(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"devices": {"@bob": ["JLAFKJWSCS"]}}]}
    )
    devices: dict[str, list[str]] = Field(description="user id -> device ids")


_DEVICE_KEYS_SCHEMA = {
    "requestBody": {
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["device_keys"],
                    "properties": {
                        "device_keys": {
                            "type": "object",
                            "description": "{user_id, device_id, algorithms, "
                            "keys: {curve25519:<dev>, ed25519:<dev>}, signatures}",
                        }
                    },
                }
            }
        },
        "required": True,
    },
}


@router.put(
    "/devices/{device_id}/keys",
    response_class=JSON,
    openapi_extra=_DEVICE_KEYS_SCHEMA,
    responses=ok(wire.KeyCounts) | problems(404, 409, 422),
)
async def upload_device_keys(device_id: str, request: Request, caller: Auth, svc: Svc) -> JSON:
    """Publish this device's identity keys, self-signed with its Ed25519 key. Keys never change."""
    body = await json_body(request, 16 * 1024)
    if not isinstance(body, dict) or set(body) != {"device_keys"}:
        raise InvalidInput("the body must be {'device_keys': {...}}")
    await svc.keys.upload_identity(caller, device_id, body["device_keys"])
    count, _ = await svc.keys.counts(caller)
    return JSON({"one_time_key_counts": {"signed_curve25519": count}})


@router.post(
    "/keys/one-time", response_class=JSON, responses=ok(wire.KeyCounts) | problems(409, 422)
)
async def upload_one_time_keys(body: OneTimeKeys, caller: Auth, svc: Svc) -> JSON:
    """Publish signed one-time keys and, optionally, a new fallback key."""
    counts = await svc.keys.upload_one_time(caller, body.one_time_keys, body.fallback_key)
    return JSON({"one_time_key_counts": counts})


@router.post("/keys/claim", response_class=JSON, responses=ok(wire.Claimed) | problems(422))
async def claim_keys(body: Claim, caller: Auth, svc: Svc) -> JSON:
    """One key per requested device, each one-time key handed out once ever."""
    for user_id in body.devices:
        if not is_user_id(user_id):
            raise InvalidInput(f"{user_id[:50]!r} is not a user id", code="invalid_user_id")
    claimed = await svc.keys.claim(caller.user_id, body.devices)
    out = {
        user: {
            dev: {"key_id": f"signed_curve25519:{k.key_id}", "key": k.key, "fallback": k.fallback}
            for dev, k in devs.items()
        }
        for user, devs in claimed.items()
    }
    return JSON({"one_time_keys": out})


@router.get(
    "/users/{user_id}/devices", response_class=JSON, responses=ok(wire.UserDevices) | problems(404)
)
async def user_devices(user_id: str, caller: Auth, svc: Svc) -> JSON:
    """A user's devices and their self-signed keys (verify the signatures before trusting them).
    Device names ("Bob's work laptop") are the owner's: others get ``display_name: null``."""
    if not is_user_id(user_id) or not await svc.accounts.user_exists(user_id):
        raise NotFound("no such user", code="user_not_found")
    devices = await svc.accounts.devices(user_id)
    own = caller.user_id == user_id
    return JSON(
        {
            "user_id": user_id,
            "devices": [
                {
                    "device_id": d.device_id,
                    "display_name": d.display_name if own else None,
                    "device_keys": orjson.Fragment(d.device_keys) if d.device_keys else None,
                }
                for d in devices
            ],
        }
    )
