// The browser's key-directory checks (src/verify/keydir.ts) against the published vectors
// (tests/vectors/keydir): RFC 9381's and Clearpost's VRF outputs, the proofs that must be
// refused, commitments, and the lookup, absence and history proofs of a small directory,
// each also tampered with. Run by tests/web/test_keydir_vectors.py with node --test.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { fromBase64, fromHex, toBase64, toHex, utf8 } from "../../src/verify/bytes";
import {
  bundleFromJson,
  checkAbsence,
  checkHistory,
  checkLookup,
  checkLookupSince,
  commit,
  countTime,
  historyAbsent,
  type EpochSeen,
  KeyDirError,
  labelInput,
  lookupLadder,
  logChain,
  lookupSince,
  parseLogValue,
  vrfVerify,
} from "../../src/verify/keydir";

const VECTORS = process.env.KEYDIR_VECTORS ?? "";
const load = (name: string) => JSON.parse(readFileSync(join(VECTORS, name), "utf8"));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

function refused(fn: () => unknown, code?: string): void {
  assert.throws(fn, (exc: unknown) => exc instanceof KeyDirError && (code === undefined || exc.code === code));
}

test("RFC 9381 appendix B.3 and Clearpost's VRF outputs verify", () => {
  const v = load("vrf.json");
  assert.equal(v.rfc9381_appendix_b3.length, 3);
  for (const t of v.rfc9381_appendix_b3) {
    assert.equal(toHex(vrfVerify(fromHex(t.pk), fromHex(t.alpha), fromHex(t.pi))), t.beta);
  }
  assert.ok(v.clearpost.outputs.length >= 3);
  for (const t of v.clearpost.outputs) {
    const beta = vrfVerify(fromHex(v.clearpost.pk), fromHex(t.alpha), fromHex(t.pi));
    assert.equal(toHex(beta), t.beta);
    assert.equal(toHex(beta.slice(0, 32)), t.index);
  }
});

test("the VRF refuses what the Python side refuses", () => {
  const v = load("vrf.json");
  assert.equal(v.must_be_refused.length, 5);
  for (const t of v.must_be_refused) {
    refused(() => vrfVerify(fromHex(t.pk), fromHex(t.alpha), fromHex(t.pi)), "invalid_vrf_proof");
  }
  // another input under a valid proof, and a truncated proof
  const t = v.rfc9381_appendix_b3[1];
  refused(() => vrfVerify(fromHex(t.pk), utf8("another input"), fromHex(t.pi)), "invalid_vrf_proof");
  refused(() => vrfVerify(fromHex(t.pk), fromHex(t.alpha), fromHex(t.pi).slice(0, 79)), "invalid_vrf_proof");
});

test("label inputs and commitments", () => {
  const cs = load("commitments.json");
  assert.ok(cs.length >= 4);
  for (const c of cs) {
    assert.equal(toHex(labelInput(utf8(c.label), c.version)), c.label_input);
    assert.equal(toHex(commit(fromHex(c.opening), utf8(c.label), c.version, fromHex(c.value))), c.commitment);
  }
  refused(() => commit(new Uint8Array(15), utf8("l"), 0, new Uint8Array()), "invalid_keydir_format");
  refused(() => labelInput(utf8("l"), 2 ** 32), "invalid_keydir_format");
});

test("the binary ladder", () => {
  assert.deepEqual(lookupLadder(0), [[0], [1]]);
  assert.deepEqual(lookupLadder(1), [[1], [2, 3]]);
  assert.deepEqual(lookupLadder(3), [[1, 3], [4, 5, 7]]);
  assert.deepEqual(lookupLadder(5), [[1, 3, 5], [6, 7]]);
  assert.deepEqual(historyAbsent(-1), [0, 1]);
  // any two claims of a greatest version (or none, -1) disagree on a version both show
  for (let n = -1; n < 70; n++) {
    const absent = n < 0 ? historyAbsent(n) : lookupLadder(n)[1];
    for (let m = n + 1; m < 70; m++) {
      assert.ok(lookupLadder(m)[0].some((v) => absent.includes(v)), `${n} ${m}`);
    }
  }
  assert.deepEqual(lookupSince(10, 3), [[7, 9, 10], [11, 15]]);
  assert.deepEqual(lookupSince(10, 10), [[], [11, 15]]);
  refused(() => lookupSince(3, 4), "invalid_keydir_format");
});

