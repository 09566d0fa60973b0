"""The OpenAPI description, made true: problems, security schemes, response bodies.

FastAPI describes what it can see: request models, and a 422 ``HTTPValidationError`` that
this server never sends (``errors.py`` answers RFC 9457 problems, 400 for bad parameters).
Routes declare their success body and their domain errors with ``ok()`` and
``problems()``; ``describe()`` then adds what follows from how a route is wired, the same
way for every route:

* the security requirement, read from the route's dependencies (``deps.caller``: a user's
  bearer token; ``deps.partner(scope)``: a partner's OAuth token with that scope), with the
  401, 403 and 429 problems that authentication can answer;
* 400 (``malformed_json``, ``invalid_parameter``) where a route takes a body or parameters,
  422 (``invalid_request``) where it takes a body;
* 413 on every operation: the body limit (``middleware.BodyLimit``) is checked for every
  request, before routing.

``tests/integration/test_openapi_fuzz.py`` fuzzes the result with schemathesis and fails on
any answer it does not describe.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from clearpost.core.partners.scopes import SCOPES
from clearpost.server.http import deps, wire

PROBLEM = "application/problem+json"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

_MEANING = {
    400: "Bad request: malformed JSON, a bad parameter, transaction id or cursor",
    401: "No valid access token (missing_token, invalid_token)",
    403: "Not allowed (for example a partner token on a user endpoint, or a missing scope)",
    404: "Not found (or not visible to you)",
    409: "Conflicts with what is stored",
    413: "The request body is over the limit",
    422: "The body is well-formed JSON but not acceptable (invalid_request lists the fields)",
    429: "Rate limited; retry after the Retry-After header's seconds",
    503: "The database cannot be reached for now (database_unavailable); retry after the "
    "Retry-After header's seconds",
}


_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer realm"}},
    429: {
        "Retry-After": {
            "schema": {"type": "integer"},
            "description": "seconds to wait before trying again",
        }
    },
    503: {
        "Retry-After": {
            "schema": {"type": "integer"},
            "description": "seconds to wait before trying again",
        }
    },
}


def problems(*statuses: int, **meanings: str) -> Responses:
    """``responses=`` entries: each status answered with a problem (``s404="..."`` words it)."""
    out: Responses = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "description": meanings.get(f"s{status}", _MEANING.get(status, "Error")),
            "content": {PROBLEM: {"schema": _PROBLEM_REF}},
        }
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


Responses = dict[int | str, dict[str, Any]]


def empty(description: str, status: int = 204) -> Responses:
    """A ``responses=`` entry for an answer without a body."""
    return {status: {"description": description}}


def raw(status: int, description: str, **entry: Any) -> Responses:
    """A ``responses=`` entry spelled out (HTML pages, redirects, plain text)."""
    return {status: {"description": description, **entry}}


def ok(
    model: type[BaseModel], status: int = 200, description: str = "OK", **more: Any
) -> Responses:
    """A ``responses=`` entry for the success body (documented, never validated at run time)."""
    return {status: {"model": model, "description": description, **more}}


def operation_id(route: APIRoute) -> str:
    """``<module>_<function>``, e.g. ``conversations_send``: stable, readable names for
    generated clients (FastAPI's default spells the path and method into every one)."""
    module = getattr(route.endpoint, "__module__", "").rsplit(".", 1)[-1]
    return f"{module}_{route.name}"


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependants(sub)


def _security(route: APIRoute) -> list[dict[str, list[str]]] | None:
    for sub in _dependants(route.dependant):
        if sub.call is deps.caller:
            return [{"userBearer": []}]
        scope = getattr(sub.call, "required_scope", None)
        if scope is not None:
            return [{"partnerOAuth": [scope]}]
    return None


_PARTNER_CLIENT_ROUTES = {"/oauth/token", "/oauth/revoke", "/oauth/introspect"}


def _schemes() -> dict[str, Any]:
    user_scopes = {n: s.description for n, s in SCOPES.items() if s.grant == "user"}
    partner_scopes = {n: s.description for n, s in SCOPES.items() if s.grant == "partner"}
    return {
        "userBearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "A device's access token from POST /v1/login. Partner tokens are "
            "refused on these endpoints (403 scope_not_allowed).",
        },
        "partnerOAuth": {
            "type": "oauth2",
            "description": "A partner app's access token (prefix cpo_), sent as "
            "'Authorization: Bearer <token>'. User scopes come from the authorization code "
            "flow with PKCE (S256 required); reports:read from client credentials.",
            "flows": {
                "authorizationCode": {
                    "authorizationUrl": "/oauth/authorize",
                    "tokenUrl": "/oauth/token",
                    "refreshUrl": "/oauth/token",
                    "scopes": user_scopes,
                },
                "clientCredentials": {"tokenUrl": "/oauth/token", "scopes": partner_scopes},
            },
        },
        "partnerClient": {
            "type": "http",
            "scheme": "basic",
            "description": "The partner's client_id and client_secret (client_secret_basic); "
            "client_secret_post form fields work too.",
        },
    }


_NO_DATABASE = {"/health/live", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
"""Routes answered without the database: never a 503."""


def _add(responses: dict[str, Any], *statuses: int) -> None:
    for status, entry in problems(*statuses).items():
        responses.setdefault(str(status), entry)


def _fix_422(responses: dict[str, Any], has_body: bool) -> None:
    """FastAPI's 422 HTTPValidationError is not what this server sends: a bad body is a 422
    problem (``invalid_request``), a bad parameter a 400 (``invalid_parameter``)."""
    entry = responses.get("422")
    if entry and "HTTPValidationError" in str(entry):
        del responses["422"]
        if has_body:
            responses["422"] = problems(422)[422]


def _routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every API route, including those of lazily included routers."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _routes(included.routes)
        elif isinstance(route, APIRoute):
            yield route


def describe(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app``, built once and cached on it."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = FastAPI.openapi(app)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (wire.Problem, wire.OAuthError):
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas[model.__name__] = body
    components["securitySchemes"] = _schemes()
    for route in _routes(app.routes):
        if not route.include_in_schema:
            continue
        for method in (route.methods or set()) - {"HEAD"}:
            operation = schema["paths"].get(route.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            _fix_422(responses, route.body_field is not None)
            security = _security(route)
            if security is not None:
                operation["security"] = security
                _add(responses, 401, 403, 429)
            elif route.path_format in _PARTNER_CLIENT_ROUTES:
                operation["security"] = [{"partnerClient": []}, {}]
            if operation.get("parameters") or operation.get("requestBody"):
                _add(responses, 400)
            if route.body_field is not None:
                _add(responses, 422)
            _add(responses, 413)
            if route.path_format not in _NO_DATABASE:
                _add(responses, 503)
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused not in str(schema["paths"]):
            schemas.pop(unused, None)
    app.openapi_schema = schema
    return schema
