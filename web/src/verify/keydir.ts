/**
 * The key directory's proofs, checked in the browser: the same steps as the server's
 * `core/keydir/` (vrf.py, commit.py, prefix_proof.py, tree.py, proofs.py), documented in
 * docs/key-directory.md. Pure and synchronous: no DOM, no network; works in Node 20 too.
 *
 * - `vrfVerify`: RFC 9381 ECVRF-EDWARDS25519-SHA512-TAI on @noble/curves' edwards25519
 *   arithmetic, as strict as the Python side: the public key and Gamma are canonical points
 *   of the prime-order subgroup (not small order), `s < L`.
 * - `commit`, `labelInput`: the per-version commitment and the VRF input.
 * - `verifyPrefixProof`: rebuild the part of the prefix tree a batched proof shows and
 *   compare its root.
 * - `verifyBundle`, `checkLookup`, `checkAbsence`, `checkHistory`: what a lookup, an absence
 *   or a history must show (the binary ladder of draft-ietf-keytrans-protocol for a lookup).
 *
 * Every refusal throws `KeyDirError` with the Python side's code.
 */
import { ed25519 } from "@noble/curves/ed25519";
import { sha256, sha512 } from "@noble/hashes/sha2";

import { concat, equal, fromBase64, toHex, utf8 } from "./bytes";

export class KeyDirError extends Error {
  constructor(
    message: string,
    readonly code: string = "invalid_keydir_proof",
  ) {
    super(message);
  }
}

const Point = ed25519.Point;
type Pt = InstanceType<typeof Point>;

const SUITE = 0x03;
const C_LEN = 16;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const P = 2n ** 255n - 19n;
const Y_MASK = (1n << 255n) - 1n;
export const PROOF_SIZE = 80;
export const MAX_VERSION = 0xffffffff;

function vrfInvalid(message: string): KeyDirError {
  return new KeyDirError(message, "invalid_vrf_proof");
}

