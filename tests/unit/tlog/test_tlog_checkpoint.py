"""C2SP tlog-checkpoint bodies: round trips and strict rejection of every malformation."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearpost.core.tlog import (
    Checkpoint,
    CheckpointError,
    MemoryTree,
    Signer,
    UnverifiedNoteError,
    leaf_hash,
    open_checkpoint,
)

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "tlog"
EXAMPLE: dict[str, Any] = json.loads((VECTORS / "signed_note.json").read_text(encoding="utf-8"))[
    "c2sp_checkpoint"
]
ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()


def test_c2sp_example_body_parses_and_prints_back() -> None:
    checkpoint = Checkpoint.parse(EXAMPLE["text"])
    assert checkpoint.origin == EXAMPLE["origin"]
    assert checkpoint.size == EXAMPLE["size"]
    assert checkpoint.root_hash == base64.b64decode(EXAMPLE["root_hash_b64"])
    assert checkpoint.extensions == ()
    assert checkpoint.to_text() == EXAMPLE["text"]


def test_extension_lines_round_trip() -> None:
    text = f"example.com/log\n0\n{ROOT_B64}\nfirst extension\nsecond\n"
    checkpoint = Checkpoint.parse(text)
    assert checkpoint.size == 0
    assert checkpoint.extensions == ("first extension", "second")
    assert checkpoint.to_text() == text


@pytest.mark.parametrize(
    "text",
    [
        f"example.com/log\n12\n{ROOT_B64}",  # no final newline
        "example.com/log\n12\n",  # no root line
        f"\n12\n{ROOT_B64}\n",  # empty origin
        f"example.com/log\n012\n{ROOT_B64}\n",  # leading zero
        f"example.com/log\n00\n{ROOT_B64}\n",  # zero written twice
        f"example.com/log\n-1\n{ROOT_B64}\n",  # negative
        f"example.com/log\n+1\n{ROOT_B64}\n",  # sign
        f"example.com/log\n 1\n{ROOT_B64}\n",  # space
        f"example.com/log\n1_000\n{ROOT_B64}\n",  # Python's digit grouping
        f"example.com/log\n\u0661\n{ROOT_B64}\n",  # a non-ASCII digit
        f"example.com/log\n{2**64}\n{ROOT_B64}\n",  # beyond uint64
        f"example.com/log\nbananas\n{ROOT_B64}\n",  # not a number
        "example.com/log\n12\nYmFuYW5hcw==\n",  # root of 7 bytes
        f"example.com/log\n12\n{ROOT_B64[:-1]}\n",  # truncated base64
        f"example.com/log\n12\n{ROOT_B64.replace('=', '')}\n",  # unpadded base64
        f"example.com/log\n12\n{ROOT_B64[:-2]}9=\n",  # non-canonical base64
        "example.com/log\n12\nThisIsn'tBase64\n",
        f"example.com/log\n12\n{ROOT_B64}\n\n",  # empty extension line
        f"example.com/log\n12\n{ROOT_B64}\next\n\n",  # trailing empty line
        f"example.com/log\r\n12\n{ROOT_B64}\n",  # carriage return
        f"example.com/\tlog\n12\n{ROOT_B64}\n",  # control character in origin
    ],
)
def test_malformed_checkpoints_are_rejected(text: str) -> None:
    with pytest.raises(CheckpointError) as info:
        Checkpoint.parse(text)
    assert info.value.code == "invalid_checkpoint"


def test_constructor_validates_too() -> None:
    for args in [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        ("log", -1, ROOT),
        ("log", True, ROOT),
        ("log", 1, ROOT[:31]),
        ("log", 2**64, ROOT),
    ]:
        with pytest.raises(CheckpointError):
            Checkpoint(*args)
    with pytest.raises(CheckpointError):
        Checkpoint("log", 1, ROOT, ("",))


origins = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1, max_size=40
)
extensions = st.lists(origins, max_size=3).map(tuple)


@settings(max_examples=200, deadline=None)
@given(origins, st.integers(0, 2**64 - 1), st.binary(min_size=32, max_size=32), extensions)
def test_any_checkpoint_round_trips(
    origin: str, size: int, root: bytes, ext: tuple[str, ...]
) -> None:
    checkpoint = Checkpoint(origin, size, root, ext)
    assert Checkpoint.parse(checkpoint.to_text()) == checkpoint


def test_open_checkpoint_checks_signature_and_origin() -> None:
    tree = MemoryTree(leaf_hash(bytes([i])) for i in range(5))
    log = Signer.generate("example.com/log")
    checkpoint = Checkpoint("example.com/log", tree.size, tree.root())
    signed = checkpoint.sign([log])
    opened, note = open_checkpoint(signed, [log.verifier()], origin="example.com/log")
    assert opened == checkpoint
    assert note.text == checkpoint.to_text()
    with pytest.raises(CheckpointError):
        open_checkpoint(signed, [log.verifier()], origin="example.com/other")
    with pytest.raises(UnverifiedNoteError):
        open_checkpoint(signed, [Signer.generate("example.com/log").verifier()], origin="x")
