/**
 * RFC 9162 §2.1 Merkle proofs, verified in the browser: the same steps as the server's
 * `core/tlog/merkle.py`. Sizes and indexes are BigInt (JavaScript's bit operators are
 * 32-bit, and a tree size is an unsigned 64-bit number). Each check throws `ProofError`.
 */
import { concat, equal, sha256 } from "./bytes";

export class ProofError extends Error {}

export const HASH_SIZE = 32;
const MAX_TREE_SIZE = (1n << 64n) - 1n;
const MAX_PROOF_LENGTH = 65;

/** SHA-256(0x00 || entry bytes): the leaf of one log entry. */
export function leafHash(data: Uint8Array): Promise<Uint8Array> {
  return sha256(new Uint8Array([0]), data);
}

/** SHA-256(0x01 || left || right): an interior node. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Promise<Uint8Array> {
  return sha256(concat(new Uint8Array([1]), left, right));
}

/** That `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`
 * (RFC 9162 §2.1.3.2). */
export async function verifyInclusion(
  leaf: Uint8Array,
  index: bigint,
  size: bigint,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): Promise<void> {
  checkSizes(index, size);
  const path = checkHashes(proof, leaf, root);
  // 1. leaf_index must be smaller than tree_size.
  if (index >= size) throw new ProofError("leaf index is not smaller than the tree size");
  // 2.-3.
  let fn = index;
  let sn = size - 1n;
  let r = leaf;
  // 4.
  for (const p of path) {
    if (sn === 0n) throw new ProofError("inclusion proof is too long");
    if (fn & 1n || fn === sn) {
      r = await nodeHash(p, r);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  // 5.
  if (sn !== 0n) throw new ProofError("inclusion proof is too short");
  if (!equal(r, root)) throw new ProofError("inclusion proof does not lead to the root");
}

/** That the tree of `m` leaves with `rootM` is a prefix of the tree of `n` with `rootN`
 * (RFC 9162 §2.1.4.2; equal sizes need equal roots and an empty proof). */
export async function verifyConsistency(
  m: bigint,
  n: bigint,
  rootM: Uint8Array,
  rootN: Uint8Array,
  proof: readonly Uint8Array[],
): Promise<void> {
  checkSizes(m, n);
  const path = checkHashes(proof, rootM, rootN);
  if (m > n) throw new ProofError("old tree size is larger than the new one");
  if (m === n) {
    if (path.length) throw new ProofError("a proof between equal sizes must be empty");
    const empty = await sha256(new Uint8Array());
    if (!equal(rootM, rootN) || (m === 0n && !equal(rootM, empty))) {
      throw new ProofError("roots differ for the same tree size");
    }
    return;
  }
  if (m === 0n) throw new ProofError("a consistency proof from the empty tree proves nothing");
  // 1.
  if (!path.length) throw new ProofError("consistency proof is empty");
  // 2.
  if ((m & (m - 1n)) === 0n) path.unshift(rootM);
  // 3.-4.
  let fn = m - 1n;
  let sn = n - 1n;
  while (fn & 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  // 5.
  let fr = path[0];
  let sr = path[0];
  // 6.
  for (const c of path.slice(1)) {
    if (sn === 0n) throw new ProofError("consistency proof is too long");
    if (fn & 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (!(fn & 1n) && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  // 7.
  if (sn !== 0n) throw new ProofError("consistency proof is too short");
  if (!equal(fr, rootM)) throw new ProofError("consistency proof does not lead to the old root");
  if (!equal(sr, rootN)) throw new ProofError("consistency proof does not lead to the new root");
}

function checkSizes(a: bigint, b: bigint): void {
  for (const v of [a, b]) {
    if (typeof v !== "bigint" || v < 0n || v > MAX_TREE_SIZE) {
      throw new ProofError("tree sizes and indexes must be unsigned 64-bit integers");
    }
  }
}

function checkHashes(proof: readonly Uint8Array[], ...hashes: Uint8Array[]): Uint8Array[] {
  for (const h of hashes) {
    if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) {
      throw new ProofError(`hashes must be ${HASH_SIZE} bytes`);
    }
  }
  if (!Array.isArray(proof) || proof.length > MAX_PROOF_LENGTH) {
    throw new ProofError(`a proof is a list of at most ${MAX_PROOF_LENGTH} hashes`);
  }
  if (!proof.every((p) => p instanceof Uint8Array && p.length === HASH_SIZE)) {
    throw new ProofError(`proof hashes must be ${HASH_SIZE} bytes`);
  }
  return [...proof];
}
