"""Matrix key upload, query and claim, and a user's device list."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request

from clearpost.core.errors import InvalidInput, NotFound
from clearpost.core.ids import parse_user_id
from clearpost.server.http import wire
from clearpost.server.http.deps import JSON, Auth, Svc, json_body
from clearpost.server.http.openapi import ok, problems
from clearpost.server.http.routing import OrjsonRoute

router = APIRouter(prefix="/v1", tags=["keys"], route_class=OrjsonRoute)

MAX_KEYS_BODY = 128 * 1024
"""An upload of 100 signed one-time keys is about 25 KB."""


def _body(description: str, example: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object", "description": description},
                    "examples": {"matrix": {"value": example}},
                }
            },
        }
    }


_UPLOAD = _body(
    "Matrix /keys/upload: {device_keys?, one_time_keys?: {'signed_curve25519:<id>': "
    "{key, signatures}}, fallback_keys?: {'signed_curve25519:<id>': {key, fallback: true, "
    "signatures}}} for the device you are logged in as (docs/api.md)",
    {"one_time_keys": {"signed_curve25519:AAAAAQ": {"key": "...", "signatures": {}}}},
)
_QUERY = _body(
    "Matrix /keys/query: {device_keys: {user id: [device ids] ([] for all)}, timeout?}",
    {"device_keys": {"@bob:clearpost.localhost": []}},
)
_CLAIM = _body(
    "Matrix /keys/claim: {one_time_keys: {user id: {device id: 'signed_curve25519'}}, timeout?}",
    {"one_time_keys": {"@bob:clearpost.localhost": {"JLAFKJWSCS": "signed_curve25519"}}},
)


def _object(body: Any, allowed: set[str], required: str) -> dict[str, Any]:
    if not isinstance(body, dict) or required not in body or set(body) - allowed:
        raise InvalidInput(f"the body must be {{'{required}': {{...}}, 'timeout'?: ms}}")
    timeout = body.get("timeout")
    if timeout is not None and (type(timeout) is not int or timeout < 0):
        raise InvalidInput("timeout: a whole number of milliseconds, 0 or more")
    return body


@router.post(
    "/keys/upload",
    response_class=JSON,
    openapi_extra=_UPLOAD,
    responses=ok(wire.KeyCounts) | problems(409, 422),
)
async def upload_keys(request: Request, caller: Auth, svc: Svc) -> JSON:
    """Publish this device's keys (self-signed; they never change), signed one-time keys and
    a signed fallback key. Returns how many one-time keys the server holds unclaimed."""
    body = await json_body(request, MAX_KEYS_BODY)
    counts = await svc.keys.upload(caller, body)
    return JSON({"one_time_key_counts": counts})


@router.post(
    "/keys/query",
    response_class=JSON,
    openapi_extra=_QUERY,
    responses=ok(wire.KeysQueried) | problems(422),
)
async def query_keys(request: Request, caller: Auth, svc: Svc) -> JSON:
    """The device keys of the named users' devices, as their devices signed them."""
    body = _object(
        await json_body(request, MAX_KEYS_BODY), {"device_keys", "timeout"}, "device_keys"
    )
    return JSON({"device_keys": await svc.keys.query(caller, body["device_keys"]), "failures": {}})


@router.post(
    "/keys/claim",
    response_class=JSON,
    openapi_extra=_CLAIM,
    responses=ok(wire.Claimed) | problems(422),
)
async def claim_keys(request: Request, caller: Auth, svc: Svc) -> JSON:
    """One key per requested device, each one-time key handed out once ever; a device's
    fallback key when it has no one-time key left."""
    body = _object(
        await json_body(request, MAX_KEYS_BODY), {"one_time_keys", "timeout"}, "one_time_keys"
    )
    claimed = await svc.keys.claim(caller.user_id, body["one_time_keys"])
    out = {
        user: {dev: {f"signed_curve25519:{k.key_id}": k.key} for dev, k in devs.items()}
        for user, devs in claimed.items()
    }
    return JSON({"one_time_keys": out, "failures": {}})


@router.get(
    "/users/{user_id}/devices",
    response_class=JSON,
    responses=ok(wire.UserDevices) | problems(404, 422),
)
async def user_devices(user_id: str, caller: Auth, svc: Svc) -> JSON:
    """A user's devices and their self-signed device keys (verify the signatures before
    trusting them). Device names ("Bob's work laptop") are the owner's: others get
    ``display_name: null``."""
    parse_user_id(user_id, svc.settings.server_name)
    if not await svc.accounts.user_exists(user_id):
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
