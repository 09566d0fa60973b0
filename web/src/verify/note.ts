/**
 * C2SP signed notes, checkpoints and cosignatures, checked in the browser with WebCrypto's
 * Ed25519: the same rules as the server's `core/tlog/note.py`, `checkpoint.py` and
 * `cosignature.py`.
 *
 * A verifier key is `<name>+<hex key id>+<base64(type || public key)>`; type 0x01 signs
 * notes (the log's key), type 0x04 signs `cosignature/v1` (a witness). The key id is the
 * first four bytes of SHA-256(name || "\n" || type || public key).
 */
import { concat, fromBase64, sha256, utf8 } from "./bytes";

export class NoteError extends Error {}

export const SIG_ED25519 = 0x01;
export const SIG_COSIGNATURE_V1 = 0x04;
const MAX_NOTE_BYTES = 256 * 1024;
const MAX_SIGNATURES = 100;
const MAX_TIMESTAMP = (1n << 63n) - 1n;
const DASH = "\u2014 ";

export function validKeyName(name: string): boolean {
  return name.length > 0 && !/[\s+\u0000-\u001f]/u.test(name);
}

export async function keyId(name: string, type: number, publicKey: Uint8Array): Promise<number> {
  const digest = await sha256(concat(utf8(name + "\n"), new Uint8Array([type]), publicKey));
  return new DataView(digest.buffer).getUint32(0);
}

/** A trusted key: the log's (`SIG_ED25519`) or a witness's (`SIG_COSIGNATURE_V1`). */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  readonly type: number;
  readonly vkey: string;
  /** True when `signature` (without the key id) is valid for the note `text`. */
  verify(text: Uint8Array, signature: Uint8Array): Promise<boolean>;
}

/** Parse a verifier key, checking its key id; throws `NoteError`. */
export async function parseVkey(vkey: string): Promise<NoteVerifier> {
  const first = vkey.indexOf("+");
  const second = vkey.indexOf("+", first + 1);
  if (first < 0 || second < 0) throw new NoteError("a verifier key has three parts separated by '+'");
  const [name, hexId, b64] = [vkey.slice(0, first), vkey.slice(first + 1, second), vkey.slice(second + 1)];
  if (!validKeyName(name)) throw new NoteError("the key name is empty or has spaces");
  if (!/^[0-9a-f]{8}$/.test(hexId)) throw new NoteError("the key id must be 8 lower-case hex digits");
  const raw = fromBase64(b64);
  if (raw === null || raw.length !== 33) throw new NoteError("the key is not base64 of a typed Ed25519 key");
  const type = raw[0];
  const publicKey = raw.slice(1);
  if (type !== SIG_ED25519 && type !== SIG_COSIGNATURE_V1) {
    throw new NoteError(`unknown signature type 0x${type.toString(16).padStart(2, "0")}`);
  }
  const id = await keyId(name, type, publicKey);
  if (id !== parseInt(hexId, 16)) throw new NoteError("the key id does not match its name and key");
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey("raw", publicKey as BufferSource, { name: "Ed25519" }, false, ["verify"]);
  } catch {
    throw new NoteError("not an Ed25519 public key");
  }
  const ed = (msg: Uint8Array, sig: Uint8Array) =>
    sig.length === 64
      ? crypto.subtle.verify("Ed25519", key, sig as BufferSource, msg as BufferSource)
      : Promise.resolve(false);
  const verify =
    type === SIG_ED25519
      ? ed
      : async (text: Uint8Array, sig: Uint8Array) => {
          if (sig.length !== 72) return false;
          const t = cosignatureTime(sig);
          if (t > MAX_TIMESTAMP) return false;
          return ed(concat(utf8(`cosignature/v1\ntime ${t}\n`), text), sig.slice(8));
        };
  return { name, keyId: id, type, vkey, verify };
}

function cosignatureTime(sig: Uint8Array): bigint {
  return new DataView(sig.buffer, sig.byteOffset, 8).getBigUint64(0);
}

export interface NoteSignature {
  name: string;
  keyId: number;
  signature: Uint8Array;
  /** A cosignature's timestamp (seconds since the epoch), when its key is a witness's. */
  time?: bigint;
}

export interface Note {
  text: string;
  signatures: NoteSignature[];
  unverified: NoteSignature[];
}

