"""Repeat lookups (``lookup_since``): a contact that verified a version of someone's device
list asks from it, and is sent only what is new, through the real server and SDK."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from clearpost.client import Client
from clearpost.client.directory import DirectoryVerificationFailed
from tests.integration.test_keydir_adversarial import ALICE, second_device
from tests.unit.client.partners import FAST, PASSWORD, partnered


def shown(answer: dict[str, Any]) -> tuple[list[tuple[int, bool]], list[int]]:
    """(present versions with whether each is opened, absent versions) of an answer."""
    present = [(p["version"], "value" in p) for p in answer["present"]]
    return present, [a["version"] for a in answer["absent"]]


async def test_a_contact_is_sent_only_what_is_new_since_the_version_it_verified(
    tmp_path: Path,
) -> None:
    async with partnered(tmp_path) as w:
        answers: list[dict[str, Any]] = []

        def keep(body: bytes) -> bytes:
            answers.append(orjson.loads(body))
            return body

        w.tamper.rewrites[f"/v1/keydir/devices/{ALICE}"] = keep
        directory = w.bob.crypto.directory
        first = await directory.lookup(ALICE)
        assert first.version == 0 and shown(answers[-1]) == ([(0, True)], [1])
        # still version 0: no value, no version present, only the ladder's absent one
        again = await directory.lookup(ALICE)
        assert again.version == 0 and again.values == first.values
        assert shown(answers[-1]) == ([], [1])
        assert len(orjson.dumps(answers[-1])) < len(orjson.dumps(answers[0])) * 2 / 3
        # Alice adds her phone: version 1 comes opened, version 0 is not sent again
        phone = await second_device(w, tmp_path, "alice")
        assert len(await directory.devices(ALICE)) == 2
        assert shown(answers[-1]) == ([(1, True)], [2, 3])
        # a device of Bob's that never looked gets the whole ladder
        async with httpx.AsyncClient(transport=w.tamper, base_url="http://test") as via:
            tablet = await Client.login(
                via,
                "bob",
                PASSWORD,
                store_path=tmp_path / "bob-tablet.store",
                passphrase="t",
                kdf=FAST,
                stream=False,
            )
            assert len(await tablet.crypto.directory.devices(ALICE)) == 2
            assert shown(answers[-1]) == ([(1, True)], [2, 3])
            await tablet.close()
        await phone.close()


async def test_a_repeat_lookup_that_goes_back_is_refused(tmp_path: Path) -> None:
    """Bob verified version 5 of Alice's devices (say the server showed it to him once); now
    the directory's greatest is 0: versions are never removed, so Bob's client refuses."""
    async with partnered(tmp_path) as w:
        directory = w.bob.crypto.directory
        await directory.lookup(ALICE)
        w.bob.store.set_meta(f"keydir_seen:{ALICE}", b'{"version": 5, "value": "W10="}')
        with pytest.raises(DirectoryVerificationFailed) as failed:
            await directory.lookup(ALICE)
        assert failed.value.code == "keydir_invalid_proof"
        assert "version 5 was verified before" in failed.value.message
