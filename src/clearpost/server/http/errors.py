"""The only place that maps domain errors to HTTP: RFC 9457 problem responses.

Every error body is ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail`` and a stable machine ``code``. Anything the client did wrong is a 4xx; a
database that cannot be reached is a 503 with ``Retry-After`` (not a bug, not a 500).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from clearpost.core.errors import (
    ClearpostError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    StoredDataDamaged,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("clearpost.http")

_STATUS: list[tuple[type[ClearpostError], int, str]] = [
    (StoredDataDamaged, 500, "Internal Server Error"),
    (RateLimited, 429, "Too Many Requests"),
    (PayloadTooLarge, 413, "Content Too Large"),
    (Unauthenticated, 401, "Unauthorized"),
    (Forbidden, 403, "Forbidden"),
    (NotFound, 404, "Not Found"),
    (Conflict, 409, "Conflict"),
    (InvalidInput, 422, "Unprocessable Content"),
    (Unavailable, 503, "Service Unavailable"),
]
_BAD_REQUEST_CODES = {"malformed_json", "invalid_cursor", "invalid_parameter", "invalid_txn_id"}


def problem(status: int, title: str, code: str, detail: str, **extra: Any) -> Response:
    body = {
        "type": f"urn:clearpost:problem:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return Response(orjson.dumps(body), status_code=status, media_type="application/problem+json")


_DAMAGE_SEEN: set[str] = set()
_DAMAGE_SEEN_MAX = 1000


def _log_damage_once(exc: StoredDataDamaged) -> None:
    """Each distinct damage once per process: a broken row asked for a thousand times is
    one line in the log, not a thousand tracebacks."""
    if exc.message in _DAMAGE_SEEN or len(_DAMAGE_SEEN) >= _DAMAGE_SEEN_MAX:
        return
    _DAMAGE_SEEN.add(exc.message)
    log.error("%s (%s)", exc.message, exc.code)


def problem_for(exc: ClearpostError) -> Response:
    status, title = 400, "Bad Request"
    if isinstance(exc, StoredDataDamaged):
        _log_damage_once(exc)
    for kind, kind_status, kind_title in _STATUS:
        if isinstance(exc, kind):
            status, title = kind_status, kind_title
            break
    if exc.code in _BAD_REQUEST_CODES:
        status, title = 400, "Bad Request"
    response = problem(status, title, exc.code, exc.message, **exc.extra)
    if isinstance(exc, RateLimited | Unavailable):
        response.headers["Retry-After"] = str(max(1, round(exc.retry_after + 0.5)))
    if isinstance(exc, Unauthenticated):
        response.headers["WWW-Authenticate"] = 'Bearer realm="clearpost"'
    return response


TRY_AGAIN_LATER = 1013
"""WebSocket close code (RFC 6455 registry, "Try Again Later") for a stream ended because
the database cannot be reached; the reason is ``<code>;retry_after=<seconds>``."""


def stream_close_for(exc: Unavailable) -> tuple[int, str]:
    """The close code and reason that end a WebSocket stream on ``Unavailable``."""
    return TRY_AGAIN_LATER, f"{exc.code};retry_after={max(1, round(exc.retry_after + 0.5))}"


def _validation(exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem(400, "Bad Request", "malformed_json", "the request body is not valid JSON")
    fields = [
        {
            "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
            "problem": str(e.get("msg")),
        }
        for e in errors[:20]
    ]
    first = fields[0] if fields else {"field": "", "problem": "invalid"}
    detail = f"{first['field'] or 'request'}: {first['problem']}"
    if errors and all(e.get("loc", ("",))[0] in ("query", "path", "header") for e in errors):
        return problem(400, "Bad Request", "invalid_parameter", detail, errors=fields)
    return problem(422, "Unprocessable Content", "invalid_request", detail, errors=fields)


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    400: "bad_request",
}


def install(app: FastAPI) -> None:
    @app.exception_handler(ClearpostError)
    async def _domain(_req: Request, exc: ClearpostError) -> Response:
        return problem_for(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> Response:
        return _validation(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        detail = "no such endpoint" if exc.status_code == 404 else str(exc.detail)
        response = problem(exc.status_code, str(exc.detail), code, detail)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def _unexpected(_req: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return problem(
            500, "Internal Server Error", "internal_error", "the server failed; this is a bug"
        )
