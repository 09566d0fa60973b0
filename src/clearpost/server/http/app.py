"""The FastAPI app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

import clearpost
from clearpost.core.clock import Clock
from clearpost.server.config import Settings
from clearpost.server.http import docs, errors, wire
from clearpost.server.http.deps import JSON
from clearpost.server.http.fastpath import ClearpostApp
from clearpost.server.http.middleware import BodyLimit
from clearpost.server.http.openapi import describe, ok, operation_id
from clearpost.server.http.routes import (
    accounts,
    conversations,
    keys,
    links,
    log,
    me,
    oauth,
    partners,
    reports,
    sync,
    todevice,
)
from clearpost.server.services.runtime import running


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    """Build the app. Migrations run and the PostgreSQL listener starts in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings, clock) as services:
            app.state.services = services
            yield

    app = ClearpostApp(
        title="Clearpost",
        version=clearpost.__version__,
        description="End-to-end encrypted messaging whose server stores ciphertext only.",
        lifespan=lifespan,
        default_response_class=JSON,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served by http/docs.py from local assets, not from CDNs
        redoc_url=None,
        # no OpenTelemetry: nothing about requests leaves the server, and it saves a
        # per-request environment look-up on every call
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    errors.install(app)
    docs.install(app)
    app.openapi = partial(describe, app)  # type: ignore[method-assign]
    for module in (
        accounts,
        keys,
        todevice,
        conversations,
        sync,
        log,
        partners,
        reports,
        me,
        oauth,
        links,
    ):
        app.include_router(module.router)

    @app.get("/health", tags=["meta"], responses=ok(wire.Health))
    async def health() -> dict[str, str]:
        await app.state.services.db.ping()
        return {"status": "ok"}

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
