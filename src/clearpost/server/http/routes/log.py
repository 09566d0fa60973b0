"""The public transparency log: checkpoints, entries, proofs, cosignatures; and "about me"."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from clearpost.core.limits import MAX_JSON_INT, MAX_SQL_INT
from clearpost.core.tlog.entries import commitment
from clearpost.server.http import wire
from clearpost.server.http.deps import JSON, Auth, Svc
from clearpost.server.http.openapi import empty, ok, problems, raw
from clearpost.server.http.routing import OrjsonRoute
from clearpost.server.services.container import Services

router = APIRouter(prefix="/v1", tags=["transparency log"], route_class=OrjsonRoute)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class Cosignature(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int = Field(
        ge=0, le=MAX_JSON_INT, description="the tree size of the checkpoint that was cosigned"
    )
    cosignature: str = Field(max_length=1000, description="the C2SP signed-note signature line")


@router.get(
    "/log/checkpoint",
    response_class=Response,
    responses=raw(
        200,
        "The C2SP signed note",
        content={"text/plain; charset=utf-8": {"schema": {"type": "string"}}},
    )
    | problems(404, s404="No checkpoint with that many cosignatures yet"),
)
async def checkpoint(
    svc: Svc,
    cosigned: int = Query(0, ge=0, le=100, description="least number of witness cosignatures"),
) -> Response:
    """The latest C2SP tlog-checkpoint as a signed note, with the cosignatures collected so far.
    With ``cosigned=N``: the latest checkpoint that has at least N cosignatures."""
    note = await svc.log.checkpoint(cosigned)
    return Response(note, media_type="text/plain; charset=utf-8")


@router.get("/log/key", response_class=JSON, responses=ok(wire.LogKey))
async def key(svc: Svc) -> JSON:
    """The log's origin and verifier key, and the witnesses whose cosignatures it keeps."""
    return JSON(
        {
            "origin": svc.log.origin,
            "vkey": svc.log.signer.vkey,
            "witnesses": svc.settings.witness_vkeys(),
        }
    )


@router.get("/log/entries", response_class=JSON, responses=ok(wire.Entries) | problems(422))
async def entries(
    svc: Svc,
    start: int = Query(ge=0, le=MAX_SQL_INT),
    end: int = Query(ge=1, le=MAX_SQL_INT),
) -> JSON:
    """Entries ``[start, end)`` as base64 of their exact canonical-JSON bytes (at most 1,000)."""
    bodies = await svc.log.entries(start, end)
    return JSON({"start": start, "entries": [b64(b) for b in bodies]})


@router.get(
    "/log/proof/inclusion", response_class=JSON, responses=ok(wire.InclusionProof) | problems(422)
)
async def inclusion(
    svc: Svc,
    index: int = Query(ge=0, le=MAX_SQL_INT),
    size: int = Query(ge=1, le=MAX_SQL_INT),
) -> JSON:
    """RFC 9162 inclusion proof of entry ``index`` in the tree of a published ``size``."""
    return JSON(await inclusion_body(svc, index, size))


@router.get(
    "/log/proof/consistency",
    response_class=JSON,
    responses=ok(wire.ConsistencyProof) | problems(422),
)
async def consistency(
    svc: Svc,
    first: int = Query(alias="from", ge=1, le=MAX_SQL_INT),
    second: int = Query(alias="to", ge=1, le=MAX_SQL_INT),
) -> JSON:
    """RFC 9162 consistency proof between two published tree sizes."""
    return JSON(await consistency_body(svc, first, second))


async def inclusion_body(svc: Services, index: int, size: int) -> dict[str, Any]:
    """The inclusion proof response (also answered by the fast path, ``fastpath.py``)."""
    proof = await svc.log.inclusion(index, size)
    return {"index": index, "size": size, "hashes": [b64(h) for h in proof.hashes]}


async def consistency_body(svc: Services, first: int, second: int) -> dict[str, Any]:
    """The consistency proof response (also answered by the fast path)."""
    proof = await svc.log.consistency(first, second)
    return {"from": first, "to": second, "hashes": [b64(h) for h in proof.hashes]}


@router.post(
    "/log/cosignatures",
    status_code=204,
    responses=empty("Kept") | problems(409, 422),
)
async def add_cosignature(body: Cosignature, svc: Svc) -> None:
    """A witness submits its cosignature; only keys in the configured witness list are kept."""
    await svc.log.add_cosignature(body.size, body.cosignature)


@router.get(
    "/me/log-entries",
    response_class=JSON,
    responses=ok(wire.MyEntries) | problems(422, s422="`size` is not a published checkpoint size"),
)
async def my_entries(
    caller: Auth,
    svc: Svc,
    start: int = Query(0, ge=0, le=2**62, description="the first log index to consider"),
    limit: int = Query(1000, ge=1, le=1000, description="entries per page"),
    size: int | None = Query(
        None, ge=1, le=2**62, description="prove against this published checkpoint size"
    ),
) -> JSON:
    """The entries about you, a page at a time (``total`` counts them all; fetch the next page
    from ``next_start`` until it is null), each with its inclusion proof and the opening of
    its own subject commitment (the nonce, and for a device entry the device id and keys):
    only your devices get the openings and your salt. Pass the first page's checkpoint
    ``size`` to later pages so that every page is proven against the same tree. Entries
    from before format version 2 have no opening: the salt alone opens their ``subject``."""
    page = await svc.log.entries_about(caller.user_id, start, limit, size)
    cp = page.checkpoint
    return JSON(
        {
            "user_id": caller.user_id,
            "salt": b64(page.salt),
            "subject": commitment(page.salt, caller.user_id),
            "checkpoint": cp.note if cp else None,
            "size": cp.size if cp else None,
            "total": page.total,
            "next_start": page.next_start,
            "entries": [
                {
                    "index": e.index,
                    "entry": b64(e.body),
                    "opening": None if e.opening is None else orjson.Fragment(e.opening),
                    "proof": None if p is None else [b64(h) for h in p],
                }
                for e, p in page.entries
            ],
        }
    )