/** Split a note into text and signature lines, checking syntax only. */
export function parseNote(msg: string): { text: string; signatures: NoteSignature[] } {
  // 1. Size and characters.
  if (utf8(msg).length > MAX_NOTE_BYTES) throw new NoteError(`a note is at most ${MAX_NOTE_BYTES} bytes`);
  if (/[\u0000-\u0009\u000b-\u001f]/.test(msg)) {
    throw new NoteError("a note must not contain control characters other than newline");
  }
  // 2. The last blank line separates the text from the signatures.
  const split = msg.lastIndexOf("\n\n");
  if (split < 0) throw new NoteError("a note needs a blank line before its signatures");
  const text = msg.slice(0, split + 1);
  const block = msg.slice(split + 2);
  if (!block.endsWith("\n")) throw new NoteError("a note must end with a signature line and a newline");
  // 3. Every remaining line is a signature line.
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw new NoteError(`a note carries at most ${MAX_SIGNATURES} signatures`);
  return { text, signatures: lines.map(signatureLine) };
}

function signatureLine(line: string): NoteSignature {
  if (!line.startsWith(DASH)) throw new NoteError("a signature line starts with an em dash and a space");
  const rest = line.slice(DASH.length);
  const space = rest.indexOf(" ");
  const name = space < 0 ? "" : rest.slice(0, space);
  if (!validKeyName(name)) throw new NoteError("a signature line needs a valid key name and a space");
  const raw = fromBase64(rest.slice(space + 1));
  if (raw === null || raw.length < 5) throw new NoteError("a signature is base64 of a key id and signature bytes");
  return { name, keyId: new DataView(raw.buffer).getUint32(0), signature: raw.slice(4) };
}

/**
 * Open a signed note (`open_note`): every signature by a known key must verify (one bad
 * signature rejects the note), others are kept aside as unverified, and at least one
 * must be by a known key.
 */
export async function openNote(msg: string, verifiers: readonly NoteVerifier[]): Promise<Note> {
  const { text, signatures } = parseNote(msg);
  const known = new Map<string, NoteVerifier>();
  for (const v of verifiers) known.set(`${v.name}+${v.keyId}`, v);
  const body = utf8(text);
  const verified: NoteSignature[] = [];
  const unverified: NoteSignature[] = [];
  for (const sig of signatures) {
    const v = known.get(`${sig.name}+${sig.keyId}`);
    if (v === undefined) {
      unverified.push(sig);
      continue;
    }
    if (!(await v.verify(body, sig.signature))) {
      throw new NoteError(`invalid signature for key ${sig.name}+${sig.keyId.toString(16).padStart(8, "0")}`);
    }
    verified.push(v.type === SIG_COSIGNATURE_V1 ? { ...sig, time: cosignatureTime(sig.signature) } : sig);
  }
  if (!verified.length) throw new NoteError("the note has no signature from a trusted key");
  return { text, signatures: verified, unverified };
}

export interface Checkpoint {
  origin: string;
  size: bigint;
  root: Uint8Array;
  extensions: string[];
}

/** Parse a checkpoint's note text strictly (C2SP tlog-checkpoint). */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith("\n")) throw new NoteError("checkpoint text must end with a newline");
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new NoteError("a checkpoint needs origin, size and root hash lines");
  const [origin, sizeLine, rootLine, ...extensions] = lines;
  if (!origin || /[\u0000-\u001f]/.test(origin)) throw new NoteError("a checkpoint needs an origin line");
  if (!/^(0|[1-9][0-9]*)$/.test(sizeLine)) throw new NoteError("the tree size must be decimal digits");
  const size = BigInt(sizeLine);
  if (size > (1n << 64n) - 1n) throw new NoteError("the tree size must be an unsigned 64-bit integer");
  const root = fromBase64(rootLine);
  if (root === null || root.length !== 32) throw new NoteError("the root hash must be canonical base64 of 32 bytes");
  if (extensions.some((l) => !l)) throw new NoteError("extension lines must not be empty");
  return { origin, size, root, extensions };
}

/** Open a checkpoint that must carry a valid signature by `log` for the log's origin;
 * cosignatures by `witnesses` are verified too (an invalid one rejects it). */
export async function openCheckpoint(
  note: string,
  log: NoteVerifier,
  origin: string,
  witnesses: readonly NoteVerifier[] = [],
): Promise<{ checkpoint: Checkpoint; note: Note }> {
  const opened = await openNote(note, [log, ...witnesses]);
  if (!opened.signatures.some((s) => s.name === log.name && s.keyId === log.keyId)) {
    throw new NoteError(`the checkpoint is not signed by the log key ${log.vkey}`);
  }
  const checkpoint = parseCheckpoint(opened.text);
  if (checkpoint.origin !== origin) throw new NoteError("the checkpoint is for a different log origin");
  return { checkpoint, note: opened };
}