function le(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

function be(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/** A canonical point of the prime-order subgroup, not of small order (libsodium's
 * `crypto_core_ed25519_is_valid_point`), or null. */
function validPoint(bytes: Uint8Array): Pt | null {
  if (bytes.length !== 32) return null;
  try {
    const p = Point.fromBytes(bytes, false); // RFC 8032 decoding: y < p, on the curve
    if (p.isSmallOrder() || !p.isTorsionFree()) return null;
    return p;
  } catch {
    return null;
  }
}

/** RFC 9381 §5.4.1.1 try-and-increment, salted with the public key. */
function encodeToCurve(publicKey: Uint8Array, alpha: Uint8Array): Pt {
  for (let ctr = 0; ctr < 256; ctr++) {
    const h = sha512(concat(new Uint8Array([SUITE, 0x01]), publicKey, alpha, new Uint8Array([ctr, 0x00]))).slice(0, 32);
    if ((le(h) & Y_MASK) >= P) continue;
    let point: Pt;
    try {
      point = Point.fromBytes(h, false);
    } catch {
      continue; // no x for this y
    }
    const cleared = point.multiplyUnsafe(8n);
    if (!cleared.equals(Point.ZERO)) return cleared;
  }
  throw vrfInvalid("no curve point found for this input (probability about 2**-256)");
}

function challenge(...points: Uint8Array[]): Uint8Array {
  return sha512(concat(new Uint8Array([SUITE, 0x02]), ...points, new Uint8Array([0x00]))).slice(0, C_LEN);
}

/** RFC 9381 §5.3 with key validation: the 64-byte output `beta`, or `KeyDirError`. */
export function vrfVerify(publicKey: Uint8Array, alpha: Uint8Array, pi: Uint8Array): Uint8Array {
  // 1. the public key
  const y = validPoint(publicKey);
  if (y === null) throw vrfInvalid("the VRF public key is not a canonical point of the prime-order group");
  // 2. the proof: Gamma || c || s
  if (pi.length !== PROOF_SIZE) throw vrfInvalid(`a VRF proof is ${PROOF_SIZE} bytes`);
  const gammaBytes = pi.slice(0, 32);
  const c = pi.slice(32, 48);
  const s = le(pi.slice(48));
  const gamma = validPoint(gammaBytes);
  if (gamma === null) throw vrfInvalid("the proof's Gamma is not a canonical point of the prime-order group");
  if (s >= L) throw vrfInvalid("the proof's s is not a canonical scalar");
  const cn = le(c);
  let u: Pt;
  let v: Pt;
  let h: Pt;
  try {
    // 3.
    h = encodeToCurve(publicKey, alpha);
    // 4. U = s*B - c*Y, V = s*H - c*Gamma (a zero scalar is refused, as libsodium does)
    u = Point.BASE.multiply(s).subtract(y.multiply(cn));
    v = h.multiply(s).subtract(gamma.multiply(cn));
  } catch (exc) {
    if (exc instanceof KeyDirError) throw exc;
    throw vrfInvalid("the VRF proof does not verify");
  }
  // 5.
  if (!equal(challenge(publicKey, h.toBytes(), gammaBytes, u.toBytes(), v.toBytes()), c)) {
    throw vrfInvalid("the VRF proof does not verify");
  }
  // 6.
  return sha512(concat(new Uint8Array([SUITE, 0x03]), gamma.multiplyUnsafe(8n).toBytes(), new Uint8Array([0x00])));
}

// ---- commitments ---------------------------------------------------------------------------

function uint(n: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let v = n;
  for (let i = size - 1; i >= 0; i--) {
    out[i] = v & 0xff;
    v = Math.floor(v / 256);
  }
  return out;
}

/** `uint16_be(len(label)) || label || uint32_be(version)`: the VRF input of a version. */
export function labelInput(label: Uint8Array, version: number): Uint8Array {
  if (label.length > 0xffff) throw new KeyDirError("a label is at most 65535 bytes", "invalid_keydir_format");
  if (!Number.isSafeInteger(version) || version < 0 || version > MAX_VERSION) {
    throw new KeyDirError(`a version is in 0..${MAX_VERSION}`, "invalid_keydir_format");
  }
  return concat(uint(label.length, 2), label, uint(version, 4));
}

const COMMIT_DOMAIN = utf8("clearpost/keydir/commit/v1\x00");

/** The 32-byte commitment stored in the tree for `(label, version) -> value`. */
export function commit(opening: Uint8Array, label: Uint8Array, version: number, value: Uint8Array): Uint8Array {
  if (opening.length !== 16 && opening.length !== 32) {
    throw new KeyDirError("an opening is 16 or 32 bytes", "invalid_keydir_format");
  }
  return sha256(
    concat(COMMIT_DOMAIN, new Uint8Array([opening.length]), opening, labelInput(label, version), uint(value.length, 4), value),
  );
}

// ---- the prefix tree -----------------------------------------------------------------------

const INCLUDED = 1;
const ABSENT_LEAF = 2;
const ABSENT_EMPTY = 3;
const BITS = 256;
const EMPTY = new Uint8Array(32);

interface SearchResult {
  kind: number;
  depth: number;
  leafIndex?: Uint8Array;
  leafValue?: Uint8Array;
}

export interface PrefixProof {
  results: SearchResult[];
  copath: (Uint8Array | null)[];
}

/** The prefix proof's bytes (prefix_proof.py's layout), to the end of `data`. */
export function parsePrefixProof(data: Uint8Array): PrefixProof {
  let at = 0;
  const take = (n: number): Uint8Array => {
    if (at + n > data.length) throw new KeyDirError("a prefix proof is cut short", "invalid_keydir_format");
    const chunk = data.slice(at, at + n);
    at += n;
    return chunk;
  };
  const count = Number(be(take(4)));
  if (count > 1 << 24) throw new KeyDirError("too many results in a prefix proof", "invalid_keydir_format");
  const results: SearchResult[] = [];
  for (let i = 0; i < count; i++) {
    const kind = take(1)[0];
    const depth = Number(be(take(2)));
    if (kind < 1 || kind > 3) throw new KeyDirError("a search result's kind is 1, 2 or 3", "invalid_keydir_format");
    if (depth > BITS) throw new KeyDirError("a search result's depth is in 0..256", "invalid_keydir_format");
    results.push(kind === ABSENT_LEAF ? { kind, depth, leafIndex: take(32), leafValue: take(32) } : { kind, depth });
  }
  const n = Number(be(take(4)));
  if (n > 1 << 24) throw new KeyDirError("too many copath nodes in a prefix proof", "invalid_keydir_format");
  const bitmap = take(Math.ceil(n / 8));
  if (n % 8 && bitmap[bitmap.length - 1] & (0xff >> n % 8)) {
    throw new KeyDirError("a prefix proof's bitmap padding is not zero", "invalid_keydir_format");
  }
  const copath: (Uint8Array | null)[] = [];
  for (let i = 0; i < n; i++) {
    if (bitmap[i >> 3] & (0x80 >> (i & 7))) copath.push(null);
    else {
      const node = take(32);
      if (equal(node, EMPTY)) {
        throw new KeyDirError("an empty copath node is marked empty, not zero bytes", "invalid_keydir_format");
      }
      copath.push(node);
    }
  }
  if (at !== data.length) throw new KeyDirError("bytes left over after a prefix proof", "invalid_keydir_format");
  return { results, copath };
}

type Node =
  | { t: "empty" }
  | { t: "leaf"; index: bigint; value: Uint8Array }
  | { t: "hash"; hash: Uint8Array }
  | { t: "parent"; left: Node; right: Node };

const EMPTY_NODE: Node = { t: "empty" };

function indexBytes(k: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 31; i >= 0; i--) {
    out[i] = Number(k & 0xffn);
    k >>= 8n;
  }
  return out;
}

function nodeHash(node: Node): Uint8Array {
  switch (node.t) {
    case "empty":
      return EMPTY;
    case "leaf":
      return sha256(concat(new Uint8Array([0x02]), indexBytes(node.index), node.value));
    case "hash":
      return node.hash;
    case "parent":
      return sha256(concat(new Uint8Array([0x03]), nodeHash(node.left), nodeHash(node.right)));
  }
}

/** Check that, under `root`, each index (hex) of `expected` holds its value (null: absent). */
export function verifyPrefixProof(root: Uint8Array, proof: PrefixProof, expected: Map<string, Uint8Array | null>): void {
  const pairs = [...expected.entries()]
    .map(([i, v]) => {
      if (i.length !== 64) throw new KeyDirError("a tree index is 32 bytes", "invalid_keydir_format");
      return [BigInt(`0x${i}`), v] as const;
    })
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const targets = pairs.map((p) => p[0]);
  const values = pairs.map((p) => p[1]);
  for (const v of values) {
    if (v !== null && v.length !== 32) throw new KeyDirError("a tree value is 32 bytes", "invalid_keydir_format");
  }
  if (proof.results.length !== targets.length) {
    throw new KeyDirError("the proof has a result per searched index, no more, no fewer");
  }
  let node: Node;
  if (!targets.length) {
    if (proof.copath.length) throw new KeyDirError("an empty proof has no copath");
    node = EMPTY_NODE;
  } else {
    let copathAt = 0;
    const sibling = (): Node => {
      if (copathAt >= proof.copath.length) throw new KeyDirError("the proof has too few copath nodes");
      const value = proof.copath[copathAt++];
      return value === null ? EMPTY_NODE : { t: "hash", hash: value };
    };
    const terminal = (depth: number, start: number, end: number): Node => {
      const results = proof.results.slice(start, end);
      const kinds = new Set(results.map((r) => r.kind));
      if (kinds.size === 1 && kinds.has(ABSENT_EMPTY)) {
        if (values.slice(start, end).some((v) => v !== null)) {
          throw new KeyDirError("the proof shows an index absent that should be present");
        }
        return EMPTY_NODE;
      }
      if (kinds.has(ABSENT_EMPTY)) throw new KeyDirError("results that share a path end differently");
      let leaf: { index: bigint; value: Uint8Array } | null = null;
      for (let i = start; i < end; i++) {
        const r = proof.results[i];
        const t = targets[i];
        const v = values[i];
        let here: { index: bigint; value: Uint8Array };
        if (r.kind === INCLUDED) {
          if (v === null) throw new KeyDirError("the proof shows an index present that should be absent");
          here = { index: t, value: v };
        } else {
          if (v !== null) throw new KeyDirError("the proof shows an index absent that should be present");
          here = { index: be(r.leafIndex!), value: r.leafValue! };
          if (here.index === t) throw new KeyDirError("an absent index cannot be the leaf that proves it");
        }
        if (leaf !== null && (leaf.index !== here.index || !equal(leaf.value, here.value))) {
          throw new KeyDirError("results that share a path end at different leaves");
        }
        leaf = here;
      }
      const shift = BigInt(BITS - depth);
      if (leaf!.index >> shift !== targets[start] >> shift) {
        throw new KeyDirError("the leaf shown for an absent index is not on its path");
      }
      return { t: "leaf", index: leaf!.index, value: leaf!.value };
    };
    const walk = (depth: number, start: number, end: number): Node => {
      const results = proof.results;
      const here: boolean[] = [];
      for (let i = start; i < end; i++) here.push(results[i].depth === depth);
      if (here.some(Boolean)) {
        if (!here.every(Boolean)) throw new KeyDirError("results that share a path end at different depths");
        return terminal(depth, start, end);
      }
      for (let i = start; i < end; i++) {
        if (depth >= BITS || results[i].depth < depth) throw new KeyDirError("a result's depth does not match the proof's shape");
      }
      const shift = BigInt(BITS - 1 - depth);
      let split = start;
      while (split < end && !((targets[split] >> shift) & 1n)) split++;
      const left = split > start ? walk(depth + 1, start, split) : sibling();
      const right = end > split ? walk(depth + 1, split, end) : sibling();
      if ((left.t === "empty" && (right.t === "empty" || right.t === "leaf")) || (right.t === "empty" && left.t === "leaf")) {
        throw new KeyDirError("the proof shows a subtree that is not in canonical form");
      }
      return { t: "parent", left, right };
    };
    node = walk(0, 0, targets.length);
    if (copathAt !== proof.copath.length) throw new KeyDirError("the proof has copath nodes left over");
  }
  if (!equal(nodeHash(node), root)) throw new KeyDirError("the proof does not lead to the expected root");
}

// ---- bundles: lookup, absence, history -----------------------------------------------------

export interface Present {
  version: number;
  vrfProof: Uint8Array;
  commitment: Uint8Array;
  opening: Uint8Array | null;
  value: Uint8Array | null;
}

export interface Bundle {
  label: string;
  present: Present[];
  absent: { version: number; vrfProof: Uint8Array }[];
  proof: Uint8Array;
}

function b64(v: unknown): Uint8Array {
  const raw = typeof v === "string" ? fromBase64(v, false) : null;
  if (raw === null) throw new KeyDirError("a key-directory proof is not in the documented form", "invalid_keydir_format");
  return raw;
}

function version(v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new KeyDirError("a key-directory proof is not in the documented form", "invalid_keydir_format");
  }
  return v;
}

