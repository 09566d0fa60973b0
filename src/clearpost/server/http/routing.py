"""Routes that parse JSON bodies with orjson.

The standard library's parser accepts lone surrogates (``"\\ud800"``) that are not valid
Unicode and later break encoders and databases; orjson refuses them (and nesting deeper
than 1,024 levels) as malformed JSON, so they come back as 400 ``malformed_json``. A NUL
(``"\\u0000"``), valid JSON that PostgreSQL text cannot hold, is refused before the route
runs: 422 ``nul_character``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from clearpost.core.errors import InvalidInput
from clearpost.core.limits import NUL_MESSAGE, has_nul

_WITH_BODY = {"POST", "PUT", "PATCH"}


def refuse_nul(raw: bytes) -> None:
    """InvalidInput ``nul_character`` if a JSON body's strings hold a NUL. Only a body with
    the escape ``\\u0000`` in it can (JSON allows no raw control characters), so others
    cost one byte search."""
    if b"\\u0000" not in raw:
        return
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return  # the route answers malformed JSON itself
    if has_nul(value):
        raise InvalidInput(NUL_MESSAGE, code="nul_character")


class OrjsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = orjson.loads(
                await self.body()
            )  # orjson.JSONDecodeError is a json.JSONDecodeError
        return self._json


class OrjsonRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def parse_with_orjson(request: Request) -> Response:
            ours = OrjsonRequest(request.scope, request.receive)
            if request.method in _WITH_BODY:
                refuse_nul(await ours.body())  # read once; the route reads the cached copy
            return await handler(ours)

        return parse_with_orjson
