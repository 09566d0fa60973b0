"""The FastAPI app factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import clearpost
from clearpost.core.clock import Clock
from clearpost.core.errors import ClearpostError
from clearpost.server.config import Settings
from clearpost.server.http import errors
from clearpost.server.http.deps import JSON
from clearpost.server.http.fastpath import ClearpostApp
from clearpost.server.http.middleware import BodyLimit
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
from clearpost.server.services.container import build_services
from clearpost.server.services.logkey import load_or_create
from clearpost.storage.db import Database
from clearpost.storage.listener import StreamListener
from clearpost.storage.migrations import upgrade
from clearpost.storage.sql.tlog import LogStore


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    """Build the app. Migrations run and the PostgreSQL listener starts in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url())
        await upgrade(db)
        signer = load_or_create(settings.log_key_path(), settings.log_origin)
        on_record = await LogStore(db).bind_key(signer.vkey)
        if on_record != signer.vkey:
            await db.close()
            raise ClearpostError(
                f"this database's log is signed by {on_record}, but "
                f"{settings.log_key_path()} holds {signer.vkey}; "
                "give every server process the same log key file",
                code="log_key_mismatch",
            )
        services = build_services(settings, db, signer, clock)
        app.state.services = services
        await services.partners.publish_catalogue()  # the scope catalogue is logged before use
        sequencer = asyncio.create_task(services.log.run_sequencer(), name="clearpost-sequencer")
        scheduler = asyncio.create_task(
            services.reports.run_scheduler(), name="clearpost-report-scheduler"
        )
        listener = None
        if db.dialect.is_postgres:
            listener = StreamListener(
                settings.database_url(), services.notifier.publish, services.accounts.forget
            )
            await listener.start()
        try:
            yield
        finally:
            scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scheduler
            sequencer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sequencer
            if listener is not None:
                await listener.stop()
            await db.close()

    app = ClearpostApp(
        title="Clearpost",
        version=clearpost.__version__,
        description="End-to-end encrypted messaging whose server stores ciphertext only.",
        lifespan=lifespan,
        default_response_class=JSON,
        # no OpenTelemetry: nothing about requests leaves the server, and it saves a
        # per-request environment look-up on every call
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    errors.install(app)
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

    @app.get("/health", tags=["meta"])
    async def health() -> dict[str, str]:
        await app.state.services.db.ping()
        return {"status": "ok"}

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
