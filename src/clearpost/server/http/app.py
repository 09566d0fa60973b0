"""The FastAPI app factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import clearpost
from clearpost.core.clock import Clock
from clearpost.server.config import Settings
from clearpost.server.http import errors
from clearpost.server.http.deps import JSON
from clearpost.server.http.middleware import BodyLimit
from clearpost.server.http.routes import accounts, conversations, keys, sync, todevice
from clearpost.server.services.container import build_services
from clearpost.storage.db import Database
from clearpost.storage.listener import StreamListener
from clearpost.storage.migrations import upgrade

log = logging.getLogger("clearpost")


def create_app(settings: Settings, clock: Clock | None = None) -> FastAPI:
    """Build the app. Migrations run and the PostgreSQL listener starts in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.database_url())
        await upgrade(db)
        services = build_services(settings, db, clock)
        app.state.services = services
        listener = None
        if db.dialect.is_postgres:
            listener = StreamListener(settings.database_url(), services.notifier.publish)
            await listener.start()
        try:
            yield
        finally:
            if listener is not None:
                await listener.stop()
            await db.close()

    app = FastAPI(
        title="Clearpost",
        version=clearpost.__version__,
        description="End-to-end encrypted messaging whose server stores ciphertext only.",
        lifespan=lifespan,
        default_response_class=JSON,
    )
    errors.install(app)
    for module in (accounts, keys, todevice, conversations, sync):
        app.include_router(module.router)

    @app.get("/health", tags=["meta"])
    async def health() -> dict[str, str]:
        await app.state.services.db.ping()
        return {"status": "ok"}

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app
