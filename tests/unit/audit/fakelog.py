"""A small honest-or-not log served over ``httpx.MockTransport``, with real crypto.

It speaks the same ``/v1/log/...`` API as the server, from an in-memory tree, and can be
told to misbehave: serve changed or missing entries, wrong proofs, roll back, or fork.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import httpx
import orjson

from clearpost.audit import LogClient
from clearpost.core.tlog import (
    Checkpoint,
    CosignatureVerifier,
    MemoryTree,
    NodeId,
    NoteSignature,
    Signer,
    TreeRangeError,
    leaf_hash,
    parse_note_unverified,
    verify_cosignature,
)
from clearpost.core.tlog.c2sp_tiles import encode_bundle, node_at, parse_tile_path
from clearpost.core.tlog.tiles import nodes_below

ORIGIN = "example.test/log"


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def problem(status: int, code: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "detail": code})


@dataclass
class FakeLog:
    signer: Signer = field(default_factory=lambda: Signer.generate(ORIGIN))
    bodies: list[bytes] = field(default_factory=list)
    checkpoints: dict[int, str] = field(default_factory=dict)
    latest: int = 0
    witnesses: dict[str, CosignatureVerifier] = field(default_factory=dict)
    cosignatures: dict[int, list[str]] = field(default_factory=dict)
    changed: dict[int, bytes] = field(default_factory=dict)
    missing: set[int] = field(default_factory=set)
    wrong_proofs: bool = False
    bad_nodes: dict[NodeId, bytes] = field(default_factory=dict)
    """Stored nodes served wrong in ``/log/nodes/`` tiles (the proofs are left alone)."""
    requests: list[httpx.Request] = field(default_factory=list)

    def grow(self, count: int, tag: str = "e") -> int:
        """Append ``count`` entries and sign a checkpoint of the new size."""
        start = len(self.bodies)
        self.bodies += [f'{{"n":{i},"tag":"{tag}"}}'.encode() for i in range(start, start + count)]
        return self.publish()

    def publish(self) -> int:
        size = len(self.bodies)
        cp = Checkpoint(ORIGIN, size, self.tree(size).root())
        self.checkpoints[size] = cp.sign([self.signer]).decode()
        self.latest = size
        return size

    def tree(self, size: int) -> MemoryTree:
        return MemoryTree(leaf_hash(b) for b in self.bodies[:size])

    def fork(self, keep: int) -> FakeLog:
        """The same log key, the first ``keep`` entries, and nothing after (yet)."""
        other = FakeLog(self.signer, self.bodies[:keep])
        other.checkpoints = {s: n for s, n in self.checkpoints.items() if s <= keep}
        other.latest = max(other.checkpoints, default=0)
        return other

    def roll_back(self, size: int) -> None:
        del self.bodies[size:]
        self.checkpoints = {s: n for s, n in self.checkpoints.items() if s <= size}
        self.latest = size

    def client(self) -> LogClient:
        transport = httpx.MockTransport(self.handle)
        return LogClient(httpx.AsyncClient(transport=transport, base_url="http://log.test"))

    # --- the API ---

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        q = {k: int(v) for k, v in request.url.params.items()}
        path = request.url.path
        tree = self.tree(self.latest)
        if path == "/v1/log/key":
            return httpx.Response(
                200, json={"origin": ORIGIN, "vkey": self.signer.vkey, "witnesses": []}
            )
        if path == "/v1/log/checkpoint":
            lines = self.cosignatures.get(self.latest, [])
            note = self.checkpoints[self.latest] + "".join(line + "\n" for line in lines)
            return httpx.Response(200, text=note)
        if path == "/v1/log/entries":
            start, end = q["start"], q["end"]
            if end > self.latest:
                return problem(422, "invalid_range")
            page = [
                b64(self.changed.get(i, self.bodies[i]))
                for i in range(start, end)
                if i not in self.missing
            ]
            return httpx.Response(200, json={"start": start, "entries": page})
        if path == "/v1/log/proof/inclusion":
            if q["size"] not in self.checkpoints:
                return problem(422, "invalid_tree_size")
            hashes = tree.inclusion_proof(q["index"], q["size"])
            if self.wrong_proofs and hashes:
                hashes[0] = bytes(32)
            return httpx.Response(200, json={"hashes": [b64(h) for h in hashes]})
        if path == "/v1/log/proof/consistency":
            first, second = q["from"], q["to"]
            if first not in self.checkpoints or second not in self.checkpoints:
                return problem(422, "invalid_tree_size")
            hashes = tree.consistency_proof(first, second)
            if self.wrong_proofs and hashes:
                hashes[-1] = bytes(32)
            return httpx.Response(200, json={"hashes": [b64(h) for h in hashes]})
        if path == "/v1/log/cosignatures" and request.method == "POST":
            body = orjson.loads(request.content)
            sig = NoteSignature.from_line(body["cosignature"])
            witness = self.witnesses.get(sig.name)
            if witness is None:
                return problem(422, "unknown_witness")
            text, _ = parse_note_unverified(self.checkpoints[body["size"]])
            verify_cosignature(text, sig, witness)
            have = self.cosignatures.setdefault(body["size"], [])
            if body["cosignature"] in have:
                return problem(409, "already_cosigned")
            have.append(body["cosignature"])
            return httpx.Response(204)
        if path.startswith(("/log/tile/entries/", "/log/nodes/")):
            return self._tile(path)
        return problem(404, "not_found")

    def _tile(self, path: str) -> httpx.Response:
        """Entry bundles and stored tiles, cut from the tree at the latest size."""
        nodes = path.startswith("/log/nodes/")
        req = parse_tile_path(path.removeprefix("/log/nodes/" if nodes else "/log/tile/"))
        if req is None:
            return problem(404, "tile_not_found")
        if req.level is None:
            first = req.index * 256
            if first + req.width > self.latest:
                return problem(404, "tile_not_found")
            bodies = [
                self.changed.get(i, self.bodies[i])
                for i in range(first, first + req.width)
                if i not in self.missing
            ]
            return httpx.Response(200, content=encode_bundle(bodies))
        tree = self.tree(self.latest)
        hashes = []
        for position in range(nodes_below(req.width)):
            node = node_at(req.level, req.index, position)
            try:
                hashes.append(self.bad_nodes.get(node) or tree.read(node))
            except TreeRangeError:
                return problem(404, "tile_not_found")
        return httpx.Response(200, content=b"".join(hashes))
