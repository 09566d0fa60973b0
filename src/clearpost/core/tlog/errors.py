"""Errors of the transparency-log core.

Each has a stable machine ``code``. They all derive from ``InvalidInput``: whatever a
proof, note, key or checkpoint came from, rejecting it is a verdict on data someone
handed us, never a server fault. Messages name public facts only (sizes, key names,
key ids), never key material.
"""

from __future__ import annotations

from clearpost.core.errors import InvalidInput, SignatureInvalid


class ProofError(InvalidInput):
    """An inclusion or consistency proof that does not prove what it claims."""

    code = "invalid_proof"


class TreeRangeError(InvalidInput):
    """A proof or root was requested for an index or size the tree cannot have."""

    code = "invalid_tree_range"


class NoteError(InvalidInput):
    """A signed note that breaks the C2SP signed-note syntax or our size limits."""

    code = "invalid_note"


class NoteSignatureError(SignatureInvalid):
    """A signature from a known key that does not verify (the whole note is rejected)."""

    code = "invalid_signature"


class UnverifiedNoteError(NoteSignatureError):
    """A well-formed note that carries no signature from any key the caller trusts."""

    code = "unverified_note"


class CheckpointError(InvalidInput):
    """A note text that is not a valid C2SP tlog-checkpoint body."""

    code = "invalid_checkpoint"


class KeyFormatError(InvalidInput):
    """A verifier or signer key string, or key material, that is malformed or inconsistent."""

    code = "invalid_key"
