"""C2SP tlog-witness both ways: Clearpost's log pushes checkpoints to Clearpost's witness
(``clearpost witness serve``) over ``add-checkpoint``, and the witness refuses what the
spec says it must — with the spec's status codes. Real processes on both sides."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from clearpost.audit import generate_witness_key, write_witness_key
from clearpost.core.tlog import (
    Checkpoint,
    CosignatureVerifier,
    Signer,
    Verifier,
    open_checkpoint,
)
from clearpost.server.services.logkey import load_or_create
from tests.support import api
from tests.support.biglog import ORIGIN
from tests.support.server import ServerProcess, free_port, start_server

pytestmark = pytest.mark.timeout(120)


@dataclass
class Setup:
    server: ServerProcess
    witness_url: str
    log_signer: Signer
    witness: CosignatureVerifier


def _wait_port(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the witness exited early")
        try:
            httpx.get(url + "/add-checkpoint", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("the witness did not start")


@pytest.fixture
def setup(tmp_path: Path, db_url: str) -> Iterator[Setup]:
    data = tmp_path / "srv"
    data.mkdir()
    log_signer = load_or_create(data / "log.key", ORIGIN)  # the server will use this key
    cosigner, skey = generate_witness_key("witness.example/push")
    key = tmp_path / "w.key"
    write_witness_key(key, skey)
    port = free_port()
    witness_url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "clearpost", "witness", "serve", "--key", str(key)]
    cmd += ["--log-vkey", log_signer.vkey, "--port", str(port)]
    with (tmp_path / "witness.log").open("wb") as out:
        witness = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    server = None
    try:
        _wait_port(witness_url, witness)
        env = {
            "CLEARPOST_LOG_WITNESSES": cosigner.vkey,
            "CLEARPOST_LOG_WITNESS_URLS": f"{cosigner.name}={witness_url}",
        }
        server = start_server(data, db_url, env)
        yield Setup(server, witness_url, log_signer, CosignatureVerifier.from_vkey(cosigner.vkey))
    finally:
        if server is not None:
            server.stop()
        witness.terminate()
        witness.wait(10)


async def _grow_and_get_cosigned(s: Setup, prefix: str) -> Checkpoint:
    """Add entries; wait until the log holds the witness's cosignature of its latest size."""
    async with httpx.AsyncClient(base_url=s.server.url, timeout=30) as client:
        for i in range(3):
            await api.user(client, f"{prefix}{i}", otks=0)
        for _ in range(150):
            latest = (await client.get("/v1/log/checkpoint")).text
            size = Checkpoint.parse(latest.split("\n\n")[0] + "\n").size
            r = await client.get("/v1/log/checkpoint", params={"cosigned": 1})
            if r.status_code == 200:
                cp, opened = open_checkpoint(
                    r.text, [Verifier.from_vkey(s.log_signer.vkey), s.witness], origin=ORIGIN
                )
                if cp.size == size and s.witness.name in {x.name for x in opened.signatures}:
                    return cp
            await asyncio.sleep(0.1)
    raise AssertionError("the log did not get the witness's cosignature of its latest size")


def _body(old: int, proof: list[bytes], note: bytes) -> bytes:
    lines = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
    return f"old {old}\n".encode() + lines.encode() + b"\n" + note


async def test_the_log_pushes_checkpoints_and_the_witness_refuses_per_the_spec(
    setup: Setup,
) -> None:
    s = setup
    first = await _grow_and_get_cosigned(s, "push")
    second = await _grow_and_get_cosigned(s, "again")  # from the first, with a proof
    assert second.size > first.size

    evil = hashlib.sha256(b"another history").digest()
    add = s.witness_url + "/add-checkpoint"
    async with httpx.AsyncClient(timeout=30) as http:

        async def post(body: bytes) -> httpx.Response:
            return await http.post(add, content=body)

        # Stale: an old size that is not the one cosigned last -> 409 with that size.
        r = await post(_body(first.size, [], second.sign([s.log_signer])))
        assert r.status_code == 409
        assert r.headers["content-type"] == "text/x.tlog.size"
        assert r.text == f"{second.size}\n"
        # Conflicting: the size cosigned last with another root -> 409.
        fork = Checkpoint(ORIGIN, second.size, evil).sign([s.log_signer])
        assert (await post(_body(second.size, [], fork))).status_code == 409
        # A bigger tree whose proof does not verify -> 422.
        bigger = Checkpoint(ORIGIN, second.size + 5, evil).sign([s.log_signer])
        assert (await post(_body(second.size, [evil, evil], bigger))).status_code == 422
        # Not signed by the log's key -> 403; another origin -> 404; old > size -> 400.
        impostor = Signer.generate(ORIGIN)
        forged = Checkpoint(ORIGIN, second.size + 5, evil).sign([impostor])
        assert (await post(_body(second.size, [], forged))).status_code == 403
        other = Signer.generate("other.example/log")
        stranger = Checkpoint("other.example/log", 3, evil).sign([other])
        assert (await post(_body(0, [], stranger))).status_code == 404
        ahead = _body(second.size + 1, [], second.sign([s.log_signer]))
        assert (await post(ahead)).status_code == 400
        assert (await post(b"old 01\n\n" + second.sign([s.log_signer]))).status_code == 400
        assert (await http.get(add)).status_code == 405
        # The same checkpoint again is cosigned again (idempotent).
        again = await post(_body(second.size, [], second.sign([s.log_signer])))
        assert again.status_code == 200 and again.text.startswith("\u2014 witness.example/push ")

    # None of that moved the witness: the log's next checkpoint is cosigned as usual.
    third = await _grow_and_get_cosigned(s, "third")
    assert third.size > second.size
