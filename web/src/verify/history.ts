/**
 * Your access history, verified in this browser: the log entries about you
 * (`GET /v1/me/log-entries`) checked as the Python SDK's `verify_log` checks them.
 *
 * 1. Pin the log key: the one this browser pinned before (a different key published now
 *    is a failure), else the key the log publishes (trust on first use), then remember it.
 * 2. Fetch every page of the entries about you, all proven against one checkpoint.
 * 3. Open the checkpoint: a C2SP signed note, signed by the pinned Ed25519 key, for the
 *    pinned origin.
 * 4. Compare it with the checkpoint this browser verified last (IndexedDB): smaller is a
 *    rollback, the same size with another root a fork, larger must be proven to extend it
 *    (RFC 9162 consistency proof). Then remember it.
 * 5. Witnesses: when the log names witness keys, fetch its latest cosigned checkpoint,
 *    verify each witness's `cosignature/v1`, and prove it consistent with step 3's.
 *    Entries inside the cosigned tree are *witnessed*.
 * 6. Open each entry's subject commitment with your salt and its opening.
 * 7. Check each entry's inclusion proof from its leaf hash to the signed root; an entry
 *    newer than the checkpoint is *pending*.
 *
 * A failure of steps 1-5 fails the whole history (nothing can be trusted); a failure of
 * steps 6-7 fails that entry (and the history's verdict). Nothing here throws for a bad
 * log: every failure is returned, named, for the page to show.
 *
 * What this cannot show: that the server returned *every* entry about you (`total` is its
 * word), as in docs/transparency-log.md.
 */
import { equal, fromBase64, toBase64 } from "./bytes";
import { commitment, decodeEntry, openSubject, type Entry, EntryError } from "./entries";
import { leafHash, ProofError, verifyConsistency, verifyInclusion } from "./merkle";
import { NoteError, openCheckpoint, parseVkey, SIG_COSIGNATURE_V1, type Checkpoint, type NoteVerifier } from "./note";

/** How the page reaches the server (the app's authenticated fetch; a fake in tests). */
export interface LogApi {
  /** `GET /v1/log/key` */
  key(): Promise<{ origin: string; vkey: string; witnesses: string[] }>;
  /** `GET /v1/me/log-entries?start=&size=` */
  myEntries(start: number, size: number | null): Promise<Record<string, unknown>>;
  /** `GET /v1/log/proof/consistency?from=&to=`: the proof's hashes, base64. */
  consistency(from: bigint, to: bigint): Promise<string[]>;
  /** `GET /v1/log/checkpoint?cosigned=N`; null when no checkpoint has that many. */
  cosigned(n: number): Promise<string | null>;
}

/** What this browser remembers about the log (IndexedDB in the app; memory in tests). */
export interface LogMemory {
  load(): Promise<Remembered | null>;
  save(value: Remembered): Promise<void>;
}

export interface Remembered {
  origin: string;
  vkey: string;
  /** The last checkpoint note verified here. */
  note: string | null;
}

export type Status = "verified" | "pending" | "failed" | "unchecked";

export interface CheckedEntry {
  entry: Entry;
  status: Status;
  witnessed: boolean;
  problem: string | null;
}

export interface Cosignature {
  witness: string;
  /** Seconds since the epoch, as the witness signed it. */
  time: number;
  size: string;
}

export interface Failure {
  code: string;
  message: string;
  index?: number;
}

export interface History {
  ok: boolean;
  failure: Failure | null;
  origin: string | null;
  vkey: string | null;
  trustedOnFirstUse: boolean;
  size: string | null;
  root: string | null;
  /** The checkpoint note as the server sent it (shown to anyone who wants to look). */
  note: string | null;
  /** What step 4 found: first visit, same tree, or a proven extension of `previousSize`. */
  previous: { size: string; relation: "same" | "extends" | "rolled-back" | "forked" } | null;
  witnesses: string[];
  /** Whether step 5 ran (a failure before it leaves the cosignatures unchecked). */
  witnessesChecked: boolean;
  cosignatures: Cosignature[];
  witnessedSize: string | null;
  total: number | null;
  entries: CheckedEntry[];
}