/** A bundle from its JSON (`Bundle.to_json` in proofs.py: byte strings in base64). */
export function bundleFromJson(data: unknown): Bundle {
  const d = data as Record<string, unknown> | null;
  if (!d || typeof d.label !== "string" || !Array.isArray(d.present) || !Array.isArray(d.absent)) {
    throw new KeyDirError("a key-directory proof is not in the documented form", "invalid_keydir_format");
  }
  return {
    label: d.label,
    present: (d.present as Record<string, unknown>[]).map((p) => ({
      version: version(p.version),
      vrfProof: b64(p.vrf_proof),
      commitment: b64(p.commitment),
      opening: p.opening != null ? b64(p.opening) : null,
      value: p.value != null ? b64(p.value) : null,
    })),
    absent: (d.absent as Record<string, unknown>[]).map((a) => ({ version: version(a.version), vrfProof: b64(a.vrf_proof) })),
    proof: b64(d.proof),
  };
}

/** VRF proofs, openings and the prefix proof of a bundle; the opened values by version. */
export function verifyBundle(vrfKey: Uint8Array, root: Uint8Array, bundle: Bundle): Map<number, Uint8Array> {
  const label = utf8(bundle.label);
  const expect = new Map<string, Uint8Array | null>();
  const opened = new Map<number, Uint8Array>();
  const seen = new Set<number>();
  const index = (v: number, pi: Uint8Array): string => {
    if (seen.has(v)) throw new KeyDirError("a proof shows one version twice");
    seen.add(v);
    // 1. the VRF gives the index
    const i = toHex(vrfVerify(vrfKey, labelInput(label, v), pi).slice(0, 32));
    if (expect.has(i)) throw new KeyDirError("two versions with one index");
    return i;
  };
  for (const p of bundle.present) {
    const i = index(p.version, p.vrfProof);
    // 2. the opening opens the commitment
    if (p.opening !== null || p.value !== null) {
      if (p.opening === null || p.value === null || (p.opening.length !== 16 && p.opening.length !== 32)) {
        throw new KeyDirError(`version ${p.version} is opened without its opening`);
      }
      if (!equal(commit(p.opening, label, p.version, p.value), p.commitment)) {
        throw new KeyDirError(`version ${p.version}'s opening does not open it`);
      }
      opened.set(p.version, p.value);
    }
    if (p.commitment.length !== 32) throw new KeyDirError("a commitment is 32 bytes", "invalid_keydir_format");
    expect.set(i, p.commitment);
  }
  for (const a of bundle.absent) expect.set(index(a.version, a.vrfProof), null);
  // 3. the tree proof
  verifyPrefixProof(root, parsePrefixProof(bundle.proof), expect);
  return opened;
}

