"""Accounts, login, logout and the caller's devices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from clearpost.core.ids import USERNAME_RE, localpart
from clearpost.server.http import wire
from clearpost.server.http.deps import JSON, Auth, Svc, client_ip
from clearpost.server.http.openapi import empty, ok, problems
from clearpost.server.http.routing import OrjsonRoute
from clearpost.server.services.accounts import DeviceRow

router = APIRouter(prefix="/v1", tags=["accounts"], route_class=OrjsonRoute)


class Credentials(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"username": "alice", "password": "correct horse battery"}]
        },
    )
    # pattern and minLength are documented, not enforced here: the service refuses with its
    # own codes (invalid_username, invalid_password)
    username: str = Field(
        max_length=64,
        description="3-32 characters: a-z, 0-9, '_', '.', '-'; starts with a letter",
        json_schema_extra={"pattern": USERNAME_RE.pattern},
    )
    password: str = Field(
        max_length=1024, description="8 to 1024 characters", json_schema_extra={"minLength": 8}
    )


class Registration(Credentials):
    invite: str | None = Field(
        default=None,
        max_length=100,
        description="needed when the server's registration is invite-only",
    )


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    old_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024, description="8 to 1024 characters")


class Deletion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str = Field(max_length=1024, description="the account's password, to confirm")


class Login(Credentials):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"username": "alice", "password": "correct horse battery", "device_name": "laptop"}
            ]
        },
    )
    device_name: str | None = Field(default=None, max_length=100)


def device_json(d: DeviceRow) -> dict[str, Any]:
    return {
        "device_id": d.device_id,
        "display_name": d.display_name,
        "created_at": d.created_at,
        "has_keys": d.ed25519 is not None,
    }


@router.post(
    "/accounts",
    status_code=201,
    response_class=JSON,
    responses=ok(wire.Registered, 201, "Created") | problems(403, 409, 429),
)
async def register(body: Registration, request: Request, svc: Svc) -> JSON:
    """Create an account. The password is stored only as an argon2id hash. The server's
    ``registration`` setting decides who may: anyone, invite holders, or nobody (403)."""
    svc.login_limiter.hit(client_ip(request))
    user_id = await svc.accounts.register(body.username, body.password, body.invite)
    return JSON({"user_id": user_id}, status_code=201)


@router.post(
    "/login",
    response_class=JSON,
    responses=ok(wire.Session) | problems(401, 429, s401="Wrong username or password"),
)
async def login(body: Login, request: Request, svc: Svc) -> JSON:
    """Log in as a new device; returns that device's id and its access token."""
    svc.login_limiter.hit(client_ip(request))
    session = await svc.accounts.login(body.username, body.password, body.device_name)
    return JSON(
        {
            "user_id": session.user_id,
            "device_id": session.device_id,
            "access_token": session.access_token,
        }
    )


@router.post("/logout", status_code=204, responses=empty("Logged out"))
async def logout(caller: Auth, svc: Svc) -> None:
    """End this device's session: the token stops working and the device is removed."""
    await svc.accounts.logout(caller)


@router.get("/devices", response_class=JSON, responses=ok(wire.Devices))
async def my_devices(caller: Auth, svc: Svc) -> JSON:
    devices = await svc.accounts.devices(caller.user_id)
    return JSON({"devices": [device_json(d) for d in devices]})


@router.delete(
    "/devices/{device_id}",
    status_code=204,
    responses=empty("Deleted") | problems(404),
)
async def delete_device(device_id: str, caller: Auth, svc: Svc) -> None:
    """Remove one of your devices; its token stops working and your contacts are told."""
    await svc.accounts.delete_device(caller, device_id)


@router.put("/account/password", status_code=204)
async def change_password(body: PasswordChange, request: Request, caller: Auth, svc: Svc) -> None:
    """Change your password (the current one is needed). Your devices stay signed in."""
    svc.login_limiter.hit(client_ip(request))
    await svc.accounts.change_password(caller, body.old_password, body.new_password)


@router.post("/account/delete", status_code=204)
async def delete_account(body: Deletion, request: Request, caller: Auth, svc: Svc) -> None:
    """Delete your account for good: every device, key, consent and membership goes, and
    the salt of your log commitments is destroyed, so the log's entries about you can no
    longer be linked to you by anyone. Messages you sent stay, as ciphertext, with the
    people you sent them to, shown as from a deleted account."""
    svc.login_limiter.hit(client_ip(request))
    await svc.accounts.check_password(localpart(caller.user_id), body.password)
    await svc.deletion.delete(caller.user_id)
