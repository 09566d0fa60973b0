"""The FastAPI app factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

import clearpost
from clearpost.core.clock import Clock
from clearpost.server.config import Settings
from clearpost.server.http import docs, errors
from clearpost.server.http.deps import JSON
from clearpost.server.http.fastpath import ClearpostApp
from clearpost.server.http.metrics import Metrics
from clearpost.server.http.middleware import BodyLimit, SecurityHeaders
from clearpost.server.http.observe import Observer
from clearpost.server.http.openapi import describe, operation_id
from clearpost.server.http.routes import (
    accounts,
    agreement_page,
    conversations,
    health,
    home,
    keydir,
    keys,
    links,
    log,
    me,
    oauth,
    partners,
    reports,
    sync,
    tiles,
    todevice,
    webapp,
)
from clearpost.server.services.container import Services
from clearpost.server.services.runtime import running


def observe(app: ClearpostApp, settings: Settings, services: Services) -> Callable[[], None]:
    """Start the metrics endpoint and the access log, as the settings ask; returns what
    stops them. Raises OSError when the metrics port cannot be listened on."""
    metrics = None
    if settings.metrics_port:
        metrics = Metrics(services.stats, asyncio.get_running_loop())
        metrics.start(settings.metrics_host, settings.metrics_port)
    if metrics is not None or settings.access_log:
        app.observer = Observer(metrics, settings.access_log)

    def stop() -> None:
        app.observer = None
        if metrics is not None:
            metrics.stop()

    return stop


def create_app(settings: Settings, clock: Clock | None = None) -> ClearpostApp:
    """Build the app. Migrations run and the PostgreSQL listener starts in the lifespan."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with running(settings, clock) as services:
            app.state.services = services
            stop_observing = observe(app, settings, services)
            try:
                yield
            finally:
                stop_observing()

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
        health,
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
        home,
        agreement_page,
        webapp,
        tiles,
        keydir,
    ):
        app.include_router(module.router)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