test("lookup, absence and history proofs of the small directory", () => {
  const d = load("directory.json");
  const key = fromHex(d.vrf_public_key);
  const root = fromHex(d.final_root);
  const [n, value] = checkLookup(key, root, bundleFromJson(d.proofs.lookup_alice.json));
  assert.deepEqual([n, text(value)], [d.expected.lookup_alice.version, d.expected.lookup_alice.value]);
  const [nb, vb] = checkLookup(key, root, bundleFromJson(d.proofs.lookup_bob.json));
  assert.deepEqual([nb, text(vb)], [d.expected.lookup_bob.version, d.expected.lookup_bob.value]);
  checkAbsence(key, root, bundleFromJson(d.proofs.absence_nobody.json));
  const h = checkHistory(key, root, bundleFromJson(d.proofs.history_alice.json));
  assert.deepEqual(
    [...h.keys()].sort().map((v) => text(h.get(v)!)),
    d.expected.history_alice,
  );
  // repeat lookups, from version 1 (version 3 opened) and from 3 (nothing new)
  for (const name of ["lookup_alice_since_1", "lookup_alice_since_3"]) {
    const want = d.expected[name];
    const [ns, vs] = checkLookupSince(key, root, bundleFromJson(d.proofs[name].json), want.since);
    assert.deepEqual([ns, vs === null ? null : text(vs)], [want.version, want.value]);
  }
  // a device's checks of its own account, from version 1 (2 and 3 opened) and from 3 (none)
  for (const name of ["history_alice_since_1", "history_alice_since_3"]) {
    const want = d.expected[name];
    const got = checkHistory(key, root, bundleFromJson(d.proofs[name].json), want.since);
    assert.deepEqual([...got.keys()].sort().map((v) => text(got.get(v)!)), want.values);
  }
  refused(() => checkHistory(key, root, bundleFromJson(d.proofs.history_alice_since_3.json), 1));
  refused(() => checkHistory(key, root, bundleFromJson(d.proofs.history_alice_since_3.json)));
  refused(() => checkHistory(key, root, bundleFromJson(d.proofs.history_alice.json), 3));
  // a whole lookup is not a repeat lookup, nor the reverse; nor is going back below `since`
  refused(() => checkLookupSince(key, root, bundleFromJson(d.proofs.lookup_alice.json), 1));
  refused(() => checkLookup(key, root, bundleFromJson(d.proofs.lookup_alice_since_1.json)));
  refused(() => checkLookupSince(key, root, bundleFromJson(d.proofs.lookup_alice.json), 4));
  // each epoch's root is a root the proofs of that epoch lead to; an older root refuses them
  const older = fromHex(d.epochs[d.epochs.length - 2].root);
  refused(() => checkLookup(key, older, bundleFromJson(d.proofs.lookup_alice.json)));
  // a lookup is not an absence, nor a history
  refused(() => checkAbsence(key, root, bundleFromJson(d.proofs.lookup_alice.json)));
  refused(() => checkHistory(key, root, bundleFromJson(d.proofs.lookup_alice.json)));
});

test("log: labels: the hash chain of log entry indexes and its canonical value", () => {
  const d = load("directory.json");
  assert.ok(d.log_chains.length >= 3);
  for (const c of d.log_chains) {
    const [n, chain] = logChain(c.indexes);
    assert.deepEqual([n, toHex(chain)], [c.count, c.chain]);
    const [count, parsed] = parseLogValue(utf8(c.value));
    assert.deepEqual([count, toHex(parsed)], [c.count, c.chain]);
  }
  const c = d.log_chains[1];
  refused(() => parseLogValue(utf8(c.value.replace("{", "{ "))));
  refused(() => parseLogValue(utf8(`{"count":${c.count},"chain":"${c.chain}"}`)));
  refused(() => logChain([-1]), "invalid_keydir_format");
});

test("tampered proofs are refused", () => {
  const d = load("directory.json");
  const key = fromHex(d.vrf_public_key);
  const root = fromHex(d.final_root);
  const fresh = () => structuredClone(d.proofs.lookup_alice.json);
  // another value under the opening
  let j = fresh();
  const opened = j.present.find((p: { opening?: string }) => p.opening);
  opened.value = toBase64(utf8('[{"device_id":"GHOST","keys":{"k":"g"}}]'));
  refused(() => checkLookup(key, root, bundleFromJson(j)));
  // an older version shown as the latest: drop the top one and its opening
  j = fresh();
  j.present = j.present.filter((p: { opening?: string }) => !p.opening);
  refused(() => checkLookup(key, root, bundleFromJson(j)));
  // another label
  j = fresh();
  j.label = "devices:@mallory:example.org";
  refused(() => checkLookup(key, root, bundleFromJson(j)));
  // a flipped bit in the prefix proof
  j = fresh();
  const proof = fromBase64(j.proof)!;
  proof[proof.length - 1] ^= 1;
  j.proof = toBase64(proof);
  refused(() => checkLookup(key, root, bundleFromJson(j)));
  // a different VRF key
  const other = fromHex(load("vrf.json").rfc9381_appendix_b3[0].pk);
  refused(() => checkLookup(other, root, bundleFromJson(fresh())), "invalid_vrf_proof");
  // a version left out of a history
  const hist = structuredClone(d.proofs.history_alice.json);
  hist.present.splice(1, 1);
  refused(() => checkHistory(key, root, bundleFromJson(hist)));
  // a history that shows only the next version absent, not the rest of its ladder's: a
  // version skipped ahead for a contact's eyes would pass it
  const nextOnly = structuredClone(d.proofs.history_alice.json);
  const next = nextOnly.present.length;
  assert.ok(nextOnly.absent.length > 1);
  nextOnly.absent = nextOnly.absent.filter((a: { version: number }) => a.version === next);
  refused(() => checkHistory(key, root, bundleFromJson(nextOnly)));
});

test("when a log: answer's count was taken, and a count too old refused", () => {
  const cases = load("count.json");
  assert.ok(cases.length >= 16);
  const seen = (e: { epoch: number; through: number; time: number }): EpochSeen => [e.epoch, e.through, e.time];
  for (const c of cases) {
    const run = () => countTime(c.counted.map(seen), seen(c.answer), c.log_seconds);
    if ("time" in c.expected) assert.equal(run(), c.expected.time, c.what);
    else refused(run, c.expected.error);
  }
});
