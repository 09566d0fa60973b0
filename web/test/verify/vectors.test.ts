// The browser's log verifier against the same vectors as the Python one
// (tests/vectors/tlog) and against values the Python code computed (fixtures.json,
// written by tests/web/test_verify_vectors.py). Run by that pytest test with node --test.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { fromBase64, fromHex, toHex, utf8 } from "../../src/verify/bytes";
import { canonicalJson } from "../../src/verify/canonical";
import { commitment, decodeEntry, entryCommitment, openSubject } from "../../src/verify/entries";
import { verifyHistory, type LogApi, type Remembered } from "../../src/verify/history";
import { leafHash, verifyConsistency, verifyInclusion } from "../../src/verify/merkle";
import { openCheckpoint, openNote, parseCheckpoint, parseVkey } from "../../src/verify/note";

const VECTORS = process.env.TLOG_VECTORS ?? "";
const FIXTURES = process.env.VERIFY_FIXTURES ?? "";
const load = (name: string) => JSON.parse(readFileSync(join(VECTORS, name), "utf8"));
const b64 = (s: string | null | undefined) => (s == null ? [] : [fromBase64(s)!]);
const b64s = (l: string[] | null) => (l ?? []).map((s) => fromBase64(s)!);

async function fails(p: Promise<unknown>): Promise<boolean> {
  try {
    await p;
    return false;
  } catch {
    return true;
  }
}

test("RFC 6962 reference tree: published inclusion and consistency proofs", async () => {
  const t = load("rfc6962_tree.json");
  const leaves = await Promise.all(t.leaves.map((l: string) => leafHash(fromHex(l))));
  for (const p of t.inclusion) {
    const proof = p.proof.map(fromHex);
    await verifyInclusion(leaves[p.index], BigInt(p.index), BigInt(p.size), proof, fromHex(t.roots[p.size]));
    const other = leaves[(p.index + 1) % leaves.length];
    assert.ok(await fails(verifyInclusion(other, BigInt(p.index), BigInt(p.size), proof, fromHex(t.roots[p.size]))));
  }
  for (const p of t.consistency) {
    await verifyConsistency(BigInt(p.m), BigInt(p.n), fromHex(t.roots[p.m]), fromHex(t.roots[p.n]), p.proof.map(fromHex));
  }
});

test("transparency-dev inclusion probes: every verdict as published", async () => {
  const probes = load("inclusion_probes.json").probes;
  assert.ok(probes.length >= 90);
  for (const p of probes) {
    const failed = await fails(
      verifyInclusion(b64(p.leafHash)[0], BigInt(p.leafIdx), BigInt(p.treeSize), b64s(p.proof), b64(p.root)[0]),
    );
    assert.equal(failed, p.wantErr, `${p.file}: ${p.desc}`);
  }
});

const STRICTER = new Set(["testdata/consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"]);

test("transparency-dev consistency probes: every verdict as published", async () => {
  const probes = load("consistency_probes.json").probes;
  assert.ok(probes.length >= 90);
  for (const p of probes) {
    // as the Python tests: stricter than transparency-dev/merkle, every hash is 32 bytes
    const wantErr = p.wantErr || STRICTER.has(p.file);
    const failed = await fails(
      verifyConsistency(BigInt(p.size1), BigInt(p.size2), b64(p.root1)[0], b64(p.root2)[0], b64s(p.proof)),
    );
    assert.equal(failed, wantErr, `${p.file}: ${p.desc}`);
  }
});

test("signed notes: golang.org/x/mod and C2SP examples", async () => {
  const v = load("signed_note.json");
  const g = v.golang_sumdb_note;
  const peter = await parseVkey(g.peter_vkey);
  assert.equal(peter.name, "PeterNeumann");
  assert.equal(peter.keyId, 0xc74f20a3);
  for (const bad of g.bad_vkeys) assert.ok(await fails(parseVkey(bad)), bad);
  const note = await openNote(g.signed_by_peter, [peter]);
  assert.equal(note.text, g.text);
  assert.equal(note.signatures.length, 1);
  // a note signed by two keys opens with either; the unknown one is kept aside
  const enoch = await parseVkey(g.enoch_vkey);
  const both = g.text + "\n" + g.peter_sig_line + g.enoch_sig_line;
  assert.equal((await openNote(both, [enoch])).unverified.length, 1);
  assert.ok(await fails(openNote(g.signed_by_peter, [enoch])), "no trusted signature");
  for (const bad of g.malformed_notes) assert.ok(await fails(openNote(bad, [peter])), JSON.stringify(bad));
  // a changed text fails the signature
  assert.ok(await fails(openNote(g.signed_by_peter.replace("problem", "Problem"), [peter])));
  const c = v.c2sp_signed_note;
  assert.equal((await openNote(c.note, [await parseVkey(c.vkey)])).text, c.text);
  const cp = parseCheckpoint(v.c2sp_checkpoint.text);
  assert.equal(cp.origin, v.c2sp_checkpoint.origin);
  assert.equal(cp.size, BigInt(v.c2sp_checkpoint.size));
});