/** (present, absent) versions a lookup of greatest version `n` shows, ascending: the
 * draft's base binary ladder without version 0 unless `n` is 0. No lookup shows 0 absent, so
 * showing it present would separate a lookup only from an absence proof, which shows 1
 * absent too (`ABSENT`), and every lookup above 0 shows 1 present. */
export function lookupLadder(n: number): [number[], number[]] {
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_VERSION) throw new KeyDirError(`a version is in 0..${MAX_VERSION}`, "invalid_keydir_format");
  const present = new Set<number>([n]);
  const absent = new Set<number>();
  let k = 1;
  while (2 ** k - 1 <= n) {
    present.add(2 ** k - 1);
    k++;
  }
  let lo = 2 ** (k - 1) - 1;
  let hi = 2 ** k - 1;
  absent.add(hi);
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (mid <= n) {
      present.add(mid);
      lo = mid;
    } else {
      absent.add(mid);
      hi = mid;
    }
  }
  const asc = (a: number, b: number) => a - b;
  return [[...present].sort(asc), [...absent].filter((v) => v <= MAX_VERSION).sort(asc)];
}

function shape(bundle: Bundle, present: number[], absent: number[]): void {
  const asc = (a: number, b: number) => a - b;
  const p = bundle.present.map((x) => x.version).sort(asc);
  const a = bundle.absent.map((x) => x.version).sort(asc);
  if (p.join(",") !== present.join(",") || a.join(",") !== [...absent].sort(asc).join(",")) {
    throw new KeyDirError("the proof does not show the versions this answer must show");
  }
}