export class Failed extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function verifyHistory(api: LogApi, memory: LogMemory, userId: string): Promise<History> {
  const out: History = {
    ok: false,
    failure: null,
    origin: null,
    vkey: null,
    trustedOnFirstUse: false,
    size: null,
    root: null,
    note: null,
    previous: null,
    witnesses: [],
    witnessesChecked: false,
    cosignatures: [],
    witnessedSize: null,
    total: null,
    entries: [],
  };
  let answer: Answer | null = null;
  try {
    // 1.
    const published = await api.key();
    const saved = await memory.load();
    const pin = saved ?? { origin: published.origin, vkey: published.vkey, note: null };
    out.origin = pin.origin;
    out.vkey = pin.vkey;
    out.trustedOnFirstUse = saved === null;
    if (published.vkey !== pin.vkey || published.origin !== pin.origin) {
      throw new Failed(
        "log_key_changed",
        `this browser pinned the log key ${pin.vkey} (${pin.origin}); the server now publishes ` +
          `${published.vkey} (${published.origin}). A log does not change its key: this is another log.`,
      );
    }
    const log = await verifier(pin.vkey, "the log key");
    out.witnesses = published.witnesses;
    // 2.
    answer = await fetchAll(api, userId);
    out.total = answer.total;
    out.entries = answer.items.map((i) => ({ entry: i.entry, status: "unchecked", witnessed: false, problem: null }));
    if (answer.note === null) {
      // a brand-new log: nothing is signed yet (the first checkpoint comes within a second)
      out.entries = out.entries.map((e) => ({ ...e, status: "pending" }));
      out.ok = true;
      return out;
    }
    out.note = answer.note;
    // 3.
    const checkpoint = await opened(answer.note, log, pin.origin, "the checkpoint");
    out.size = checkpoint.size.toString();
    out.root = toBase64(checkpoint.root);
    if (answer.size !== null && BigInt(answer.size) !== checkpoint.size) {
      throw new Failed("log_bad_response", "the answer's size is not its checkpoint's");
    }
    // 4.
    if (saved?.note) {
      const last = await opened(saved.note, log, pin.origin, "the checkpoint this browser verified before");
      out.previous = { size: last.size.toString(), relation: "forked" };
      if (checkpoint.size < last.size) {
        out.previous.relation = "rolled-back";
        throw new Failed(
          "log_rollback",
          `the log shows ${checkpoint.size} entries, but this browser already verified a checkpoint of ` +
            `${last.size}: the log was rolled back`,
        );
      }
      await consistent(api, last, checkpoint, "the checkpoint this browser verified before");
      out.previous = { size: last.size.toString(), relation: last.size === checkpoint.size ? "same" : "extends" };
    }
    await memory.save({ origin: pin.origin, vkey: pin.vkey, note: answer.note });
    // 5.
    let witnessed: bigint | null = null;
    if (published.witnesses.length) {
      const keys = await Promise.all(published.witnesses.map((w) => verifier(w, "a witness key")));
      witnessed = await cosigned(api, log, pin.origin, keys, checkpoint, out);
    }
    out.witnessesChecked = true;
    // 6. and 7.
    const salt = fromBase64(String(answer.salt));
    if (salt === null || salt.length !== 32) throw new Failed("log_bad_response", "the answer carries no usable salt");
    const old = await commitment(salt, userId);
    if (answer.subject !== old) {
      throw new Failed(
        "log_subject_mismatch",
        "the salt does not open the subject commitment to you: SHA-256(salt || user id) is not the subject the server names",
      );
    }
    let allGood = true;
    out.entries = [];
    // every entry's hashing at once: WebCrypto digests are asynchronous, so this overlaps them
    const results = await Promise.all(answer.items.map((item) => checkEntry(item, checkpoint, witnessed, salt, userId, old)));
    for (const [n, item] of answer.items.entries()) {
      const checked = results[n];
      if (checked.status === "failed") {
        allGood = false;
        out.failure ??= { code: checked.code, message: checked.problem ?? "", index: item.entry.index };
      }
      out.entries.push(checked);
    }
    out.ok = allGood;
  } catch (exc) {
    out.ok = false;
    out.failure = failure(exc);
  }
  return out;
}

