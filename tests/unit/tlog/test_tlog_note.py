"""C2SP signed notes: golang sumdb/note and C2SP known answers, strict parsing, limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearpost.core.tlog import (
    KeyFormatError,
    NoteError,
    NoteSignature,
    NoteSignatureError,
    Signer,
    UnverifiedNoteError,
    Verifier,
    format_note,
    open_note,
    parse_note_unverified,
    sign_note,
)
from clearpost.core.tlog.note import MAX_NOTE_BYTES, MAX_SIGNATURES

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "tlog"
DATA: dict[str, Any] = json.loads((VECTORS / "signed_note.json").read_text(encoding="utf-8"))
GO = DATA["golang_sumdb_note"]
C2SP = DATA["c2sp_signed_note"]

PETER = Verifier.from_vkey(GO["peter_vkey"])
ENOCH = Verifier.from_vkey(GO["enoch_vkey"])
TEXT: str = GO["text"]
PETER_SIG: str = GO["peter_sig_line"]
ENOCH_SIG: str = GO["enoch_sig_line"]


def test_golang_verifier_key_parses() -> None:
    assert PETER.name == "PeterNeumann"
    assert PETER.key_id == 0xC74F20A3
    assert PETER.vkey == GO["peter_vkey"]


def _manglings(key: str) -> list[str]:
    raw = key.encode()
    subs = [
        raw[i:j].decode()
        for i in range(len(raw) + 1)
        for j in range(i + 1, len(raw) + 1)
        if (i, j) != (0, len(raw))
    ]
    bumped = [(raw[:i] + bytes([raw[i] + 1]) + raw[i + 1 :]).decode() for i in range(len(raw))]
    return subs + bumped


def test_every_mangled_golang_verifier_key_is_rejected() -> None:
    for bad in [*_manglings(GO["peter_vkey"]), *GO["bad_vkeys"]]:
        with pytest.raises(KeyFormatError):
            Verifier.from_vkey(bad)


def test_golang_signer_key_parses_and_matches_its_verifier() -> None:
    signer = Signer.from_skey(GO["peter_skey"])
    assert (signer.name, signer.key_id) == (PETER.name, PETER.key_id)
    assert signer.public_key == PETER.public_key
    assert signer.reveal_skey() == GO["peter_skey"]


def test_every_mangled_golang_signer_key_is_rejected() -> None:
    for bad in _manglings(GO["peter_skey"]):
        with pytest.raises(KeyFormatError) as info:
            Signer.from_skey(bad)
        assert "AYEKFALVFGyNhPJ" not in str(info.value)  # never echo the secret


def test_golang_sign_known_answer() -> None:
    signer = Signer.from_skey(GO["peter_skey"])
    assert sign_note(TEXT, [signer]) == GO["signed_by_peter"].encode()


def test_signing_replaces_an_old_signature_by_the_same_key() -> None:
    signer = Signer.from_skey(GO["peter_skey"])
    stale = NoteSignature(signer.name, signer.key_id, b"BADSIGN")
    assert sign_note(TEXT, [signer], keep=[stale]) == GO["signed_by_peter"].encode()


def test_sign_rejects_text_without_final_newline() -> None:
    with pytest.raises(NoteError):
        sign_note("abc", [Signer.from_skey(GO["peter_skey"])])


def test_c2sp_example_note_verifies() -> None:
    note = open_note(C2SP["note"].encode(), [Verifier.from_vkey(C2SP["vkey"])])
    assert note.text == C2SP["text"]
    assert [(s.name, s.key_id) for s in note.signatures] == [("example.com/foo", 0x530D903A)]


def test_open_with_one_known_and_one_unknown_key() -> None:
    note = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [PETER])
    assert note.text == TEXT
    assert [s.to_line() for s in note.signatures] == [PETER_SIG]
    assert [s.to_line() for s in note.unverified] == [ENOCH_SIG]
    assert note.to_bytes() == (TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode()


def test_open_with_both_keys_known() -> None:
    note = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), [PETER, ENOCH])
    assert [s.to_line() for s in note.signatures] == [PETER_SIG, ENOCH_SIG]
    assert note.unverified == ()


def test_open_without_a_known_key_is_unverified() -> None:
    with pytest.raises(UnverifiedNoteError) as info:
        open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, [])
    assert info.value.code == "unverified_note"


def test_two_verifiers_for_the_same_key_are_refused() -> None:
    with pytest.raises(KeyFormatError):
        open_note(TEXT + "\n" + ENOCH_SIG, [ENOCH, PETER, ENOCH])


def test_more_than_the_signature_limit_is_malformed() -> None:
    assert MAX_SIGNATURES == 100
    for verifiers in ([PETER], []):
        with pytest.raises(NoteError):
            open_note(TEXT + "\n" + PETER_SIG * 101, verifiers)
    assert len(open_note(TEXT + "\n" + PETER_SIG * 100, [PETER]).signatures) == 1


def _insert_abcd(line: str) -> str:
    raw = line.encode()  # golang inserts at byte offset 60
    return (raw[:60] + b"ABCD" + raw[60:]).decode()


def test_a_bad_signature_from_a_known_key_rejects_the_note() -> None:
    with pytest.raises(NoteSignatureError) as info:
        open_note(TEXT + "\n" + _insert_abcd(PETER_SIG), [PETER])
    assert info.value.code == "invalid_signature"


def test_duplicate_signatures_are_reported_once() -> None:
    bad_enoch = _insert_abcd(ENOCH_SIG)
    msg = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + bad_enoch
    note = open_note(msg, [PETER])
    assert [s.to_line() for s in note.signatures] == [PETER_SIG]
    assert [s.to_line() for s in note.unverified] == [ENOCH_SIG, bad_enoch]


@pytest.mark.parametrize("msg", GO["malformed_notes"])
def test_golang_malformed_notes(msg: str) -> None:
    with pytest.raises(NoteError):
        open_note(msg.encode(), [PETER])


def test_invalid_utf8_is_malformed() -> None:
    with pytest.raises(NoteError):
        open_note(bytes.fromhex(GO["malformed_note_invalid_utf8_hex"]), [PETER])


SIGNED = TEXT + "\n" + PETER_SIG


@pytest.mark.parametrize(
    "msg",
    [
        SIGNED.replace("\n", "\r\n"),  # CRLF
        SIGNED.replace("problem,", "problem,\t"),  # a control character in the text
        SIGNED.replace("— ", "-- "),  # ASCII dashes
        SIGNED.replace("— ", "—"),  # no space after the dash
        SIGNED.replace("PeterNeumann ", "PeterNeumann  "),  # two spaces
        SIGNED.replace("PeterNeumann", "Peter+Neumann"),  # plus in the name
        SIGNED.replace("PeterNeumann ", "PeterNeumann\u00a0"),  # a Unicode space
        SIGNED.replace("JnAM=", "JnAN="),  # non-canonical base64 (spare bits set)
        SIGNED.replace("JnAM=", "JnAM"),  # missing padding
        TEXT + "\n" + "— PeterNeumann AAAAAA==\n",  # key id and nothing else
        TEXT + "\n" + "— PeterNeumann \n",  # empty signature
        TEXT + "\n\n" + PETER_SIG[:-1],  # no final newline
        "\n" + PETER_SIG,  # no text at all: the blank line is the first line
    ],
)
def test_strict_parsing_rejects(msg: str) -> None:
    with pytest.raises(NoteError):
        open_note(msg, [PETER])


def test_notes_over_the_size_limit_are_rejected() -> None:
    big = "x" * (MAX_NOTE_BYTES - 10) + "\n"
    with pytest.raises(NoteError):
        open_note(big + "\n" + PETER_SIG, [PETER])
    with pytest.raises(NoteError):
        sign_note(big, [Signer.from_skey(GO["peter_skey"])])


def test_text_may_contain_blank_lines() -> None:
    signer = Signer.generate("example.com/log")
    text = "first\n\nthird\n\n"
    note = open_note(sign_note(text, [signer]), [signer.verifier()])
    assert note.text == text


def test_format_note_checks_what_it_writes() -> None:
    sig = NoteSignature.from_line(PETER_SIG)
    with pytest.raises(NoteError):
        format_note(TEXT, [])
    with pytest.raises(NoteError):
        format_note(TEXT, [sig] * (MAX_SIGNATURES + 1))
    with pytest.raises(NoteError):
        format_note(TEXT, [NoteSignature("bad name", 1, b"x")])
    with pytest.raises(NoteError):
        format_note(TEXT, [NoteSignature("name", 2**32, b"x")])


def test_parse_unverified_splits_without_trusting() -> None:
    text, sigs = parse_note_unverified(TEXT + "\n" + PETER_SIG + ENOCH_SIG)
    assert text == TEXT
    assert [(s.name, s.key_id) for s in sigs] == [
        ("PeterNeumann", 0xC74F20A3),
        ("EnochRoot", 0xAF0CFE78),
    ]


def test_key_material_does_not_leak_through_repr() -> None:
    signer = Signer.from_skey(GO["peter_skey"])
    assert "AYEKFALVFGyNhPJ" not in repr(signer)
    assert GO["peter_vkey"] in repr(signer)


def test_keys_reject_bad_names_and_sizes() -> None:
    for name in ["", "a b", "a+b", "a\nb", "a\u2003b"]:
        with pytest.raises(KeyFormatError):
            Signer.from_seed(name, bytes(32))
        with pytest.raises(KeyFormatError):
            Verifier(name, PETER.public_key)
    with pytest.raises(KeyFormatError):
        Signer.from_seed("ok", bytes(31))
    with pytest.raises(KeyFormatError):
        Verifier("ok", bytes(33))
    with pytest.raises(KeyFormatError):  # upper-case hex key id
        Verifier.from_vkey(GO["peter_vkey"].replace("c74f20a3", "C74F20A3"))


note_text = st.text(
    st.characters(
        codec="utf-8",
        exclude_categories=["Cs"],
        exclude_characters=[chr(c) for c in range(32) if c != 10],
    ),
    max_size=200,
).map(lambda s: s + "\n")
SIGNERS = [Signer.from_seed(f"example.com/k{i}", bytes([i]) * 32) for i in range(3)]


@settings(max_examples=150, deadline=None)
@given(note_text, st.sets(st.integers(0, 2), min_size=1), st.sets(st.integers(0, 2)))
def test_any_signed_text_opens_with_its_trusted_keys(
    text: str, signing: set[int], trusted: set[int]
) -> None:
    msg = sign_note(text, [SIGNERS[i] for i in sorted(signing)])
    verifiers = [SIGNERS[i].verifier() for i in sorted(trusted)]
    if not signing & trusted:
        with pytest.raises(UnverifiedNoteError):
            open_note(msg, verifiers)
        return
    note = open_note(msg, verifiers)
    assert note.text == text
    assert {s.name for s in note.signatures} == {SIGNERS[i].name for i in signing & trusted}
    assert {s.name for s in note.unverified} == {SIGNERS[i].name for i in signing - trusted}


@settings(max_examples=150, deadline=None)
@given(note_text, st.data())
def test_any_change_to_the_text_breaks_the_signature(text: str, data: st.DataObject) -> None:
    msg = sign_note(text, [SIGNERS[0]])
    body = text.encode()
    i = data.draw(st.integers(0, len(body) - 1))
    changed = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1 :]
    tampered = changed + msg[len(body) :]
    with pytest.raises((NoteError, NoteSignatureError)):
        open_note(tampered, [SIGNERS[0].verifier()])