/** [version, value] of the label's greatest version under `root`, proven. */
export function checkLookup(vrfKey: Uint8Array, root: Uint8Array, bundle: Bundle): [number, Uint8Array] {
  const opened = verifyBundle(vrfKey, root, bundle);
  if (opened.size !== 1) throw new KeyDirError("a lookup opens exactly one version");
  const [[n, value]] = [...opened.entries()];
  shape(bundle, ...lookupLadder(n));
  return [n, value];
}

/** What a repeat lookup of greatest version `n` shows to someone who verified version
 * `since <= n` before: the ladder of `n` without its present versions up to `since` (those
 * are ladder versions of `since` itself, which the asker verified present). */
export function lookupSince(n: number, since: number): [number[], number[]] {
  if (!(Number.isSafeInteger(since) && 0 <= since && since <= n)) {
    throw new KeyDirError("a repeat lookup is of a version at or above the one seen", "invalid_keydir_format");
  }
  const [present, absent] = lookupLadder(n);
  return [present.filter((v) => v > since), absent];
}

/** A repeat lookup by someone who verified version `since` before: [greatest version, its
 * value], or [since, null] when it is still `since`. A greatest version below `since` is
 * refused: versions are never removed. */
export function checkLookupSince(vrfKey: Uint8Array, root: Uint8Array, bundle: Bundle, since: number): [number, Uint8Array | null] {
  const opened = verifyBundle(vrfKey, root, bundle);
  if (opened.size > 1) throw new KeyDirError("a lookup opens exactly one version");
  const [n, value] = opened.size ? [...opened.entries()][0] : [since, null];
  if (n < since) {
    throw new KeyDirError(`the directory shows version ${n} as the greatest, but version ${since} was verified before: versions are never removed`);
  }
  shape(bundle, ...lookupSince(n, since));
  return [n, value];
}

