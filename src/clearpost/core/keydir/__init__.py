"""The key directory's pure core (issue #17): VRF, commitments, prefix tree, proofs.

- ``vrf``: RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI (labels to tree indexes);
- ``commit``: the per-version commitment to a label's value;
- ``tree``: the prefix tree over VRF outputs, its batched proofs and epoch transitions;
- ``proofs``: lookup, absence and history proofs bundling the above.

Layouts and hashing are documented in docs/key-directory.md. No I/O happens here.
"""
