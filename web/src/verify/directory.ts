/**
 * A contact's devices checked against the key directory in this browser, as the Python
 * SDK's `client/directory.py` checks them (`Directory.verify`, `lookup`, `devices`):
 *
 * 1. Pin the directory's VRF key (the one this browser pinned before; else the one the
 *    server publishes, trusted on first use) and the log key (the access history's pin,
 *    shared: one log, one key).
 * 2. The answer's log entry is the `keydir` entry of the epoch the answer names; its root
 *    is the root the proofs are checked against.
 * 3. The checkpoint is signed by the pinned log key and is consistent with the last
 *    checkpoint this browser verified (RFC 9162 consistency proof; smaller is a rollback);
 *    the entry is included in it.
 * 4. The epoch is not older than the newest epoch this browser verified, and not older than
 *    twice the heartbeat plus a minute by this browser's clock.
 * 5. The VRF proofs, commitments and prefix-tree proof (`keydir.ts`) show a lookup of the
 *    label's greatest version, or its absence; the label is the one asked for.
 *
 * Every failure throws `DirectoryError` with a code and a message a person can read.
 */
import { canonicalJson } from "./canonical";
import { equal, fromBase64, fromUtf8, toBase64, utf8 } from "./bytes";
import { Failed, consistent, opened, verifier, type LogApi, type LogMemory } from "./history";
import { bundleFromJson, checkAbsence, checkLookup, checkLookupSince, KeyDirError } from "./keydir";
import { leafHash, ProofError, verifyInclusion } from "./merkle";

export const SLACK_MS = 60_000;