interface Item {
  entry: Entry;
  bytes: Uint8Array;
  proof: Uint8Array[] | null;
  opening: unknown;
  decodeProblem: EntryError | null;
}

interface Answer {
  note: string | null;
  size: number | null;
  salt: unknown;
  subject: unknown;
  total: number | null;
  items: Item[];
}

async function fetchAll(api: LogApi, userId: string): Promise<Answer> {
  const items: Item[] = [];
  let start = 0;
  let size: number | null = null;
  let first: Record<string, unknown> | null = null;
  for (let page = 0; page < 10_000; page++) {
    const a = await api.myEntries(start, size);
    if (a.user_id !== undefined && a.user_id !== userId) {
      throw new Failed("log_bad_response", "the server answered with the log entries of another user");
    }
    first ??= a;
    size = typeof first.size === "number" ? first.size : null;
    if (a !== first && a.size !== size) {
      throw new Failed("log_bad_response", "a later page was proven against another checkpoint");
    }
    if (!Array.isArray(a.entries)) throw new Failed("log_bad_response", "the answer has no entry list");
    for (const raw of a.entries as Record<string, unknown>[]) items.push(readItem(raw));
    if (typeof a.next_start !== "number" || size === null) break;
    start = a.next_start;
  }
  const seen = new Set(items.map((i) => i.entry.index));
  if (seen.size !== items.length) throw new Failed("log_bad_response", "the answer lists an entry twice");
  const f = first ?? {};
  return {
    note: typeof f.checkpoint === "string" ? f.checkpoint : null,
    size: typeof f.size === "number" ? f.size : null,
    salt: f.salt,
    subject: f.subject,
    total: typeof f.total === "number" ? f.total : null,
    items,
  };
}

function readItem(raw: Record<string, unknown>): Item {
  const index = raw.index;
  if (typeof index !== "number" || !Number.isSafeInteger(index) || index < 0) {
    throw new Failed("log_bad_response", "the answer has an entry without a valid index");
  }
  const bytes = fromBase64(String(raw.entry), false);
  if (bytes === null) throw new Failed("log_bad_response", `entry ${index} is not base64`);
  let proof: Uint8Array[] | null = null;
  if (raw.proof !== null && raw.proof !== undefined) {
    if (!Array.isArray(raw.proof)) throw new Failed("log_bad_response", `entry ${index} has a malformed proof`);
    proof = raw.proof.map((h) => {
      const b = fromBase64(String(h), false);
      if (b === null) throw new Failed("log_bad_response", `entry ${index} has a malformed proof`);
      return b;
    });
  }
  let entry: Entry;
  let decodeProblem: EntryError | null = null;
  try {
    entry = decodeEntry(index, bytes);
  } catch (exc) {
    decodeProblem = exc instanceof EntryError ? exc : new EntryError(String(exc), "log_bad_response");
    entry = { index, type: "unreadable", time: null, partner: null, scopes: [], endpoint: null, body: {}, detail: null };
  }
  return { entry, bytes, proof, opening: raw.opening ?? null, decodeProblem };
}

async function checkEntry(
  item: Item,
  checkpoint: Checkpoint,
  witnessed: bigint | null,
  salt: Uint8Array,
  userId: string,
  old: string,
): Promise<CheckedEntry & { code: string }> {
  const index = BigInt(item.entry.index);
  const fail = (code: string, problem: string, entry = item.entry) => ({
    entry,
    status: "failed" as const,
    witnessed: false,
    problem,
    code,
  });
  if (item.decodeProblem) return fail(item.decodeProblem.code, item.decodeProblem.message);
  // 6.
  let entry: Entry;
  try {
    entry = await openSubject(item.entry, item.opening, salt, userId, old);
  } catch (exc) {
    const e = exc instanceof EntryError ? exc : new EntryError(String(exc), "log_bad_response");
    return fail(e.code, e.message);
  }
  // 7.
  const what = `entry ${index} (${entry.type}${entry.partner ? ` by ${entry.partner}` : ""})`;
  if (index >= checkpoint.size) {
    if (item.proof !== null) {
      return fail("log_bad_response", `${what} comes with a proof but lies beyond the checkpoint`, entry);
    }
    return { entry, status: "pending", witnessed: false, problem: null, code: "" };
  }
  if (item.proof === null) {
    return fail("log_missing_proof", `${what} is inside the signed tree but came without an inclusion proof`, entry);
  }
  try {
    await verifyInclusion(await leafHash(item.bytes), index, checkpoint.size, item.proof, checkpoint.root);
  } catch (exc) {
    const why = exc instanceof ProofError ? exc.message : String(exc);
    return fail(
      "log_not_included",
      `${what} is not in the log's signed tree of ${checkpoint.size} entries: ${why}. ` +
        "The server showed you an entry the log does not hold, or a broken proof.",
      entry,
    );
  }
  return { entry, status: "verified", witnessed: witnessed !== null && index < witnessed, problem: null, code: "" };
}

