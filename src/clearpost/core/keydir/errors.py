"""Errors of the key directory's core.

All derive from ``InvalidInput``: rejecting a VRF proof, a tree proof or an epoch transition is
a verdict on data someone handed us. Messages name public facts only (sizes, depths, versions),
never secret keys or openings.
"""

from __future__ import annotations

from clearpost.core.errors import InvalidInput


class VrfInvalid(InvalidInput):
    """A VRF public key or proof that is malformed or does not verify (RFC 9381 "INVALID")."""

    code = "invalid_vrf_proof"


class KeyDirProofError(InvalidInput):
    """A prefix-tree, lookup, absence, history or epoch-update proof that proves nothing."""

    code = "invalid_keydir_proof"


class KeyDirFormatError(InvalidInput, ValueError):
    """Bytes, JSON or sizes that do not follow a documented key-directory layout (also a
    ``ValueError``: the same check refuses a caller's wrong argument)."""

    code = "invalid_keydir_format"


class DuplicateIndex(InvalidInput):
    """An insert of an index the tree already holds (leaves are never modified)."""

    code = "keydir_duplicate_index"