/** The versions an absence proof shows absent: 0 (no version) and 1, which every lookup of
 * a greatest version above 0 shows present. */
export const ABSENT: readonly number[] = [0, 1];

/** The label has no version at all under `root`. */
export function checkAbsence(vrfKey: Uint8Array, root: Uint8Array, bundle: Bundle): void {
  verifyBundle(vrfKey, root, bundle);
  shape(bundle, [], [...ABSENT]);
}

/** The versions a history of versions `0..n` shows absent (`n = -1`: none exist, `ABSENT`):
 * the absent half of `n`'s lookup ladder. Any lookup claiming a greatest version above `n`
 * shows one of them present, so a version skipped ahead for a contact's eyes fails the
 * owner's check. */
export function historyAbsent(n: number): number[] {
  return n < 0 ? [...ABSENT] : lookupLadder(n)[1];
}

/** The versions a history of greatest version `n` shows present and opened: `0..n`; to a
 * device that verified version `since` before, only the ones after it (none while `since`
 * is still the greatest); `n` alone if the label went back below `since` (a rollback). */
export function historyShown(n: number, since?: number): number[] {
  const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
  if (since === undefined) return range(0, n + 1);
  if (n < 0) return [];
  return since <= n ? range(since + 1, n + 1) : [n];
}

/** A history: versions `historyShown(n, since)` present, `historyAbsent(n)` absent, and
 * every version from some `k` on opened (versions below `k` are an earlier, erased account
 * of the same name). Nothing shown to a device that verified `since`: the greatest version
 * is still `since`. Returns the opened versions' values. */
export function checkHistory(vrfKey: Uint8Array, root: Uint8Array, bundle: Bundle, since?: number): Map<number, Uint8Array> {
  const opened = verifyBundle(vrfKey, root, bundle);
  const asc = (a: number, b: number) => a - b;
  const versions = bundle.present.map((p) => p.version).sort(asc);
  const n = versions.length ? versions[versions.length - 1]! : (since ?? -1);
  const absent = bundle.absent.map((a) => a.version).sort(asc);
  if (versions.join(",") !== historyShown(n, since).join(",") || absent.join(",") !== historyAbsent(n).join(",")) {
    throw new KeyDirError("a history shows the versions asked for up to the greatest, n, present and the later versions of n's ladder absent");
  }
  const o = [...opened.keys()].sort(asc);
  if (o.some((v, i) => v !== n + 1 - o.length + i)) throw new KeyDirError("a history opens every version of the account");
  return opened;
}

// ---- the log: label: the log entries about an account ----------------------------------------

const CHAIN_TAG = utf8("clearpost/keydir/log-chain\n");

/** [count, chain] over log entry indexes in the order given (`chain_i = SHA-256(tag ||
 * chain_(i-1) || uint64_be(index_i))` from 32 zero bytes): what a `log:` label commits to. */
