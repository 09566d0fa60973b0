"""The log side of C2SP tlog-witness: push each new checkpoint to the configured witnesses.

For every witness with a submission URL (setting ``log_witness_urls``), the log sends
``POST <url>/add-checkpoint`` with the checkpoint and the RFC 9162 consistency proof from
the size that witness cosigned last, and keeps the cosignature it gets back (verified,
like any other, by ``LogService.add_cosignature``). The log does not store what each
witness cosigned last: it starts from ``old 0`` and, when the witness answers 409 with
its size, retries once from that size (the spec's way to learn it). The pull mode
(``clearpost witness run`` posting to ``/v1/log/cosignatures``) stays as it was.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from dataclasses import dataclass

import httpx

from clearpost.core.errors import ClearpostError, Conflict
from clearpost.core.tlog import CosignatureVerifier
from clearpost.server.services.tlog import LogService
from clearpost.storage.sql.tlog import StoredCheckpoint

log = logging.getLogger("clearpost.tlog.witness")

PUSH_SECONDS = 0.5
SIZE_TYPE = "text/x.tlog.size"


@dataclass
class WitnessTarget:
    verifier: CosignatureVerifier
    url: str
    """The witness's submission prefix (``add-checkpoint`` is appended)."""
    known: int | None = None
    """The size this witness cosigned last, as far as the log knows."""


def parse_targets(spec: str, witnesses: list[CosignatureVerifier]) -> list[WitnessTarget]:
    """``name=url,name=url``; each name must be one of the configured witness keys."""
    by_name = {w.name: w for w in witnesses}
    targets = []
    for item in (i.strip() for i in spec.split(",")):
        if not item:
            continue
        name, eq, url = item.partition("=")
        if not eq or not url.startswith(("http://", "https://")):
            raise ValueError(f"log_witness_urls: {item!r} is not name=http(s)://url")
        if name not in by_name:
            raise ValueError(f"log_witness_urls: {name!r} is not a key in log_witnesses")
        targets.append(WitnessTarget(by_name[name], url.rstrip("/")))
    return targets


class WitnessPusher:
    """Sends new checkpoints to witnesses; one round per integration tick."""

    def __init__(self, service: LogService, targets: list[WitnessTarget]) -> None:
        self.log, self.targets = service, targets
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))

    async def run(self) -> None:
        """Forever: push the latest checkpoint to each witness that lacks it."""
        try:
            while True:
                with contextlib.suppress(Exception):
                    await self.push_once()
                await asyncio.sleep(PUSH_SECONDS)
        finally:
            await self._http.aclose()

    async def push_once(self) -> None:
        latest = await self.log.store.latest()
        if latest is None:
            return
        await asyncio.gather(*(self._push(t, latest) for t in self.targets))

    async def _push(self, target: WitnessTarget, latest: StoredCheckpoint) -> None:
        if target.known == latest.size:
            return
        for _ in range(2):  # a 409 tells us the witness's size: one retry from there
            old = target.known or 0
            if old > latest.size:
                log.error(
                    "witness %s cosigned size %d, larger than this log's %d: rolled back?",
                    target.verifier.name,
                    old,
                    latest.size,
                )
                return
            try:
                body = await self._body(old, latest)
                response = await self._http.post(target.url + "/add-checkpoint", content=body)
            except (httpx.HTTPError, ClearpostError) as exc:
                log.warning("witness %s: %s", target.verifier.name, exc)
                return
            if response.status_code == 409 and response.headers.get("content-type", "").startswith(
                SIZE_TYPE
            ):
                with contextlib.suppress(ValueError):
                    target.known = int(response.text.strip())
                    continue
            if response.status_code != 200:
                log.warning(
                    "witness %s refused size %d: %d %s",
                    target.verifier.name,
                    latest.size,
                    response.status_code,
                    response.text[:200],
                )
                return
            await self._keep(target, latest.size, response.text)
            return

    async def _body(self, old: int, latest: StoredCheckpoint) -> bytes:
        proof: list[bytes] = []
        if 0 < old < latest.size:
            proof = (await self.log.consistency(old, latest.size)).hashes
        lines = "".join(base64.b64encode(h).decode() + "\n" for h in proof)
        return (f"old {old}\n" + lines + "\n" + latest.note).encode()

    async def _keep(self, target: WitnessTarget, size: int, text: str) -> None:
        for line in text.splitlines():
            if not line.startswith("\u2014 " + target.verifier.name + " "):
                continue  # the spec: ignore cosignatures from keys we do not know
            try:
                await self.log.add_cosignature(size, line)
            except Conflict:
                pass  # kept already
            except ClearpostError as exc:
                log.warning("witness %s sent a bad cosignature: %s", target.verifier.name, exc)
                return
        target.known = size
