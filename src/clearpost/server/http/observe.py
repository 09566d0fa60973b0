"""Timing every HTTP request once, for the metrics and the access log.

Both name a request by the route template it matched (``route_label``), its method and
its status, never by its path: paths carry user ids, conversation ids and link tokens.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clearpost.server.http.metrics import Metrics

access = logging.getLogger("clearpost.access")

# The fast path answers these before FastAPI routes them (server/http/fastpath.py).
_MESSAGE_ROUTE = "/v1/conversations/{conversation_id}/messages/{txn_id}"
_FAST_ROUTES = {"/v1/sync", "/v1/log/proof/inclusion", "/v1/log/proof/consistency"}


def route_label(scope: Scope) -> str:
    """The route template a request matched, or ``unmatched``: bounded label values."""
    route = scope.get("route")
    if route is not None and isinstance(getattr(route, "path", None), str):
        return str(route.path)
    path: str = scope.get("path", "")
    if path in _FAST_ROUTES:
        return path
    parts = path.split("/")
    if len(parts) == 6 and parts[1:3] == ["v1", "conversations"] and parts[4] == "messages":
        return _MESSAGE_ROUTE
    return "unmatched"


class Observer:
    """Wraps the app: records each request in ``metrics`` and, if on, the access log."""

    def __init__(self, metrics: Metrics | None, access_log: bool) -> None:
        self.metrics, self.access_log = metrics, access_log

    async def __call__(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await app(scope, receive, sending)
        finally:
            elapsed = time.perf_counter() - start
            route, method = route_label(scope), scope["method"]
            if self.metrics is not None:
                self.metrics.requests.labels(route, method, str(status)).observe(elapsed)
            if self.access_log:
                client = scope.get("client")
                address = client[0] if client else "-"
                access.info(
                    '%s "%s %s" %d %.1f ms',
                    address,
                    method,
                    route,
                    status,
                    elapsed * 1000,
                    extra={
                        "client": address,
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
