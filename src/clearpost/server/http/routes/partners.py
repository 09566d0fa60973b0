"""Public partner information (agreements, scope catalogue) and the partner API."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from clearpost.core.partners.scopes import catalogue
from clearpost.server.http import wire
from clearpost.server.http.deps import JSON, Svc, partner
from clearpost.server.http.openapi import ok, problems
from clearpost.server.http.routing import OrjsonRoute
from clearpost.server.services.authorize import PartnerAccess
from clearpost.server.services.partners import AgreementVersion

router = APIRouter(prefix="/v1", route_class=OrjsonRoute)

LOG_INDEX_HEADER = "Clearpost-Log-Index"
_LOG_INDEX = {
    LOG_INDEX_HEADER: {
        "description": "the transparency log entry that records this access",
        "schema": {"type": "integer"},
    }
}


def version_json(v: AgreementVersion) -> dict[str, Any]:
    return {
        "version": v.version,
        "log_index": v.log_index,
        "published_at": v.created_at,
        "agreement": orjson.Fragment(v.body),
    }


@router.get("/agreements", tags=["partners"], response_class=JSON, responses=ok(wire.Agreements))
async def agreements(svc: Svc) -> JSON:
    """Every partner's current agreement, each with the log index it was published at."""
    out = []
    for p in await svc.partners.all():
        versions = await svc.partners.versions(p.partner_id)
        out.append(
            {"partner_id": p.partner_id, "name": p.name, "current": version_json(versions[-1])}
        )
    return JSON({"partners": out})


@router.get(
    "/agreements/{partner_id}",
    tags=["partners"],
    response_class=JSON,
    responses=ok(wire.AgreementHistory) | problems(404),
)
async def agreement(partner_id: str, svc: Svc) -> JSON:
    """Every version of one partner's agreement, oldest first, with log indexes."""
    versions = await svc.partners.versions(partner_id)
    return JSON({"partner_id": partner_id, "versions": [version_json(v) for v in versions]})


@router.get("/scopes", tags=["partners"], response_class=JSON, responses=ok(wire.ScopeCatalogue))
async def scopes(svc: Svc) -> JSON:
    """The scope catalogue: each scope in plain words and the endpoints it opens."""
    logged = {v: i for v, _, i in await svc.partners.catalogues()}
    current = catalogue()
    return JSON({**current, "log_index": logged.get(current["version"])})


class ShareIntent(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "title": "The Long Night, episode 3",
                    "url": "https://streamco.example/watch/long-night-3",
                    "description": "I'm watching this",
                }
            ]
        },
    )
    title: str = Field(min_length=1, max_length=200)
    url: str = Field(
        min_length=1, max_length=2000, description="must be in the agreement's link domains"
    )
    image_url: str | None = Field(default=None, max_length=2000)
    description: str | None = Field(default=None, max_length=1000)


@router.post(
    "/partner/share-intents",
    tags=["partner API"],
    status_code=201,
    response_class=JSON,
    responses=ok(wire.CreatedIntent, 201, "Created", headers=_LOG_INDEX) | problems(422),
)
async def create_share_intent(
    body: ShareIntent, svc: Svc, access: Annotated[PartnerAccess, Depends(partner("share:intent"))]
) -> JSON:
    """Suggest something for the user to share. It goes only to the user's own devices; the
    access is in the transparency log before this answer (see the Clearpost-Log-Index header)."""
    created = await svc.shares.create_intent(
        access, body.title, body.url, body.image_url, body.description
    )
    await svc.oauth.touch(access)
    return JSON(
        {
            "intent_id": created.intent_id,
            "expires_at": created.expires_at,
            "log_index": created.log_index,
        },
        status_code=201,
        headers={LOG_INDEX_HEADER: str(created.log_index)},
    )


@router.get(
    "/partner/me",
    tags=["partner API"],
    response_class=JSON,
    responses=ok(wire.PartnerProfile, headers=_LOG_INDEX) | problems(422),
)
async def partner_me(
    svc: Svc, access: Annotated[PartnerAccess, Depends(partner("profile:basic"))]
) -> JSON:
    """``profile:basic``: the user's display name and an id that is different for every partner."""
    profile, index = await svc.shares.profile(access)
    await svc.oauth.touch(access)
    return JSON({**profile, "log_index": index}, headers={LOG_INDEX_HEADER: str(index)})