test("cosignature/v1: the OpenSSL known answer", async () => {
  const k = load("signed_note.json").openssl_cosignature_kat;
  const witness = await parseVkey(k.witness_vkey);
  // the log's line is unverifiable here (no log key in the vector): only the cosignature
  const note = await openNote(k.checkpoint_text + "\n" + k.cosignature_line, [witness]);
  assert.equal(note.signatures[0].time, BigInt(k.timestamp));
  const forged = k.cosignature_line.replace("fm9KqgAAAABkGFDL", "fm9KqgAAAABkGFDM");
  assert.ok(await fails(openNote(k.checkpoint_text + "\n" + forged, [witness])), "another timestamp");
});

const fx = FIXTURES ? JSON.parse(readFileSync(FIXTURES, "utf8")) : null;

test("canonical JSON as Python's core/canonical.py writes it", { skip: !fx }, () => {
  for (const c of fx.canonical) assert.equal(canonicalJson(JSON.parse(c.json)), c.canonical, c.json);
});

test("subject commitments as the server makes them", { skip: !fx }, async () => {
  for (const c of fx.commitments) {
    const salt = fromBase64(c.salt)!;
    assert.equal(await commitment(salt, c.user), c.v1);
    const nonce = fromBase64(c.nonce)!;
    assert.equal(await entryCommitment(salt, c.user, nonce, c.detail), c.v2);
  }
});

test("a checkpoint signed and cosigned by Python opens; a changed one does not", { skip: !fx }, async () => {
  const log = await parseVkey(fx.log_vkey);
  const witness = await parseVkey(fx.witness_vkey);
  const opened = await openCheckpoint(fx.cosigned_note, log, fx.origin, [witness]);
  assert.equal(opened.checkpoint.size, BigInt(fx.size));
  assert.equal(opened.note.signatures.length, 2);
  assert.equal(opened.note.signatures[1].time, BigInt(fx.cosigned_at));
  assert.ok(await fails(openCheckpoint(fx.cosigned_note, log, "another/origin", [witness])));
  assert.ok(await fails(openCheckpoint(fx.note.replace(`\n${fx.size}\n`, `\n${fx.size + 1}\n`), log, fx.origin)));
});

/** A fake log answering from the fixture (entries and proofs computed by Python). */
function api(answer: Record<string, unknown>, consistency: Record<string, string[]> = {}): LogApi {
  return {
    key: async () => ({ origin: fx.origin, vkey: fx.log_vkey, witnesses: [fx.witness_vkey] }),
    myEntries: async () => answer,
    consistency: async (a, b) => {
      const proof = consistency[`${a}-${b}`];
      if (!proof) throw new Error("no such proof");
      return proof;
    },
    cosigned: async () => fx.cosigned_note,
  };
}

function memory(initial: Remembered | null = null) {
  let value = initial;
  return { load: async () => value, save: async (v: Remembered) => void (value = v), get: () => value };
}

