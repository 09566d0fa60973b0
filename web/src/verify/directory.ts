/**
 * A contact's devices checked against the key directory in this browser, as the Python
 * SDK's `client/directory.py` checks them (`Directory.verify`, `lookup`, `devices`):
 *
 * 1. Take the directory's VRF key (the one this browser pinned before; else the one the
 *    server publishes, pinned once an answer verifies under it) and the log key (the access
 *    history's pin, shared: one log, one key).
 * 2. The answer's log entry is the `keydir` entry of the epoch the answer names; its root
 *    is the root the proofs are checked against.
 * 3. The checkpoint is signed by the pinned log key and is consistent with the last
 *    checkpoint this browser verified (RFC 9162 consistency proof; smaller is a rollback);
 *    the entry is included in it.
 * 4. The epoch states the VRF key of step 1 (the log says which key everyone's labels are
 *    under, so no browser can be handed its own), is not older than the newest epoch this
 *    browser verified, and within twice the heartbeat it states plus a minute of this
 *    browser's clock (not older: a frozen view; nor dated ahead: it would pass for current
 *    that much longer).
 * 5. The VRF proofs, commitments and prefix-tree proof (`keydir.ts`) show a lookup of the
 *    label's greatest version, or its absence, or (this browser's own account) a history;
 *    the label is the one asked for.
 *
 * `monitor` is the SDK's `Directory.monitor`: this browser checks its own account's label
 * from the version it verified last, and reports each later version it did not make (a
 * device added or removed) as a `DirectoryAlarm`.
 *
 * Every failure throws `DirectoryError` with a code and a message a person can read.
 */
import { canonicalJson } from "./canonical";
import { equal, fromBase64, fromUtf8, toBase64, utf8 } from "./bytes";
import { Failed, consistent, opened, verifier, type LogApi, type LogMemory } from "./history";
import {
  type Bundle,
  bundleFromJson,
  checkAbsence,
  checkHistory,
  checkLookup,
  checkLookupSince,
  countTime,
  type EpochSeen,
  KeyDirError,
  logChain,
  MAX_HEARTBEAT_SECONDS,
  parseLogValue,
} from "./keydir";
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

/** `GET /v1/keydir/key`: the VRF key, the heartbeat, and how often entries about a person
 * are counted at the most (`log_seconds`; absent from servers before it was published). */
export interface Published {
  vrf_public_key: string;
  heartbeat_seconds: number;
  log_seconds?: number;
}

/** How the directory is reached (the worker's authenticated fetch; a fake in tests). */
export interface DirectoryApi extends Pick<LogApi, "key" | "consistency"> {
  /** `GET /v1/keydir/key` */
  directoryKey(): Promise<Published>;
  /** `GET /v1/keydir/devices/{user_id}[?since=k]` */
  lookupDevices(userId: string, since?: number): Promise<Record<string, unknown>>;
  /** `GET /v1/me/keydir/devices[?since=k]`: this account's own label, as a history */
  myDevices(since?: number): Promise<Record<string, unknown>>;
  /** `GET /v1/me/keydir/log`: this account's `log:` label */
  myLog(): Promise<Record<string, unknown>>;
}

/** What this browser remembers about the directory: its VRF key and the newest epoch, and
 * per contact the greatest version of their devices it verified (its value in base64). */
export interface DirectoryMemory {
  load(): Promise<{ vrfKey: string; epoch: number } | null>;
  save(value: { vrfKey: string; epoch: number }): Promise<void>;
  seen(userId: string): Promise<Seen | null>;
  remember(userId: string, seen: Seen): Promise<void>;
  /** What the last check of this browser's own account verified. */
  own(): Promise<Own | null>;
  rememberOwn(own: Own): Promise<void>;
}

/** The greatest version of this account's `devices:` label this browser verified, and each
 * of its devices' signed keys in it (`signedKeys`), by device id. */
export interface Own {
  version: number;
  devices: Record<string, string>;
}

/** A version of this account's devices that this browser did not make: devices added or
 * removed (their ids), or the label shown below the version verified before. */
