/**
 * Log entries about you, as `GET /v1/me/log-entries` returns them: decoded and opened the
 * way the Python SDK does (`client/log_entries.py`).
 *
 * From format version 2 (`"v": 2`) each entry has its own subject commitment
 *
 *     hex SHA-256("clearpost/log-subject/v2\n" || salt || nonce || canonical {"user", "detail"?})
 *
 * and the server hands your devices its opening (the nonce; for a device entry the device
 * id and keys). An older entry's subject is hex SHA-256(salt || user id), the same in all
 * of them.
 */
import { canonicalJson } from "./canonical";
import { fromBase64, fromUtf8, sha256, toHex, utf8 } from "./bytes";

export const ENTRY_TYPES = ["agreement", "scopes", "grant", "revocation", "access", "report", "device", "partner"];

export class EntryError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export interface Entry {
  index: number;
  type: string;
  time: number | null;
  partner: string | null;
  /** grant/revocation: the scopes; access: the one scope used. */
  scopes: string[];
  endpoint: string | null;
  body: Record<string, unknown>;
  /** What the commitment binds besides you (a device entry: device id and keys). */
  detail: Record<string, unknown> | null;
}

/** Parse entry bytes, refusing anything that is not canonical JSON of a known type. */
export function decodeEntry(index: number, bytes: Uint8Array): Entry {
  let body: unknown;
  try {
    const text = fromUtf8(bytes);
    body = JSON.parse(text);
    if (typeof body !== "object" || body === null || Array.isArray(body) || canonicalJson(body) !== text) {
      throw new Error("not canonical");
    }
  } catch {
    throw new EntryError(`entry ${index} is not a log entry (canonical JSON object)`, "log_bad_response");
  }
  const d = body as Record<string, unknown>;
  if (typeof d.type !== "string" || !ENTRY_TYPES.includes(d.type)) {
    throw new EntryError(`entry ${index} has an unknown type`, "log_bad_response");
  }
  let scopes: string[] = [];
  if (Array.isArray(d.scopes)) scopes = d.scopes.map(String);
  else if (typeof d.scope === "string") scopes = [d.scope];
  return {
    index,
    type: d.type,
    time: typeof d.time === "number" ? d.time : null,
    partner: typeof d.partner === "string" ? d.partner : null,
    scopes,
    endpoint: typeof d.endpoint === "string" ? d.endpoint : null,
    body: d,
    detail: null,
  };
}

/** The version-1 subject: hex SHA-256(salt || UTF-8 user id). */
export async function commitment(salt: Uint8Array, userId: string): Promise<string> {
  return toHex(await sha256(salt, utf8(userId)));
}

/** The version-2 subject of one entry. */
export async function entryCommitment(
  salt: Uint8Array,
  userId: string,
  nonce: Uint8Array,
  detail: Record<string, unknown> | null,
): Promise<string> {
  const opened: Record<string, unknown> = { user: userId };
  if (detail !== null) opened.detail = detail;
  return toHex(await sha256(utf8("clearpost/log-subject/v2\n"), salt, nonce, utf8(canonicalJson(opened))));
}

/** True when `opening` (`{"nonce", "detail"?}`) opens `subject` to `userId` under `salt`. */
export async function openCommitment(
  salt: Uint8Array,
  userId: string,
  opening: unknown,
  subject: unknown,
): Promise<boolean> {
  if (typeof opening !== "object" || opening === null || Array.isArray(opening)) return false;
  const o = opening as Record<string, unknown>;
  if (typeof o.nonce !== "string") return false;
  const detail = o.detail ?? null;
  if (detail !== null && (typeof detail !== "object" || Array.isArray(detail))) return false;
  const nonce = fromBase64(o.nonce, false);
  if (nonce === null || nonce.length !== 32 || salt.length !== 32) return false;
  return (await entryCommitment(salt, userId, nonce, detail as Record<string, unknown> | null)) === subject;
}

/**
 * The entry with its `detail`, once its subject opens to you; `old` is your version-1
 * subject. Throws `EntryError` with code `log_subject_mismatch` when it does not.
 */
export async function openSubject(
  entry: Entry,
  opening: unknown,
  salt: Uint8Array,
  userId: string,
  old: string,
): Promise<Entry> {
  const subject = entry.body.subject;
  if (!("v" in entry.body)) {
    if (subject !== old) throw notYours(entry, "the salt does not open its subject commitment");
    const keys = entry.body.keys;
    const detail = keys ? { device_id: entry.body.device_id, keys } : null;
    return { ...entry, detail };
  }
  if (entry.body.v !== 2) {
    throw new EntryError(`entry ${entry.index} has an unknown format version`, "log_bad_response");
  }
  if (opening === null || opening === undefined) {
    throw notYours(entry, "it came without the opening of its subject commitment");
  }
  if (!(await openCommitment(salt, userId, opening, subject))) {
    throw notYours(entry, "its opening does not open its subject commitment to you");
  }
  const detail = ((opening as Record<string, unknown>).detail ?? null) as Record<string, unknown> | null;
  if (entry.type === "device" && !deviceDetail(detail)) {
    throw notYours(entry, "its opening names no device id and keys");
  }
  return { ...entry, detail };
}

function deviceDetail(detail: Record<string, unknown> | null): boolean {
  if (detail === null || typeof detail.device_id !== "string") return false;
  const keys = detail.keys as Record<string, unknown> | undefined;
  return typeof keys === "object" && keys !== null && typeof keys.curve25519 === "string" && typeof keys.ed25519 === "string";
}

function notYours(entry: Entry, why: string): EntryError {
  return new EntryError(`entry ${entry.index} (${entry.type}) is not about you: ${why}`, "log_subject_mismatch");
}

/** A device entry's id, from its opening (or, before version 2, the entry itself). */
export function deviceId(entry: Entry): string | null {
  const found = entry.detail?.device_id ?? entry.body.device_id;
  return typeof found === "string" ? found : null;
}

export { fromBase64 };
