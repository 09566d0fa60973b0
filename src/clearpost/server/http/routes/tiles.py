"""The log as C2SP tlog-tiles, under the prefix ``/log`` (the default origin, minus scheme).

- ``GET /log/checkpoint``: the latest checkpoint with its cosignatures (as
  ``/v1/log/checkpoint``), cacheable for two seconds.
- ``GET /log/tile/<L>/<N>[.p/<W>]``: hash tiles; ``GET /log/tile/entries/<N>[.p/<W>]``:
  entry bundles. Full ones never change: ``Cache-Control: public, max-age=31536000,
  immutable`` and a strong ETag; partial ones: ``max-age=60``.
- ``GET /log/nodes/<L>/<N>[.p/<W>]`` (Clearpost only): the stored tile with all the nodes
  of its eight levels, for auditors that check every node proofs are served from.

These requests are answered on the ASGI fast path (``serve``, called from
``fastpath.py``) without FastAPI's routing; the FastAPI routes below answer the same way
through the same function and document the endpoints in OpenAPI.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from clearpost.core.errors import ClearpostError, NotFound
from clearpost.core.tlog.c2sp_tiles import parse_tile_path
from clearpost.server.http.errors import problem, problem_for
from clearpost.server.http.openapi import problems
from clearpost.server.services.container import Services

log = logging.getLogger("clearpost.http")

PREFIX = "/log"
_TILE = PREFIX + "/tile/"
_NODES = PREFIX + "/nodes/"
_CHECKPOINT = PREFIX + "/checkpoint"
IMMUTABLE = "public, max-age=31536000, immutable"
PARTIAL = "public, max-age=60"
CHECKPOINT_CACHE = "public, max-age=2"
OCTETS = "application/octet-stream"
_NOSNIFF = (b"x-content-type-options", b"nosniff")

router = APIRouter(prefix=PREFIX, tags=["transparency log: C2SP tlog-tiles"])


def handles(path: str) -> bool:
    """True for the paths this module answers."""
    return path == _CHECKPOINT or path.startswith((_TILE, _NODES))


async def answer(
    svc: Services, path: str, if_none_match: str | None
) -> tuple[int, bytes, list[tuple[str, str]]]:
    """Status, body and headers for a tiles request (``handles(path)`` is true)."""
    try:
        if path == _CHECKPOINT:
            note = (await svc.log.checkpoint(0)).encode()
            return (
                200,
                note,
                [
                    ("content-type", "text/plain; charset=utf-8"),
                    ("cache-control", CHECKPOINT_CACHE),
                ],
            )
        nodes = path.startswith(_NODES)
        req = parse_tile_path(path.removeprefix(_NODES if nodes else _TILE))
        if req is None:
            raise NotFound("not a tlog-tiles path", code="tile_not_found")
        body = await (svc.tiles.stored(req) if nodes else svc.tiles.resource(req))
    except ClearpostError as exc:
        response = problem_for(exc)
        return (
            response.status_code,
            bytes(response.body),
            [
                ("content-type", "application/problem+json"),
                ("cache-control", "no-store"),
            ],
        )
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = [("cache-control", PARTIAL if req.partial else IMMUTABLE), ("etag", etag)]
    if if_none_match is not None and etag in (t.strip() for t in if_none_match.split(",")):
        return 304, b"", headers
    return 200, body, [("content-type", OCTETS), *headers]


async def serve(svc: Services, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer a tiles request as a raw ASGI app (the fast path)."""
    if_none_match = None
    for key, value in scope["headers"]:
        if key == b"if-none-match":
            if_none_match = value.decode("latin-1")
    try:
        status, body, headers = await answer(svc, scope["path"], if_none_match)
    except Exception:  # a bug, or the database is down: a problem, never a bare 500
        log.exception("tile request failed")
        failed = problem(500, "Internal Server Error", "internal_error", "the server failed")
        status, body = 500, bytes(failed.body)
        headers = [("content-type", "application/problem+json"), ("cache-control", "no-store")]
    raw = [(k.encode(), v.encode()) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    raw.append(_NOSNIFF)  # what SecurityHeaders adds to every response through FastAPI
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def _through_fastapi(request: Request) -> Response:
    svc: Services = request.app.state.services
    status, body, headers = await answer(
        svc, request.url.path, request.headers.get("if-none-match")
    )
    return Response(body, status_code=status, headers=dict(headers))


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the tile or entry bundle's bytes",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    },
    304: {"description": "the ETag given in If-None-Match is current"},
}
_RESPONSES.update(problems(404, s404="no such resource (yet): problem `tile_not_found`"))


@router.get("/checkpoint", response_class=Response)
async def checkpoint(request: Request) -> Response:
    """The latest checkpoint (C2SP tlog-checkpoint signed note) with its cosignatures."""
    return await _through_fastapi(request)


@router.get("/tile/{path:path}", response_class=Response, responses=_RESPONSES)
async def tile(request: Request, path: str) -> Response:
    """A hash tile ``<L>/<N>[.p/<W>]`` or an entry bundle ``entries/<N>[.p/<W>]``,
    exactly per C2SP tlog-tiles."""
    return await _through_fastapi(request)


@router.get("/nodes/{path:path}", response_class=Response, responses=_RESPONSES)
async def nodes(request: Request, path: str) -> Response:
    """Clearpost extension: the stored tile ``<L>/<N>[.p/<W>]`` with every node of its eight
    levels, in the order the tree completes them (``core/tlog/tiles.py``)."""
    return await _through_fastapi(request)