export interface DirectoryAlarm {
  version: number;
  epoch: number;
  added: string[];
  removed: string[];
  rolledBack: boolean;
}

export interface Seen {
  version: number;
  value: string;
}

export interface Verified {
  label: string;
  epoch: number;
  /** The epoch's `through`: every log entry below it is counted in the `log:` labels. */
  through: number;
  /** The epoch's time (ms, the server's clock) and the checkpoint its entry is in. */
  time: number;
  checkpoint: { size: bigint; root: Uint8Array };
  /** The epoch entry's `log_seconds`: null in entries from before it was logged. */
  logSeconds: number | null;
  /** The label's greatest version and its value; null for an absence. */
  version: number | null;
  value: Uint8Array | null;
}

type Anchor = Omit<Verified, "version" | "value">;

export class Directory {
  private heartbeatMs = 0;
  private published: Published | null = null;
  private logKey: { origin: string; vkey: string } | null = null;

  constructor(
    private readonly api: DirectoryApi,
    private readonly log: LogMemory,
    private readonly memory: DirectoryMemory,
    private readonly now: () => number = Date.now,
  ) {}

  /** Steps 1-5 for a lookup answer (`known`: a repeat lookup from that version). */
  async verify(answer: Record<string, unknown>, known: Seen | null = null): Promise<Verified> {
    const [found, [version, value]] = await this.checked(answer, (vrfKey, root, bundle): [number | null, Uint8Array | null] => {
      if (known !== null) {
        // a repeat lookup: nothing opened means the greatest version is still the one seen
        const [n, opened] = checkLookupSince(vrfKey, root, bundle, known.version);
        const v = opened ?? fromBase64(known.value, false);
        if (v === null) throw new DirectoryError("keydir_invalid_proof", "the remembered value is not base64");
        return [n, v];
      }
      if (bundle.present.length) return checkLookup(vrfKey, root, bundle);
      checkAbsence(vrfKey, root, bundle);
      return [null, null];
    });
    return { ...found, version, value };
  }

  /** Steps 1-4, then `prove` (step 5) on the answer's bundle; errors in a person's words. */
  private async checked<T>(
    answer: Record<string, unknown>,
    prove: (vrfKey: Uint8Array, root: Uint8Array, bundle: Bundle) => T,
  ): Promise<[Anchor, T]> {
    try {
      return await this.check(answer, prove);
    } catch (exc) {
      if (exc instanceof DirectoryError) throw exc;
      if (exc instanceof Failed) throw new DirectoryError(exc.code, exc.message);
      const why = exc instanceof Error ? exc.message : String(exc);
      const code = exc instanceof KeyDirError ? exc.code : "keydir_invalid_proof";
      throw new DirectoryError(code, `the key directory's answer does not verify: ${why}`);
    }
  }

