"""The transparency log's pure core: RFC 9162 Merkle trees and C2SP signed formats.

- ``merkle``: leaf/node hashing, tree hash, inclusion and consistency proofs (make and
  verify); ``nodes``: which stored perfect-subtree nodes a proof needs; ``compact``:
  appending leaves and the nodes each append completes.
- ``note``: C2SP signed notes; ``checkpoint``: tlog-checkpoint bodies;
  ``cosignature``: tlog-cosignature (Ed25519 cosignature/v1).

No I/O happens here: storage hands in a ``NodeReader``, and time is passed as a value.
"""

from clearpost.core.tlog.checkpoint import Checkpoint, open_checkpoint
from clearpost.core.tlog.compact import CompactRange, MemoryTree, StoredNode, edge_nodes
from clearpost.core.tlog.cosignature import (
    CosignatureVerifier,
    Cosigner,
    cosign,
    cosigned_message,
    unverified_timestamp,
    verifier_from_vkey,
    verify_cosignature,
)
from clearpost.core.tlog.errors import (
    CheckpointError,
    KeyFormatError,
    NoteError,
    NoteSignatureError,
    ProofError,
    TreeRangeError,
    UnverifiedNoteError,
)
from clearpost.core.tlog.hashing import EMPTY_ROOT, HASH_SIZE, leaf_hash, node_hash
from clearpost.core.tlog.merkle import (
    LeafSource,
    consistency_proof,
    inclusion_proof,
    root_from_leaf_hashes,
    root_from_reader,
    verify_consistency,
    verify_inclusion,
)
from clearpost.core.tlog.nodes import (
    NodeId,
    NodeReader,
    ProofNode,
    consistency_proof_nodes,
    inclusion_proof_nodes,
    node_ids,
    resolve_proof,
    root_node,
)
from clearpost.core.tlog.note import (
    Note,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    Signer,
    Verifier,
    format_note,
    open_note,
    parse_note_unverified,
    sign_note,
)

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "Checkpoint",
    "CheckpointError",
    "CompactRange",
    "CosignatureVerifier",
    "Cosigner",
    "KeyFormatError",
    "LeafSource",
    "MemoryTree",
    "NodeId",
    "NodeReader",
    "Note",
    "NoteError",
    "NoteSignature",
    "NoteSignatureError",
    "NoteSigner",
    "NoteVerifier",
    "ProofError",
    "ProofNode",
    "Signer",
    "StoredNode",
    "TreeRangeError",
    "UnverifiedNoteError",
    "Verifier",
    "consistency_proof",
    "consistency_proof_nodes",
    "cosign",
    "cosigned_message",
    "edge_nodes",
    "format_note",
    "inclusion_proof",
    "inclusion_proof_nodes",
    "leaf_hash",
    "node_hash",
    "node_ids",
    "open_checkpoint",
    "open_note",
    "parse_note_unverified",
    "resolve_proof",
    "root_from_leaf_hashes",
    "root_from_reader",
    "root_node",
    "sign_note",
    "unverified_timestamp",
    "verifier_from_vkey",
    "verify_consistency",
    "verify_cosignature",
    "verify_inclusion",
]
