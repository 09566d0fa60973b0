"""Alice's client checks the log entries about her, in-process; a server that changes an
entry, a proof, the salt or the checkpoint is caught with a clear error."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from clearpost.audit import LogClient, LogPin, Witness, generate_witness_key
from clearpost.client import LogVerificationFailed
from clearpost.core.canonical import canonical_json
from clearpost.core.tlog import Checkpoint, Signer
from tests.unit.client.partners import Partnered, partnered

ME = "/v1/me/log-entries"


def rewrite(change: Callable[[dict[str, Any]], None]) -> Callable[[bytes], bytes]:
    def apply(body: bytes) -> bytes:
        answer = orjson.loads(body)
        change(answer)
        return orjson.dumps(answer)

    return apply


def entry_of(answer: dict[str, Any], kind: str, **fields: str) -> dict[str, Any]:
    for item in answer["entries"]:
        entry = orjson.loads(base64.b64decode(item["entry"]))
        if entry["type"] == kind and all(entry.get(k) == v for k, v in fields.items()):
            return dict(item)
    raise AssertionError(f"no {kind} entry")


async def settled(w: Partnered) -> None:
    """StreamCo read Alice's profile and suggested a share; the log signed it all in."""
    r = await w.streamco.get("http://test/v1/partner/me")
    assert r.status_code == 200, r.text
    await w.suggest()
    await w.integrate()


async def test_alice_sees_every_step_verified(tmp_path: Path) -> None:
    async with partnered(tmp_path) as w:
        await settled(w)
        log = await w.alice.verify_log()
        # the device pinned the log key at its first sync, checking the key directory
        assert not log.trusted_on_first_use and log.pending == 0
        assert log.complete_through is not None  # the list is proven complete (issue 17)
        assert all(e.verified and not e.witnessed for e in log.entries)
        kinds = [(e.type, e.partner, e.scopes, e.endpoint) for e in log.entries]
        assert ("grant", "streamco", ("profile:basic", "share:intent"), None) in kinds
        assert ("access", "streamco", ("profile:basic",), "GET /v1/partner/me") in kinds
        assert ("access", "streamco", ("share:intent",), "POST /v1/partner/share-intents") in kinds
        assert not [e for e in log.entries if e.type == "device"]  # in the key directory now
        info = await LogClient(w.http).key()
        assert (log.origin, log.vkey) == (info.origin, info.vkey)
        salt = orjson.loads((await w.http.get(ME, headers=auth(w))).content)["salt"]
        me = w.alice.user_id.encode()
        assert log.subject == hashlib.sha256(base64.b64decode(salt) + me).hexdigest()

        # the key is pinned now; the log grows and the new checkpoint is proven to extend
        # the one verified before
        await w.alice.revoke_app("streamco")
        later = await w.alice.verify_log(wait=5)
        assert not later.trusted_on_first_use and later.pending == 0
        assert later.checkpoint.size > log.checkpoint.size
        assert later.entries[-1].type == "revocation" and later.entries[-1].verified
        assert "reason: user" in later.entries[-1].what
        # none of Alice's entries is listed for the others (their devices are in the key
        # directory, not in log entries)
        assert [e.type for e in await w.bob.log_entries()] == []


def auth(w: Partnered) -> dict[str, str]:
    return w.alice.transport.auth_headers()


def _change_entry(answer: dict[str, Any]) -> None:
    item = entry_of(answer, "access", scope="profile:basic")
    entry = orjson.loads(base64.b64decode(item["entry"]))
    entry["partner"] = "othertv"  # "it was another app", says the server
    for it in answer["entries"]:
        if it["index"] == item["index"]:
            it["entry"] = base64.b64encode(canonical_json(entry)).decode()


def _wrong_proof(answer: dict[str, Any]) -> None:
    item = entry_of(answer, "grant")
    for it in answer["entries"]:
        if it["index"] == item["index"]:
            it["proof"][0] = base64.b64encode(b"\x00" * 32).decode()


def _wrong_salt(answer: dict[str, Any]) -> None:
    answer["salt"] = base64.b64encode(b"\x01" * 32).decode()
    answer["subject"] = hashlib.sha256(b"\x01" * 32 + b"@alice:clearpost.localhost").hexdigest()


def _moved_entry(answer: dict[str, Any]) -> None:
    answer["entries"][0]["index"] = 0  # someone else's place in the log (the scopes)


def _no_proof(answer: dict[str, Any]) -> None:
    answer["entries"][-1]["proof"] = None


def _forged_checkpoint(answer: dict[str, Any]) -> None:
    text = answer["checkpoint"].split("\n\n")[0] + "\n"
    cp = Checkpoint.parse(text)
    forger = Signer.generate(cp.origin)  # the right name, another key
    answer["checkpoint"] = Checkpoint(cp.origin, cp.size, cp.root_hash).sign([forger]).decode()


def _others_entry(answer: dict[str, Any]) -> None:
    item = answer["entries"][0]
    entry = orjson.loads(base64.b64decode(item["entry"]))
    entry["subject"] = hashlib.sha256(b"someone else").hexdigest()
    item["entry"] = base64.b64encode(canonical_json(entry)).decode()


