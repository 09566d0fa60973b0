"""Health probes: liveness (the process answers) and readiness (it can reach its database).

They are separate so that an orchestrator restarts a process only when the process itself
is stuck, not when the database is down: a restart would not bring the database back, and
Clearpost recovers by itself when it returns. While the database cannot be reached,
readiness answers 503 ``database_unavailable`` with ``Retry-After``, like every request
that needs the database.
"""

from __future__ import annotations

from fastapi import APIRouter

from clearpost.server.http import wire
from clearpost.server.http.deps import Svc
from clearpost.server.http.openapi import ok

router = APIRouter(tags=["meta"])


@router.get("/health/live", responses=ok(wire.Health))
async def live() -> dict[str, str]:
    """200 while the process runs and its event loop answers; never touches the database."""
    return {"status": "ok"}


@router.get("/health/ready", responses=ok(wire.Ready))
async def ready(svc: Svc) -> dict[str, str]:
    """200 when one database round trip succeeds now; 503 ``database_unavailable`` (with
    ``Retry-After``) when the database cannot be reached."""
    await svc.db.ping()
    return {"status": "ok", "database": "reachable"}


@router.get("/health", responses=ok(wire.Ready))
async def health(svc: Svc) -> dict[str, str]:
    """The same as ``/health/ready`` (kept for the probes and tools that already use it)."""
    return await ready(svc)
