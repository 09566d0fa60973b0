"""The user's own view of partners: connected apps, revocation, pending share intents."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from clearpost.server.http import wire
from clearpost.server.http.deps import JSON, Auth, Svc
from clearpost.server.http.openapi import empty, ok, problems
from clearpost.server.http.routing import OrjsonRoute

router = APIRouter(prefix="/v1/me", tags=["me"], route_class=OrjsonRoute)


class Completed(BaseModel):
    model_config = ConfigDict(extra="forbid")
    recipients: int = Field(
        ge=1, le=1000, description="how many people it was sent to; nothing else"
    )


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(
        max_length=200,
        description="what partners with profile:basic see; null or blank clears it",
    )


@router.get("/profile", response_class=JSON, responses=ok(wire.Profile))
async def profile(caller: Auth, svc: Svc) -> JSON:
    """Your display name: empty until you set one; partners never see your username."""
    return JSON({"display_name": await svc.accounts.display_name(caller.user_id)})


@router.put("/profile", response_class=JSON, responses=ok(wire.Profile) | problems(422))
async def set_profile(body: Profile, caller: Auth, svc: Svc) -> JSON:
    """Choose (or clear) the display name partners with ``profile:basic`` see."""
    name = await svc.accounts.set_display_name(caller.user_id, body.display_name)
    return JSON({"display_name": name})


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    group_adds: Literal["anyone", "nobody"] = Field(
        description="who may add you to a group conversation"
    )


@router.get("/settings", response_class=JSON, responses=ok(wire.MySettings))
async def settings(caller: Auth, svc: Svc) -> JSON:
    """Your settings: ``group_adds`` is who may add you to groups ("anyone" by default)."""
    return JSON({"group_adds": await svc.accounts.group_adds(caller.user_id)})


@router.put("/settings", response_class=JSON, responses=ok(wire.MySettings) | problems(422))
async def set_settings(body: Settings, caller: Auth, svc: Svc) -> JSON:
    """Choose who may add you to group conversations: "anyone" or "nobody"."""
    await svc.accounts.set_group_adds(caller.user_id, body.group_adds)
    return JSON({"group_adds": body.group_adds})


@router.get("/apps", response_class=JSON, responses=ok(wire.Apps))
async def apps(caller: Auth, svc: Svc) -> JSON:
    """Connected partner apps: scopes, since when, last access, and the log entries."""
    out = []
    for g in await svc.oauth.apps(caller.user_id):
        out.append(
            {
                "partner_id": g.partner_id,
                "scopes": g.scopes.split(),
                "since": g.created_at,
                "last_access": g.last_access_at,
                "grant_log_index": g.grant_log_index,
                "revoked_at": g.revoked_at,
                "revoke_log_index": g.revoke_log_index,
            }
        )
    return JSON({"apps": out})


@router.delete(
    "/apps/{partner_id}", response_class=JSON, responses=ok(wire.Revoked) | problems(404)
)
async def revoke(partner_id: str, caller: Auth, svc: Svc) -> JSON:
    """Revoke an app: logged first, then its tokens stop working at once."""
    indexes = await svc.oauth.revoke_app(caller.user_id, partner_id)
    return JSON({"revoked": partner_id, "log_indexes": indexes})


@router.get("/share-intents", response_class=JSON, responses=ok(wire.PendingIntents))
async def pending(caller: Auth, svc: Svc) -> JSON:
    """Share suggestions from your apps that you have not acted on (they expire after 24 h)."""
    items = await svc.shares.pending(caller.user_id)
    names = {p.partner_id: p.name for p in await svc.partners.all()}
    return JSON(
        {
            "share_intents": [
                {
                    "intent_id": i.intent_id,
                    "partner": i.partner_id,
                    "partner_name": names.get(i.partner_id, i.partner_id),
                    "title": i.title,
                    "url": i.url,
                    "link": link,
                    "image_url": i.image_url,
                    "description": i.description,
                    "expires_at": i.expires_at,
                    "log_index": i.log_index,
                }
                for i, link in items
            ]
        }
    )


@router.post(
    "/share-intents/{intent_id}/complete",
    status_code=204,
    responses=empty("Done") | problems(404, 409, 422),
)
async def complete(intent_id: str, body: Completed, caller: Auth, svc: Svc) -> None:
    """Mark a share intent done with only the number of recipients (for aggregate reports)."""
    await svc.shares.complete(caller.user_id, intent_id, body.recipients)