test("the history verifies end to end; each tampering is caught and named", { skip: !fx }, async () => {
  const mem = memory();
  const good = await verifyHistory(api(fx.answer), mem, fx.user);
  assert.equal(good.failure, null);
  assert.ok(good.ok);
  assert.deepEqual(good.entries.map((e) => e.status), fx.answer.entries.map(() => "verified"));
  assert.ok(good.entries.every((e) => e.witnessed));
  assert.deepEqual(good.cosignatures.map((c) => c.witness), [fx.witness_name]);
  assert.equal(good.entries[0].entry.detail?.device_id, "BROWSERDEV");
  assert.ok(good.trustedOnFirstUse);
  assert.equal(mem.get()?.note, fx.note);

  // a changed entry byte: not in the signed tree
  const entries = fx.answer.entries as Record<string, unknown>[];
  const changed = structuredClone(fx.answer);
  const body = JSON.parse(new TextDecoder().decode(fromBase64(entries[1].entry as string)!));
  body.items = body.items + 1;
  changed.entries[1].entry = btoa(canonicalJson(body));
  const bad = await verifyHistory(api(changed), memory(), fx.user);
  assert.equal(bad.ok, false);
  assert.equal(bad.failure?.code, "log_not_included");
  assert.deepEqual(bad.entries.map((e) => e.status), ["verified", "failed", "verified"]);

  // a changed proof hash
  const badProof = structuredClone(fx.answer);
  const h = fromBase64(badProof.entries[2].proof[0])!;
  h[0] ^= 1;
  badProof.entries[2].proof[0] = btoa(String.fromCharCode(...h));
  const r2 = await verifyHistory(api(badProof), memory(), fx.user);
  assert.equal(r2.failure?.code, "log_not_included");
  assert.equal(r2.entries[2].status, "failed");

  // someone else's opening
  const other = structuredClone(fx.answer);
  other.entries[1].opening = other.entries[2].opening;
  assert.equal((await verifyHistory(api(other), memory(), fx.user)).failure?.code, "log_subject_mismatch");

  // a forged checkpoint signature
  const forged = structuredClone(fx.answer);
  forged.checkpoint = fx.note.replace(`\n${fx.size}\n`, `\n${fx.size}\n`).replace(/ (\S)(\S+)\n$/, (_m: string, a: string, rest: string) => ` ${a === "A" ? "B" : "A"}${rest}\n`);
  const r3 = await verifyHistory(api(forged), memory(), fx.user);
  assert.equal(r3.failure?.code, "log_bad_signature");

  // a rollback against what this browser saw before (a larger checkpoint)
  const r4 = await verifyHistory(api(fx.answer), memory({ origin: fx.origin, vkey: fx.log_vkey, note: fx.larger_note }), fx.user);
  assert.equal(r4.failure?.code, "log_rollback");

  // an earlier checkpoint seen before: proven extended
  const r5 = await verifyHistory(
    api(fx.answer, fx.consistency),
    memory({ origin: fx.origin, vkey: fx.log_vkey, note: fx.smaller_note }),
    fx.user,
  );
  assert.equal(r5.failure, null);
  assert.deepEqual(r5.previous, { size: String(fx.smaller_size), relation: "extends" });

  // ... unless the proof is wrong: a fork
  const wrong = Object.fromEntries(Object.entries(fx.consistency as Record<string, string[]>).map(([k, v]) => [k, [...v].reverse()]));
  const r6 = await verifyHistory(api(fx.answer, wrong), memory({ origin: fx.origin, vkey: fx.log_vkey, note: fx.smaller_note }), fx.user);
  assert.equal(r6.failure?.code, "log_inconsistent");

  // a log that has signed nothing yet: pending, not a failure, and nothing remembered
  const fresh = memory();
  const r8 = await verifyHistory(api({ ...fx.answer, checkpoint: null, size: null }), fresh, fx.user);
  assert.ok(r8.ok);
  assert.deepEqual(r8.entries.map((e) => e.status), ["pending", "pending", "pending"]);
  assert.equal(fresh.get(), null);

  // another key than the one pinned
  const r7 = await verifyHistory(api(fx.answer), memory({ origin: fx.origin, vkey: fx.witness_vkey, note: null }), fx.user);
  assert.equal(r7.failure?.code, "log_key_changed");
});

test("entries: canonical bytes only, old-form subjects open with the salt alone", { skip: !fx }, async () => {
  assert.throws(() => decodeEntry(0, utf8('{"type": "grant"}')));
  assert.throws(() => decodeEntry(0, utf8('{"type":"nope"}')));
  const salt = fromBase64(fx.commitments[0].salt)!;
  const user = fx.commitments[0].user;
  const old = await commitment(salt, user);
  const e = decodeEntry(3, utf8(canonicalJson({ type: "grant", partner: "p", scopes: ["a"], subject: old, time: 1 })));
  assert.equal((await openSubject(e, null, salt, user, old)).index, 3);
  await assert.rejects(openSubject(e, null, salt, user, toHex(new Uint8Array(32))));
});