export class DirectoryError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** How the directory is reached (the worker's authenticated fetch; a fake in tests). */
export interface DirectoryApi extends Pick<LogApi, "key" | "consistency"> {
  /** `GET /v1/keydir/key` */
  directoryKey(): Promise<{ vrf_public_key: string; heartbeat_seconds: number }>;
  /** `GET /v1/keydir/devices/{user_id}[?since=k]` */
  lookupDevices(userId: string, since?: number): Promise<Record<string, unknown>>;
}

/** What this browser remembers about the directory: its VRF key and the newest epoch, and
 * per contact the greatest version of their devices it verified (its value in base64). */
export interface DirectoryMemory {
  load(): Promise<{ vrfKey: string; epoch: number } | null>;
  save(value: { vrfKey: string; epoch: number }): Promise<void>;
  seen(userId: string): Promise<Seen | null>;
  remember(userId: string, seen: Seen): Promise<void>;
}

export interface Seen {
  version: number;
  value: string;
}

export interface Verified {
  label: string;
  epoch: number;
  /** The label's greatest version and its value; null for an absence. */
  version: number | null;
  value: Uint8Array | null;
}

export class Directory {
  private heartbeatMs = 0;
  private published: { vrf_public_key: string; heartbeat_seconds: number } | null = null;
  private logKey: { origin: string; vkey: string } | null = null;

  constructor(
    private readonly api: DirectoryApi,
    private readonly log: LogMemory,
    private readonly memory: DirectoryMemory,
    private readonly now: () => number = Date.now,
  ) {}

  /** Steps 1-5 for a lookup answer (`known`: a repeat lookup from that version). */
  async verify(answer: Record<string, unknown>, known: Seen | null = null): Promise<Verified> {
    try {
      return await this.check(answer, known);
    } catch (exc) {
      if (exc instanceof DirectoryError) throw exc;
      if (exc instanceof Failed) throw new DirectoryError(exc.code, exc.message);
      const why = exc instanceof Error ? exc.message : String(exc);
      const code = exc instanceof KeyDirError ? exc.code : "keydir_invalid_proof";
      throw new DirectoryError(code, `the key directory's answer does not verify: ${why}`);
    }
  }

  private async check(answer: Record<string, unknown>, known: Seen | null): Promise<Verified> {
    // 1.
    const published = (this.published ??= await this.api.directoryKey());
    this.heartbeatMs = published.heartbeat_seconds * 1000;
    const saved = await this.memory.load();
    const vrfKey = saved?.vrfKey ?? published.vrf_public_key;
    if (vrfKey !== published.vrf_public_key) {
      throw new DirectoryError(
        "keydir_key_changed",
        `this browser pinned the key directory's VRF key ${vrfKey}; the server now publishes ${published.vrf_public_key}`,
      );
    }
    const vrfRaw = fromBase64(vrfKey, false);
    if (vrfRaw === null || vrfRaw.length !== 32) throw new DirectoryError("keydir_bad_response", "the VRF key is not 32 bytes of base64");
    const logKey = (this.logKey ??= await this.api.key());
    const pinned = await this.log.load();
    const pin = pinned ?? { origin: logKey.origin, vkey: logKey.vkey, note: null };
    if (pin.vkey !== logKey.vkey || pin.origin !== logKey.origin) {
      throw new DirectoryError("log_key_changed", `this browser pinned the log key ${pin.vkey}; the server now publishes ${logKey.vkey}`);
    }
    const logVerifier = await verifier(pin.vkey, "the log key");
    // 2.
    const body = fromBase64(String(answer.entry), false);
    if (body === null) throw new DirectoryError("keydir_bad_response", "the answer's log entry is not base64");
    const text = fromUtf8(body);
    const entry = JSON.parse(text) as Record<string, unknown>;
    if (canonicalJson(entry) !== text) throw new DirectoryError("keydir_wrong_entry", "the answer's log entry is not canonical JSON");
    const epoch = answer.epoch;
    if (entry.type !== "keydir" || typeof epoch !== "number" || entry.epoch !== epoch) {
      throw new DirectoryError("keydir_wrong_entry", "the answer's log entry is not its epoch's key-directory entry");
    }
    const rootHex = String(entry.root);
    if (!/^[0-9a-f]{64}$/.test(rootHex)) throw new DirectoryError("keydir_wrong_entry", "the epoch's root is not a hash");
    const root = Uint8Array.from(rootHex.match(/../g)!.map((b) => parseInt(b, 16)));
    // 3.
    const note = String(answer.checkpoint);
    const checkpoint = await opened(note, logVerifier, pin.origin, "the key directory's checkpoint");
    if (pin.note) {
      const last = await opened(pin.note, logVerifier, pin.origin, "the checkpoint this browser verified before");
      if (checkpoint.size < last.size) {
        throw new DirectoryError(
          "log_rollback",
          `the log shows ${checkpoint.size} entries, but this browser already verified a checkpoint of ${last.size}: the log was rolled back`,
        );
      }
      await consistent(this.api, last, checkpoint, "the checkpoint this browser verified before");
    }
    const hashes = (Array.isArray(answer.inclusion) ? answer.inclusion : []).map((h) => {
      const raw = fromBase64(String(h), false);
      if (raw === null) throw new DirectoryError("keydir_bad_response", "an inclusion proof hash is not base64");
      return raw;
    });
    const index = answer.log_index;
    if (typeof index !== "number" || !Number.isSafeInteger(index) || index < 0) {
      throw new DirectoryError("keydir_bad_response", "the answer has no log index");
    }
    try {
      await verifyInclusion(await leafHash(body), BigInt(index), checkpoint.size, hashes, checkpoint.root);
    } catch (exc) {
      const why = exc instanceof ProofError ? exc.message : String(exc);
      throw new DirectoryError("keydir_not_in_log", `the epoch's root is not in the signed log: ${why}`);
    }
    // 4.
    const newest = saved?.epoch ?? -1;
    if (epoch < newest) {
      throw new DirectoryError(
        "keydir_rollback",
        `the key directory answered from epoch ${epoch}, but this browser already verified epoch ${newest}: the server showed an older directory`,
      );
    }
    const time = Number(entry.time);
    if (!(time >= this.now() - 2 * this.heartbeatMs - SLACK_MS)) {
      throw new DirectoryError(
        "keydir_stale",
        `the key directory's epoch ${epoch} is older than its heartbeat allows: the server is showing a stale directory`,
      );
    }
    // 5.
    const bundle = bundleFromJson(answer);
    let version: number | null = null;
    let value: Uint8Array | null = null;
    if (known !== null) {
      // a repeat lookup: nothing opened means the greatest version is still the one seen
      [version, value] = checkLookupSince(vrfRaw, root, bundle, known.version);
      if (value === null) value = fromBase64(known.value, false);
      if (value === null) throw new DirectoryError("keydir_invalid_proof", "the remembered value is not base64");
    } else if (bundle.present.length) [version, value] = checkLookup(vrfRaw, root, bundle);
    else checkAbsence(vrfRaw, root, bundle);
    // remember: the pins, the newest checkpoint and epoch (never replace a newer one)
    const again = await this.log.load();
    const keep = again?.note ? await opened(again.note, logVerifier, pin.origin, "the checkpoint this browser verified before") : null;
    if (!keep || keep.size <= checkpoint.size) await this.log.save({ origin: pin.origin, vkey: pin.vkey, note });
    await this.memory.save({ vrfKey, epoch: Math.max(epoch, newest) });
    return { label: bundle.label, epoch, version, value };
  }

  /** The greatest version of `devices:<userId>` (or its proven absence), verified, and
   * checked to be the label asked for. Once a version was verified, later lookups are
   * repeat lookups from it (the SDK's `Directory.lookup` does the same). */
  async lookup(userId: string): Promise<Verified> {
    const known = await this.memory.seen(userId);
    const found = await this.verify(await this.api.lookupDevices(userId, known?.version), known);
    if (found.label !== `devices:${userId}`) {
      throw new DirectoryError("keydir_wrong_label", "the key directory answered for another account");
    }
    if (found.version !== null && found.value !== null) {
      await this.memory.remember(userId, { version: found.version, value: toBase64(found.value) });
    }
    return found;
  }

  /** The signed device keys of `userId` that the directory holds now, verified: each as
   * its canonical JSON (without Matrix's `unsigned`), by device id. */
  async devices(userId: string): Promise<Map<string, string>> {
    const found = await this.lookup(userId);
    const out = new Map<string, string>();
    if (found.value === null) return out;
    const text = fromUtf8(found.value);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new DirectoryError("keydir_invalid_proof", "a devices value is not JSON");
    }
    if (!Array.isArray(parsed) || !parsed.every((d) => typeof d === "object" && d !== null && !Array.isArray(d))) {
      throw new DirectoryError("keydir_invalid_proof", "a devices value is a list of objects");
    }
    if (!equal(utf8(canonicalJson(parsed)), found.value)) {
      throw new DirectoryError("keydir_invalid_proof", "a devices value is not canonical JSON");
    }
    for (const d of parsed as Record<string, unknown>[]) out.set(String(d.device_id), signedKeys(d));
    return out;
  }
}

/** A device's signed keys as canonical JSON, without `unsigned` (Matrix's field outside the
 * signature, which a key query adds). Two devices are the same when these are equal. */
export function signedKeys(keys: Record<string, unknown>): string {
  const { unsigned: _unsigned, ...signed } = keys;
  return canonicalJson(signed);
}
