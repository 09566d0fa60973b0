"""Routes that parse JSON bodies with orjson.

The standard library's parser accepts lone surrogates (``"\\ud800"``) that are not valid
Unicode and later break encoders and databases; orjson refuses them (and nesting deeper
than 1,024 levels) as malformed JSON, so they come back as 400 ``malformed_json``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.responses import Response


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
            return await handler(OrjsonRequest(request.scope, request.receive))

        return parse_with_orjson