export async function verifier(vkey: string, what: string): Promise<NoteVerifier> {
  try {
    return await parseVkey(vkey);
  } catch (exc) {
    throw new Failed("log_bad_response", `${what} is malformed: ${(exc as Error).message}`);
  }
}

export async function opened(
  note: string,
  log: NoteVerifier,
  origin: string,
  what: string,
  witnesses: NoteVerifier[] = [],
): Promise<Checkpoint> {
  try {
    return (await openCheckpoint(note, log, origin, witnesses)).checkpoint;
  } catch (exc) {
    throw new Failed("log_bad_signature", `${what} does not verify: ${(exc as Error).message}`);
  }
}

export async function consistent(api: Pick<LogApi, "consistency">, a: Checkpoint, b: Checkpoint, what: string): Promise<void> {
  if (a.size === b.size) {
    if (!equal(a.root, b.root)) {
      throw new Failed(
        "log_inconsistent",
        `the log signed two different trees of ${a.size} entries (${what} and the current one): a forked history`,
      );
    }
    return;
  }
  const [small, large] = a.size < b.size ? [a, b] : [b, a];
  if (small.size === 0n) return;
  let hashes: Uint8Array[];
  try {
    hashes = (await api.consistency(small.size, large.size)).map((h) => {
      const raw = fromBase64(h, false);
      if (raw === null) throw new Error("a proof hash is not base64");
      return raw;
    });
  } catch (exc) {
    throw new Failed(
      "log_inconsistent",
      `the log did not prove that its tree of ${large.size} entries extends its tree of ${small.size} (${what}): ${(exc as Error).message}`,
    );
  }
  try {
    await verifyConsistency(small.size, large.size, small.root, large.root, hashes);
  } catch (exc) {
    throw new Failed(
      "log_inconsistent",
      `the log's tree of ${large.size} entries does not extend its tree of ${small.size} (${what}): ${(exc as Error).message}`,
    );
  }
}

async function cosigned(
  api: LogApi,
  log: NoteVerifier,
  origin: string,
  witnesses: NoteVerifier[],
  checkpoint: Checkpoint,
  out: History,
): Promise<bigint | null> {
  const note = await api.cosigned(1);
  if (note === null) return null; // no witness has cosigned yet: shown, not a failure
  let result;
  try {
    result = await openCheckpoint(note, log, origin, witnesses);
  } catch (exc) {
    throw new Failed("log_bad_signature", `the cosigned checkpoint does not verify: ${(exc as Error).message}`);
  }
  const w = result.checkpoint;
  out.cosignatures = result.note.signatures
    .filter((s) => witnesses.some((k) => k.type === SIG_COSIGNATURE_V1 && k.name === s.name && k.keyId === s.keyId))
    .map((s) => ({ witness: s.name, time: Number(s.time ?? 0n), size: w.size.toString() }));
  if (!out.cosignatures.length) return null;
  await consistent(api, w, checkpoint, "the cosigned checkpoint");
  const size = w.size < checkpoint.size ? w.size : checkpoint.size;
  out.witnessedSize = size.toString();
  return size;
}

function failure(exc: unknown): Failure {
  if (exc instanceof Failed) return { code: exc.code, message: exc.message };
  if (exc instanceof NoteError) return { code: "log_bad_signature", message: exc.message };
  return { code: "log_unavailable", message: `cannot read the log: ${(exc as Error)?.message ?? String(exc)}` };
}