  private async check<T>(
    answer: Record<string, unknown>,
    prove: (vrfKey: Uint8Array, root: Uint8Array, bundle: Bundle) => T,
  ): Promise<[Anchor, T]> {
    // 1.
    const published = (this.published ??= await this.api.directoryKey());
    const heartbeat = published.heartbeat_seconds;
    if (!Number.isSafeInteger(heartbeat) || heartbeat < 0 || heartbeat > MAX_HEARTBEAT_SECONDS) {
      throw new DirectoryError(
        "keydir_bad_response",
        `the key directory says it may go ${Number(heartbeat).toLocaleString("en")} s without an epoch, but no server may wait more than ${MAX_HEARTBEAT_SECONDS.toLocaleString("en")} s: this browser would accept a directory frozen that long`,
      );
    }
    this.heartbeatMs = heartbeat * 1000;
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
    const through = entry.through;
    if (typeof through !== "number" || !Number.isSafeInteger(through) || through < 0) {
      throw new DirectoryError("keydir_wrong_entry", "the epoch's entry does not say up to which log entry it counts");
    }
    const { key: statedKey, heartbeat: statedHeartbeat, logSeconds } = statedIn(entry);
    const rootHex = String(entry.root);
    if (!/^[0-9a-f]{64}$/.test(rootHex)) throw new DirectoryError("keydir_wrong_entry", "the epoch's root is not a hash");
    const root = Uint8Array.from(rootHex.match(/../g)!.map((b) => parseInt(b, 16)));
    // 3.
    const note = String(answer.checkpoint);
    const checkpoint = await opened(note, logVerifier, pin.origin, "the key directory's checkpoint");
    if (pin.note && pin.note !== note) {
      // an identical note is the checkpoint just opened: nothing to compare
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
    if (statedKey !== null && !equal(statedKey, vrfRaw)) {
      throw new DirectoryError(
        "keydir_key_not_logged",
        `the key directory's epoch ${epoch} states the VRF key ${toBase64(statedKey)}, but this browser ${saved?.vrfKey ? "pinned" : "was handed"} ${vrfKey}: labels under a key the log does not state are ones no account's owner checks`,
      );
    }
    const heartbeatMs = statedHeartbeat === null ? this.heartbeatMs : statedHeartbeat * 1000;
    const time = Number(entry.time);
    const now = this.now();
    if (!(time >= now - 2 * heartbeatMs - SLACK_MS)) {
      throw new DirectoryError(
        "keydir_stale",
        `the key directory's epoch ${epoch} is older than its heartbeat allows: the server is showing a stale directory`,
      );
    }
    if (time > now + 2 * heartbeatMs + SLACK_MS) {
      const ahead = Math.round((time - now) / 1000).toLocaleString("en");
      throw new DirectoryError(
        "keydir_dated_ahead",
        `the key directory's epoch ${epoch} is dated ${ahead} s ahead of this browser's clock: it would pass for current that much longer, so the server could keep showing it (check this computer's clock)`,
      );
    }
    // 5.
    const bundle = bundleFromJson(answer);
    const proven = prove(vrfRaw, root, bundle);
    // remember: the pins, the newest checkpoint and epoch (never replace a newer one)
    const again = await this.log.load();
    const keep = again?.note ? await opened(again.note, logVerifier, pin.origin, "the checkpoint this browser verified before") : null;
    if (!keep || keep.size <= checkpoint.size) await this.log.save({ origin: pin.origin, vkey: pin.vkey, note });
    await this.memory.save({ vrfKey, epoch: Math.max(epoch, newest) });
    return [{ label: bundle.label, epoch, through, time, checkpoint: { size: checkpoint.size, root: checkpoint.root }, logSeconds }, proven];
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
    return found.value === null ? new Map() : devicesIn(found.value);
  }

  /** This browser's own account (`userId`, this device `deviceId`): its label's versions
   * after the one this browser verified last (all of them the first time), verified; an
   * alarm for each one this device did not make, naming the devices added and removed. The
   * first check learns the account as it is and raises none. */
  async monitor(userId: string, deviceId: string): Promise<{ version: number; epoch: number; alarms: DirectoryAlarm[] }> {
    const state = (await this.memory.own()) ?? { version: -1, devices: {} };
    const last = state.version;
    const since = last < 0 ? undefined : last;
    const [found, opened] = await this.checked(await this.api.myDevices(since), (vrfKey, root, bundle) =>
      checkHistory(vrfKey, root, bundle, since),
    );
    if (found.label !== `devices:${userId}`) {
      throw new DirectoryError("keydir_wrong_label", "the key directory answered for another account");
    }
    // nothing opened after `last`: the greatest version is still `last`
    const latest = opened.size ? Math.max(...opened.keys()) : last;
    const alarms: DirectoryAlarm[] = [];
    if (latest < last) alarms.push({ version: latest, epoch: found.epoch, added: [], removed: [], rolledBack: true });
    let before = new Map(Object.entries(state.devices));
    for (let version = last + 1; version <= latest; version++) {
      const value = opened.get(version);
      if (value === undefined) continue; // an erased earlier account of this name
      const now = devicesIn(value);
      const added = [...now.keys()].filter((d) => before.get(d) !== now.get(d)).sort();
      const removed = [...before.keys()].filter((d) => !now.has(d)).sort();
      const mine = added.length === 1 && added[0] === deviceId && removed.length === 0;
      if (last >= 0 && !mine) alarms.push({ version, epoch: found.epoch, added, removed, rolledBack: false });
      before = now;
    }
    if (latest >= last) await this.memory.rememberOwn({ version: latest, devices: Object.fromEntries(before) });
    return { version: latest, epoch: found.epoch, alarms };
  }

  /** The access history is complete: the log entries about `userId` below the directory's
   * `through` are exactly those its `log:` label counts (the same number, the same hash
   * chain of their indexes), and they were counted no longer before the answer's epoch
   * than its `log_seconds` and a minute allow (`countTime`); `indexes`: every entry the
   * server listed as about you. Returns the count, `through` and when it was counted;
   * throws `DirectoryError` `log_incomplete` or `log_count_late` otherwise (the SDK's
   * `check_complete`). */
  async complete(userId: string, indexes: number[]): Promise<{ count: number; through: number; everySeconds: number | null; countedAt: number }> {
    const answer = await this.api.myLog();
    const found = await this.verify(answer);
    if (found.label !== `log:${userId}`) {
      throw new DirectoryError("keydir_wrong_label", "the key directory answered for another account");
    }
    const every = found.logSeconds ?? this.published?.log_seconds;
    if (typeof every !== "number") {
      throw new DirectoryError(
        "keydir_invalid_proof",
        "neither the epoch's log entry nor the server says how often the key directory counts the log entries about people (log_seconds), so a count it stopped taking cannot be told",
      );
    }
    let countedAt: number;
    try {
      countedAt = countTime(await countEpochs(answer, found), [found.epoch, found.through, found.time], every);
    } catch (exc) {
      if (exc instanceof DirectoryError) throw exc;
      if (exc instanceof KeyDirError && exc.code === "log_count_late") throw new DirectoryError(exc.code, exc.message);
      const why = exc instanceof Error ? exc.message : String(exc);
      throw new DirectoryError("keydir_invalid_proof", `the key directory's answer does not verify: ${why}`);
    }
    let count = 0;
    let chain = new Uint8Array(32) as Uint8Array;
    if (found.value !== null) {
      try {
        [count, chain] = parseLogValue(found.value);
      } catch (exc) {
        throw new DirectoryError("keydir_invalid_proof", `the key directory's answer does not verify: ${(exc as Error).message}`);
      }
    }
    const below = indexes.filter((i) => i < found.through).sort((a, b) => a - b);
    const [n, got] = logChain(below);
    if (n !== count || !equal(got, chain)) {
      const missing = count - n;
      throw new DirectoryError(
        "log_incomplete",
        `the key directory counts ${count} log entries about you below index ${found.through}, but the server listed ${n}` +
          (missing > 0 ? `: it left ${missing} out of your history` : ": the listed entries are not the ones committed"),
      );
    }
    return { count, through: found.through, everySeconds: every, countedAt };
  }
}

/** [epoch, through, time] of each epoch in a `log:` answer's `counted`, each checked to be
 * that epoch's `keydir` entry, included in the answer's checkpoint. */
async function countEpochs(answer: Record<string, unknown>, found: Anchor): Promise<EpochSeen[]> {
  const items = answer.counted;
  if (!Array.isArray(items)) throw new KeyDirError("the answer does not say when its count was taken");
  const out: EpochSeen[] = [];
  for (const item of items as Record<string, unknown>[]) {
    const body = fromBase64(String(item.entry), false);
    const index = item.log_index;
    if (body === null || typeof index !== "number" || !Number.isSafeInteger(index) || index < 0 || !Array.isArray(item.inclusion)) {
      throw new KeyDirError("an epoch the answer shows for its count is malformed");
    }
    const hashes = item.inclusion.map((h) => {
      const raw = fromBase64(String(h), false);
      if (raw === null) throw new KeyDirError("an inclusion proof hash is not base64");
      return raw;
    });
    try {
      await verifyInclusion(await leafHash(body), BigInt(index), found.checkpoint.size, hashes, found.checkpoint.root);
    } catch (exc) {
      const why = exc instanceof ProofError ? exc.message : String(exc);
      throw new DirectoryError("keydir_not_in_log", `an epoch the answer shows for its count is not in the signed log: ${why}`);
    }
    const text = fromUtf8(body);
    const entry = JSON.parse(text) as Record<string, unknown>;
    const [e, t, time] = [entry.epoch, entry.through, entry.time];
    if (canonicalJson(entry) !== text || entry.type !== "keydir" || e !== item.epoch) {
      throw new DirectoryError("keydir_wrong_entry", "an epoch the answer shows for its count is not that epoch's log entry");
    }
    if (![e, t, time].every((v) => typeof v === "number" && Number.isSafeInteger(v))) {
      throw new DirectoryError("keydir_wrong_entry", "an epoch's entry does not say its number, count and time");
    }
    out.push([e as number, t as number, time as number]);
  }
  return out;
}

/** The devices of a `devices:` value (canonical JSON, a list of signed device keys): each
 * one's `signedKeys`, by device id. */
function devicesIn(value: Uint8Array): Map<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fromUtf8(value));
  } catch {
    throw new DirectoryError("keydir_invalid_proof", "a devices value is not JSON");
  }
  if (!Array.isArray(parsed) || !parsed.every((d) => typeof d === "object" && d !== null && !Array.isArray(d))) {
    throw new DirectoryError("keydir_invalid_proof", "a devices value is a list of objects");
  }
  if (!equal(utf8(canonicalJson(parsed)), value)) {
    throw new DirectoryError("keydir_invalid_proof", "a devices value is not canonical JSON");
  }
  const out = new Map<string, string>();
  for (const d of parsed as Record<string, unknown>[]) out.set(String(d.device_id), signedKeys(d));
  return out;
}