export function logChain(indexes: number[]): [number, Uint8Array] {
  let chain: Uint8Array = new Uint8Array(32);
  for (const i of indexes) {
    if (!Number.isSafeInteger(i) || i < 0) throw new KeyDirError("a log index is a whole number", "invalid_keydir_format");
    chain = sha256(concat(CHAIN_TAG, chain, uint(i, 8)));
  }
  return [indexes.length, chain];
}

/** [count, chain] of a `log:` value: the canonical JSON `{"chain": hex, "count": n}`. */
export function parseLogValue(value: Uint8Array): [number, Uint8Array] {
  const text = new TextDecoder().decode(value);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new KeyDirError("a log value is {chain, count}");
  }
  const p = parsed as { chain?: unknown; count?: unknown };
  if (typeof p.chain !== "string" || !/^[0-9a-f]{64}$/.test(p.chain) || !Number.isSafeInteger(p.count) || (p.count as number) < 0) {
    throw new KeyDirError("a log value is {chain, count}");
  }
  if (text !== `{"chain":"${p.chain}","count":${p.count}}`) throw new KeyDirError("a log value is not canonical JSON");
  return [p.count as number, Uint8Array.from(p.chain.match(/../g)!.map((b) => parseInt(b, 16)))];
}

/** A `keydir` log entry's [epoch, through, time in ms]. */
export type EpochSeen = [number, number, number];

/** How much later than `log_seconds` a count may be before it is evidence. */
export const COUNT_SLACK_MS = 60_000;
/** The longest interval between counts, and the longest heartbeat, any server may claim
 * (the Python core's `MAX_LOG_SECONDS`, `MAX_HEARTBEAT_SECONDS`). */
export const MAX_LOG_SECONDS = 3600;
export const MAX_HEARTBEAT_SECONDS = 86_400;

/** When the `through` of the answer's epoch was set (ms), checked to be no more than
 * `logSeconds` and a minute before that epoch (`log_count_late` otherwise): the Python
 * core's `count_time`. `shown`, in epoch order: the first epoch whose `through` is the
 * answer's and the one right before it, leaving out the answer's own epoch (so the one
 * before, when the answer's epoch counted; the first, when that is epoch 0; else both). */
export function countTime(shown: EpochSeen[], answer: EpochSeen, logSeconds: number): number {
  const [epoch, through, time] = answer;
  let before: EpochSeen | null;
  let first: EpochSeen;
  if (shown.length === 2) [before, first] = [shown[0]!, shown[1]!];
  else if (shown.length === 1 && shown[0]![1] < through) [before, first] = [shown[0]!, answer];
  else if (shown.length === 1) [before, first] = [null, shown[0]!];
  else [before, first] = [null, answer];
  const fits =
    shown.length <= 2 &&
    first[1] === through &&
    (first === answer || first[0] < epoch) &&
    (before === null ? first[0] === 0 : before[0] === first[0] - 1) &&
    (before === null || before[1] < through);
  if (!fits) {
    throw new KeyDirError("the answer does not show when its epoch's count was taken: the first epoch with its `through` and the epoch before it");
  }
  if (logSeconds > MAX_LOG_SECONDS) {
    throw new KeyDirError(
      `the key directory's epoch ${epoch} says it counts the log entries about people only every ${logSeconds.toLocaleString("en")} s, ` +
        `but no server may wait more than ${MAX_LOG_SECONDS.toLocaleString("en")} s: it could stop counting unseen`,
      "log_count_late",
    );
  }
  const late = time - first[2];
  if (late > logSeconds * 1000 + COUNT_SLACK_MS) {
    throw new KeyDirError(
      `the key directory last counted the log entries about people ${Math.floor(late / 1000).toLocaleString("en")} s before its epoch ${epoch}, ` +
        `but it counts them every ${logSeconds} s: entries about people from index ${through.toLocaleString("en")} on may have been left out`,
      "log_count_late",
    );
  }
  return first[2];
}