@pytest.mark.parametrize(
    ("tamper", "code", "words"),
    [
        (_change_entry, "log_not_included", "is not in the log's signed tree"),
        (_wrong_proof, "log_not_included", "entry"),
        (_wrong_salt, "log_subject_mismatch", "not about you"),
        (_moved_entry, "log_not_included", "is not in the log's signed tree"),
        (_no_proof, "log_missing_proof", "without an inclusion proof"),
        (_forged_checkpoint, "log_bad_signature", "not signed by the log key"),
        (_others_entry, "log_subject_mismatch", "not about you"),
    ],
    ids=["changed-entry", "wrong-proof", "wrong-salt", "moved", "no-proof", "forged", "other"],
)
async def test_a_tampered_answer_is_rejected(
    tmp_path: Path, tamper: Callable[[dict[str, Any]], None], code: str, words: str
) -> None:
    async with partnered(tmp_path) as w:
        await settled(w)
        await w.alice.verify_log()  # pins the log key
        w.tamper.rewrites[ME] = rewrite(tamper)
        with pytest.raises(LogVerificationFailed) as failed:
            await w.alice.verify_log()
        assert failed.value.code == code, failed.value.message
        assert words in failed.value.message
        if code in ("log_not_included", "log_missing_proof"):
            assert failed.value.index is not None
            assert f"entry {failed.value.index}" in failed.value.message


async def test_a_wrong_salt_for_the_named_subject_and_a_rollback_are_rejected(
    tmp_path: Path,
) -> None:
    async with partnered(tmp_path) as w:
        await settled(w)
        first = await w.alice.verify_log()

        def salt_only(answer: dict[str, Any]) -> None:
            answer["salt"] = base64.b64encode(b"\x02" * 32).decode()

        w.tamper.rewrites[ME] = rewrite(salt_only)
        with pytest.raises(LogVerificationFailed) as failed:
            await w.alice.verify_log()
        assert failed.value.code == "log_subject_mismatch"
        assert "salt does not open the subject commitment" in failed.value.message

        # the log grows, this device verifies it, then the server shows the old checkpoint
        await w.suggest()
        await w.integrate()
        w.tamper.rewrites.clear()
        await w.alice.verify_log()

        def old(answer: dict[str, Any]) -> None:
            answer["checkpoint"] = first.note
            answer["entries"] = [e for e in answer["entries"] if e["index"] < first.checkpoint.size]

        w.tamper.rewrites[ME] = rewrite(old)
        with pytest.raises(LogVerificationFailed) as rolled:
            await w.alice.verify_log()
        assert rolled.value.code == "log_rollback"


async def test_a_grown_log_that_cannot_prove_it_only_grew_is_rejected(tmp_path: Path) -> None:
    async with partnered(tmp_path) as w:
        await settled(w)
        await w.alice.verify_log()
        await w.suggest()
        await w.integrate()

        def bent(body: bytes) -> bytes:
            answer = orjson.loads(body)
            answer["hashes"][0] = base64.b64encode(b"\x07" * 32).decode()
            return orjson.dumps(answer)

        w.tamper.rewrites["/v1/log/proof/consistency"] = bent
        with pytest.raises(LogVerificationFailed) as failed:
            await w.alice.verify_log()
        assert failed.value.code == "log_inconsistent"
        assert "does not extend" in failed.value.message

        def refused(body: bytes) -> bytes:
            return orjson.dumps({"code": "invalid_tree_size", "detail": "no such checkpoint"})

        w.tamper.rewrites.clear()
        w.tamper.statuses["/v1/log/proof/consistency"] = 422
        w.tamper.rewrites["/v1/log/proof/consistency"] = refused
        with pytest.raises(LogVerificationFailed) as refusal:
            await w.alice.verify_log()
        assert refusal.value.code == "log_inconsistent"
        assert "refused to prove" in refusal.value.message

        w.tamper.rewrites.clear()
        w.tamper.statuses.clear()
        assert (await w.alice.verify_log()).pending == 0  # the honest answer still verifies


async def test_a_key_other_than_the_pinned_one_is_refused(tmp_path: Path) -> None:
    async with partnered(tmp_path) as w:
        await settled(w)
        other = Signer.generate("clearpost.localhost/log").vkey
        # the device pinned the log key at its first sync (checking the key directory)
        with pytest.raises(LogVerificationFailed) as wrong:
            await w.alice.verify_log(vkey=other)
        assert wrong.value.code == "log_key_mismatch"
        await w.alice.verify_log()
        with pytest.raises(LogVerificationFailed) as mismatch:
            await w.alice.verify_log(vkey=other)
        assert mismatch.value.code == "log_key_mismatch"


async def test_witness_cosignatures_are_required_and_checked(tmp_path: Path) -> None:
    cosigner, _ = generate_witness_key("witness.example/w1")
    stranger, _ = generate_witness_key("witness.example/w2")
    async with partnered(tmp_path, log_witnesses=cosigner.vkey) as w:
        await settled(w)
        with pytest.raises(LogVerificationFailed) as none:
            await w.alice.verify_log(witnesses=[cosigner.vkey], cosigned=1)
        assert none.value.code == "log_not_enough_cosignatures"

        client = LogClient(w.http)
        info = await client.key()
        witness = Witness(
            client, cosigner, LogPin(info.origin, info.vkey), None, tmp_path / "w1.json"
        )
        await witness.step()
        log = await w.alice.verify_log(witnesses=[cosigner.vkey], cosigned=1)
        assert log.witnesses == ("witness.example/w1",)
        assert log.witnessed_size == log.checkpoint.size
        assert all(e.verified and e.witnessed for e in log.entries)

        # the log grows past the cosigned checkpoint: older entries stay witnessed
        await w.suggest()
        await w.integrate()
        log = await w.alice.verify_log(witnesses=[cosigner.vkey], cosigned=1)
        assert log.entries[-1].verified and not log.entries[-1].witnessed
        assert log.entries[0].witnessed

        # cosignatures by a witness Alice does not trust do not count
        with pytest.raises(LogVerificationFailed) as untrusted:
            await w.alice.verify_log(witnesses=[stranger.vkey], cosigned=1)
        assert untrusted.value.code == "log_not_enough_cosignatures"