/** A device's signed keys as canonical JSON, without `unsigned` (Matrix's field outside the
 * signature, which a key query adds). Two devices are the same when these are equal. */
export function signedKeys(keys: Record<string, unknown>): string {
  const { unsigned: _unsigned, ...signed } = keys;
  return canonicalJson(signed);
}

/** What an epoch's entry states (the SDK's `core/keydir_epoch.py`): its VRF key and
 * heartbeat (both, or neither in an entry from before them; a heartbeat no server may state
 * is refused) and its `log_seconds` (null before it was logged). In the signed log, they are
 * the same for everyone. */
function statedIn(entry: Record<string, unknown>): { key: Uint8Array | null; heartbeat: number | null; logSeconds: number | null } {
  const whole = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
  const logSeconds = entry.log_seconds ?? null;
  if (logSeconds !== null && !whole(logSeconds)) throw new DirectoryError("keydir_wrong_entry", "an epoch's log_seconds is not a whole number");
  const key = entry.vrf_public_key ?? null;
  const heartbeat = entry.heartbeat_seconds ?? null;
  if ((key === null) !== (heartbeat === null)) {
    throw new DirectoryError("keydir_wrong_entry", "an epoch states its VRF key and heartbeat, or neither");
  }
  if (key === null || heartbeat === null) return { key: null, heartbeat: null, logSeconds };
  const raw = typeof key === "string" ? fromBase64(key, false) : null;
  if (raw === null || raw.length !== 32) throw new DirectoryError("keydir_wrong_entry", "an epoch's vrf_public_key is not 32 bytes of base64");
  if (!whole(heartbeat)) throw new DirectoryError("keydir_wrong_entry", "an epoch's heartbeat_seconds is not a whole number");
  if (heartbeat > MAX_HEARTBEAT_SECONDS) {
    throw new DirectoryError(
      "keydir_wrong_entry",
      `an epoch says the directory may go ${heartbeat.toLocaleString("en")} s without an epoch, but no server may wait more than ${MAX_HEARTBEAT_SECONDS.toLocaleString("en")} s`,
    );
  }
  return { key: raw, heartbeat, logSeconds };
}
