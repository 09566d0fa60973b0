"""The key directory's pure core (issue #17): VRF, commitments, prefix tree, proofs.

- ``vrf``: RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI (labels to tree indexes);
- ``commit``: the per-version commitment to a label's value (a module: ``commit.commit``);
- ``tree``: the prefix tree over VRF outputs, its batched proofs and epoch transitions;
- ``proofs``: lookup, absence and history proofs bundling the above.

Layouts and hashing are documented in docs/key-directory.md. No I/O happens here.
"""

from clearpost.core.keydir.commit import label_input, new_opening
from clearpost.core.keydir.errors import (
    DuplicateIndex,
    KeyDirFormatError,
    KeyDirProofError,
    VrfInvalid,
)
from clearpost.core.keydir.prefix_proof import PrefixProof, SearchResult
from clearpost.core.keydir.proofs import (
    Bundle,
    Present,
    check_absence,
    check_history,
    check_lookup,
    history_absent,
    index_of,
    lookup_ladder,
    prove_absence,
    prove_history,
    prove_lookup,
    verify_bundle,
)
from clearpost.core.keydir.tree import PrefixTree, prove_update, verify_prefix_proof, verify_update
from clearpost.core.keydir.vrf import VrfSecretKey, proof_to_hash, verify

__all__ = [
    "Bundle",
    "DuplicateIndex",
    "KeyDirFormatError",
    "KeyDirProofError",
    "PrefixProof",
    "PrefixTree",
    "Present",
    "SearchResult",
    "VrfInvalid",
    "VrfSecretKey",
    "check_absence",
    "check_history",
    "check_lookup",
    "history_absent",
    "index_of",
    "label_input",
    "lookup_ladder",
    "new_opening",
    "proof_to_hash",
    "prove_absence",
    "prove_history",
    "prove_lookup",
    "prove_update",
    "verify",
    "verify_bundle",
    "verify_prefix_proof",
    "verify_update",
]
