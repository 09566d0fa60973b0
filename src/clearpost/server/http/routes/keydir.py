"""The key directory (issue 17): its VRF key, proofs for labels, each epoch's changes."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Path, Query

from clearpost.core.ids import parse_user_id
from clearpost.core.keydir.commit import MAX_VERSION
from clearpost.core.keydir_labels import DEVICES
from clearpost.core.limits import MAX_SQL_INT
from clearpost.server.http import wire
from clearpost.server.http.deps import JSON, Auth, Svc
from clearpost.server.http.openapi import ok, problems
from clearpost.server.http.routing import OrjsonRoute
from clearpost.server.services.keydir import Anchored

router = APIRouter(prefix="/v1", tags=["key directory"], route_class=OrjsonRoute)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _since(description: str) -> Any:
    """The optional ``since`` query parameter: a version a client verified before."""
    return Query(None, ge=0, le=MAX_VERSION, description=description)


def answer(found: Anchored) -> dict[str, Any]:
    return {
        "epoch": found.epoch.epoch,
        "log_index": found.epoch.log_index,
        "entry": _b64(found.entry),
        "checkpoint": found.checkpoint,
        "size": found.size,
        "inclusion": [_b64(h) for h in found.inclusion],
        **found.bundle.to_json(),
    }


@router.get("/keydir/key", response_class=JSON, responses=ok(wire.KeyDirKey) | problems(503))
async def key(svc: Svc) -> JSON:
    """The directory's VRF public key (labels are VRF outputs under it) and its heartbeat.

    Every epoch's log entry states both too; clients verify with the ones it states."""
    return JSON(
        {
            "vrf_public_key": _b64(svc.keydir.vrf_public_key),
            "heartbeat_seconds": svc.settings.keydir_heartbeat_seconds,
            "log_seconds": svc.settings.keydir_log_seconds,
            "log_origin": svc.log.origin,
        }
    )


@router.get(
    "/keydir/devices/{user_id}",
    response_class=JSON,
    responses=ok(wire.KeyDirAnswer) | problems(404, 422, 503),
)
async def lookup_devices(
    user_id: str,
    caller: Auth,
    svc: Svc,
    since: int | None = _since(
        "the greatest version of this account you verified before: the ladder versions up "
        "to it are left out, and its value too if it is still the greatest"
    ),
) -> JSON:
    """The greatest version of ``devices:<user_id>`` with its value (the signed keys of the
    account's devices) and proof, or the proof that the label has no version: verify it
    before encrypting to any of the account's devices."""
    del caller
    parse_user_id(user_id, svc.settings.server_name)
    return JSON(answer(await svc.keydir.lookup(DEVICES, user_id, since)))


@router.get(
    "/me/keydir/devices",
    response_class=JSON,
    responses=ok(wire.KeyDirAnswer) | problems(404, 503),
)
async def my_device_history(
    caller: Auth,
    svc: Svc,
    since: int | None = _since(
        "the greatest version this device verified before: only the versions after it are "
        "shown (none while it is still the greatest)"
    ),
) -> JSON:
    """Your own ``devices:`` label: its versions (all of them, or those after ``since``)
    opened, and absent the versions above the greatest that any lookup of a later version
    would show (docs/key-directory.md)."""
    return JSON(answer(await svc.keydir.history(DEVICES, caller.user_id, since)))


@router.get(
    "/me/keydir/log",
    response_class=JSON,
    responses=ok(wire.KeyDirLogAnswer) | problems(404, 503),
)
async def my_log_label(caller: Auth, svc: Svc) -> JSON:
    """The greatest version of your ``log:`` label: how many log entries are about you and
    the hash chain of their indexes (``clearpost me log --verify`` checks the list), and the
    epochs that show when they were counted."""
    found, counted = await svc.keydir.log_label(caller.user_id)
    shown = [
        {
            "epoch": c.epoch,
            "log_index": c.log_index,
            "entry": _b64(c.entry),
            "inclusion": [_b64(h) for h in c.inclusion],
        }
        for c in counted
    ]
    return JSON(answer(found) | {"counted": shown})


@router.get(
    "/keydir/epochs/{epoch}",
    response_class=JSON,
    responses=ok(wire.KeyDirEpoch) | problems(404),
)
async def epoch_changes(svc: Svc, epoch: int = Path(ge=0, le=MAX_SQL_INT)) -> JSON:
    """What epoch ``epoch`` inserted (VRF index and commitment of each new version), and
    the proof that recomputes its root from the previous epoch's root with every existing
    leaf unchanged."""
    found, before, leaves, proof = await svc.keydir.epoch_changes(epoch)
    return JSON(
        {
            "epoch": found.epoch,
            "root": _b64(found.root),
            "previous_root": None if before is None else _b64(before.root),
            "log_index": found.log_index,
            "through": found.through,
            "time": found.created_at,
            "inserted": [{"index": _b64(i), "commitment": _b64(c)} for i, c in leaves],
            "proof": _b64(proof),
        }
    )
