"""The OpenAPI description is complete enough to generate a client from.

Quick structural checks of ``/openapi.json`` (the slow fuzz test checks real answers
against it): every JSON answer has a real schema, every error is a problem, every
authenticated operation says how to authenticate, FastAPI's 422 shape is gone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clearpost.core.partners.scopes import SCOPES
from clearpost.server.http.app import create_app
from tests.conftest import fast_settings
from tests.integration.test_scope_router import PUBLIC

_HTML_OR_OAUTH = ("/oauth/", "/s/{token}")
_IP_LIMITED = {"POST /v1/accounts", "POST /v1/login", "POST /oauth/login", "GET /s/{token}"}
"""Public operations with a per-client-IP rate limit."""


@pytest.fixture
def schema(tmp_path: Path) -> dict[str, Any]:
    """What ``GET /openapi.json`` serves (building it needs no database)."""
    return create_app(fast_settings(tmp_path)).openapi()


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
    ]


def test_every_json_answer_has_a_schema(schema: dict[str, Any]) -> None:
    for method, path, op in _operations(schema):
        successes = [s for s in op["responses"] if s.startswith("2") or s.startswith("3")]
        assert successes, f"{method} {path} documents no success"
        for status, response in op["responses"].items():
            for media, content in response.get("content", {}).items():
                if "json" in media:
                    body = content.get("schema", {})
                    assert body and body != {"type": "string"}, (
                        f"{method} {path} {status}: declare the body on the route, "
                        "responses=ok(wire.<Model>) (server/http/wire.py, http/openapi.py)"
                    )


def test_errors_are_problems_with_their_schema(schema: dict[str, Any]) -> None:
    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "code"}
    assert "HTTPValidationError" not in str(schema)
    for method, path, op in _operations(schema):
        assert "413" in op["responses"], f"{method} {path}"
        for status, response in op["responses"].items():
            if not status.startswith("4") or path.startswith(_HTML_OR_OAUTH):
                continue
            assert list(response["content"]) == ["application/problem+json"], (method, path)
            assert response["content"]["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }
        if op.get("parameters") or op.get("requestBody"):
            assert "400" in op["responses"], f"{method} {path}: bad parameters are a 400"


def test_security_is_declared_per_operation(schema: dict[str, Any]) -> None:
    schemes = schema["components"]["securitySchemes"]
    assert schemes["userBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["userBearer"]["description"],
    }
    flows = schemes["partnerOAuth"]["flows"]
    assert flows["authorizationCode"]["authorizationUrl"] == "/oauth/authorize"
    assert set(flows["authorizationCode"]["scopes"]) | set(
        flows["clientCredentials"]["scopes"]
    ) == set(SCOPES)
    scoped = {e: name for name, s in SCOPES.items() for e in s.endpoints}
    for method, path, op in _operations(schema):
        key = f"{method} {path}"
        if path in ("/log/tile/{path}", "/log/nodes/{path}"):  # OpenAPI drops ":path"
            key = f"{method} {path[:-1]}:path}}"
        if key in scoped:
            assert op["security"] == [{"partnerOAuth": [scoped[key]]}], key
        elif key in PUBLIC:
            assert op.get("security") in (None, [{"partnerClient": []}, {}]), key
            assert "429" not in op["responses"] or key in _IP_LIMITED, key
        else:
            assert op["security"] == [{"userBearer": []}], key
            assert {"401", "403", "429"} <= set(op["responses"]), key


def test_operation_ids_are_unique_and_readable(schema: dict[str, Any]) -> None:
    ids = [op["operationId"] for _, _, op in _operations(schema)]
    assert len(ids) == len(set(ids))
    assert "conversations_send" in ids and "sync_sync" in ids
