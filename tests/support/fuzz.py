"""Fuzz a real ``clearpost serve`` with schemathesis, from its own ``/openapi.json``.

The server is fuzzed as three kinds of caller: nobody (no token), a user's device (a user
access token, the device's keys published) and a partner (an OAuth access token from the
authorization-code flow with ``profile:basic share:intent``, and a client-credentials token
with ``reports:read``). Every response must be a non-5xx answer that the OpenAPI
describes: its status, its content type and its body's schema.

Operations that would end the caller's own token (``POST /v1/logout``, deleting its
device, revoking the partner from the user's side) are fuzzed without a token only, so that
one early call does not turn the rest of the run into 401s.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support import api, partner
from tests.support.server import ServerProcess

CHECKS = (
    "not_a_server_error,response_schema_conformance,status_code_conformance,"
    "content_type_conformance"
)
"""The checks every fuzzed response must pass."""

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@dataclass(frozen=True)
class Mode:
    name: str
    token: str | None
    exclude: tuple[str, ...] = ()
    include_tag: str | None = None


@dataclass
class Outcome:
    mode: str
    returncode: int
    output: str
    failures: int

    @property
    def passed(self) -> bool:
        return self.returncode == 0


def register_partner(server: ServerProcess, data_dir: Path, database: str) -> tuple[str, str]:
    """Register the test agreement with the operator CLI; returns (client_id, secret)."""
    agreement = data_dir / "streamco.toml"
    agreement.write_text(partner.AGREEMENT)
    out = subprocess.run(
        [
            *(sys.executable, "-m", "clearpost", "partner", "register", str(agreement)),
            *("--data-dir", str(data_dir), "--database", database, "--json"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    body = json.loads(out.stdout)
    return str(body["client_id"]), str(body["client_secret"])


async def partner_tokens(server: ServerProcess, client_id: str, secret: str) -> tuple[str, str]:
    """A user-granted token (profile:basic share:intent) and a client-credentials token."""
    from authlib.common.security import generate_token
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        verifier = generate_token(48)
        query = httpx.QueryParams(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": partner.REDIRECT,
                "scope": "profile:basic share:intent",
                "state": "fuzz",
                "code_challenge": create_s256_code_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        done = await partner.approve(http, f"/oauth/authorize?{query}", "fuzzer", api.PASSWORD)
        code = partner.code_from(done)["code"][0]
        auth = (client_id, secret)
        granted = await http.post(
            "/oauth/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": partner.REDIRECT,
                "code_verifier": verifier,
            },
            auth=auth,
        )
        assert granted.status_code == 200, granted.text
        cc = await http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": "reports:read"},
            auth=auth,
        )
        assert cc.status_code == 200, cc.text
        return str(granted.json()["access_token"]), str(cc.json()["access_token"])


async def user_token(server: ServerProcess) -> str:
    """A registered user ("fuzzer") with a device whose keys are published."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        device = await api.user(http, "fuzzer")
        return device.access_token


def modes(user: str, granted: str, reports: str) -> list[Mode]:
    # their only methods are POST, DELETE and DELETE; schemathesis reuses ids it has seen in
    # answers, so it would delete the fuzzing device itself
    ends_token = ("/v1/logout", "/v1/me/apps/{partner_id}", "/v1/devices/{device_id}")
    return [
        Mode("anonymous", None),
        Mode("partner", granted, exclude=ends_token),
        Mode("partner-reports", reports, include_tag="partner API"),
        Mode("user", user, exclude=ends_token),
    ]


def run(
    server: ServerProcess,
    mode: Mode,
    report_dir: Path,
    examples: int,
    seed: int,
    checks: str = CHECKS,
) -> Outcome:
    """One schemathesis run; the process's exit code says whether any check failed."""
    report = report_dir / f"{mode.name}.json"
    cmd = [
        str(SCHEMATHESIS),
        "run",
        f"{server.url}/openapi.json",
        *("--checks", checks),
        # stateful follows OpenAPI links, which a run filtered to one tag leaves dangling
        *("--phases", "examples,coverage,fuzzing" + ("" if mode.include_tag else ",stateful")),
        *("--max-examples", str(examples)),
        *("--seed", str(seed)),
        *("--workers", "1"),  # hypothesis' lambda descriptions are not thread-safe
        *("--max-redirects", "0"),
        *("--request-timeout", "20"),
        "--no-shrink",
        "--suppress-health-check",
        "all",
        *("--report", "json", "--report-json-path", str(report)),
        *("--output-truncate", "true"),
    ]
    if mode.token:
        cmd += ["--header", f"Authorization: Bearer {mode.token}"]
    for path in mode.exclude:
        cmd += ["--exclude-path", path]
    if mode.include_tag:
        cmd += ["--include-tag", mode.include_tag]
    # cwd: schemathesis keeps a .schemathesis/ cache in the working directory
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=report_dir)
    return Outcome(mode.name, done.returncode, done.stdout + done.stderr, _failures(report))


def _failures(report: Path) -> int:
    """How many distinct failures the JSON report lists (0 when it has none or is missing)."""
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return -1
    return len(data.get("failures", [])) if isinstance(data, dict) else -1
