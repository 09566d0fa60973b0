// The crypto worker: one per tab. It holds the device's OlmMachine (matrix-sdk-crypto, in
// WebAssembly), its access token, and the live connection to the server, so that key work
// and decryption never block the page. The page asks for things by name (see `ops` below)
// and gets decrypted messages back; the wire formats are Matrix's (docs/api.md).

import {
  CollectStrategy,
  DecryptionErrorCode,
  DecryptionSettings,
  DeviceId,
  DeviceLists,
  EncryptionSettings,
  initAsync,
  KeysBackupRequest,
  KeysClaimRequest,
  KeysQueryRequest,
  KeysUploadRequest,
  MegolmDecryptionError,
  OlmMachine,
  ProcessedToDeviceEventType,
  RequestType,
  RoomId,
  RoomMessageRequest,
  SignatureUploadRequest,
  ToDeviceRequest,
  TrustRequirement,
  UserId,
  type DecryptedToDeviceEvent,
} from "@matrix-org/matrix-sdk-crypto-wasm";

import { ApiError, call, enc } from "./api";
import { Directory, DirectoryError, signedKeys, type DirectoryAlarm, type Own, type Seen } from "./verify/directory";
import type { Remembered } from "./verify/history";
import type { Call, Conv, DeviceInfo, DirectoryChange, DirectoryCheck, Me, Msg, Push, Reply } from "./protocol";
import * as store from "./store";

// ---- state ---------------------------------------------------------------------------------

let session: store.Session | null = null;
let machine: OlmMachine | null = null;
let stopped = false;
let cursor: string | null = null;

interface RawConv {
  conversation_id: string;
  room_id?: string;
  kind: "direct" | "group";
  created_by: string;
  members: string[];
  last_seq: number;
  joined_from_seq?: number;
}

interface RawMessage {
  type?: string;
  event_id?: string;
  room_id?: string;
  sender: string;
  sender_device: string;
  origin_server_ts?: number;
  sent_at?: number;
  content?: Record<string, unknown>;
  conversation_id: string;
  seq: number;
}

interface ConvState {
  raw: RawConv;
  messages: Map<number, Msg>;
  events: Map<number, RawMessage>;
  name: string;
  readSeq: number;
  /** every message above this seq is loaded (history is paged from there back on open) */
  loadedAfter: number;
  /** loaded back to the first message this user may see */
  complete: boolean;
  /** earlier history is being decrypted in the background (see `showHistory`) */
  loading: boolean;
  /** why the background loading stopped, in words, if it failed */
  historyError: string | null;
}

const convs = new Map<string, ConvState>();
/** The conversation the page shows, if any: its earlier history loads while it is shown. */
let viewing: string | null = null;
/** our own key requests to our other devices, by request id */
const myKeyRequests = new Set<string>();
/** encrypted bodies by transaction id, so that a retry sends the very same request */
const sentBodies = new Map<string, string>();
/** the transaction id of each of those bodies, by its Megolm ciphertext: a send whose answer
 * was lost may still have been stored, and then comes back through sync as an ordinary
 * message; knowing its transaction id, the page shows it once (as sent), not twice */
const sentCiphertexts = new Map<string, string>();

function ciphertextOf(content: unknown): string | null {
  const c = content && typeof content === "object" ? (content as Record<string, unknown>)["ciphertext"] : undefined;
  return typeof c === "string" ? c : null;
}

// Fetch and compile the crypto engine as soon as the worker starts, while the session is
// read from IndexedDB (a cold load spends most of its time here).
const engine = initAsync(new URL("crypto.wasm", self.location.href));

function post(msg: Push): void {
  (self as unknown as Worker).postMessage(msg);
}

function me(): Me {
  if (!session) throw new ApiError(401, "signed_out", "you are not signed in");
  return { userId: session.userId, deviceId: session.deviceId };
}

function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  return call<T>(method, path, body, session?.accessToken);
}

/** Run one thing at a time: the machine's outgoing requests, key sharing and sending must
 * not interleave (two room-key shares at once would create two sessions). */
let queue: Promise<unknown> = Promise.resolve();
function serial<T>(fn: () => Promise<T>): Promise<T> {
  const next = queue.then(fn, fn);
  queue = next.catch(() => undefined);
  return next;
}

// ---- the machine's requests ----------------------------------------------------------------

type Outgoing =
  | KeysUploadRequest
  | KeysQueryRequest
  | KeysClaimRequest
  | ToDeviceRequest
  | SignatureUploadRequest
  | RoomMessageRequest
  | KeysBackupRequest;

// ---- the key directory (issue 17): nothing is encrypted to a device it does not hold -------

const directory = new Directory(
  {
    key: () => call("GET", "/v1/log/key"),
    consistency: async (from, to) =>
      (await call<{ hashes: string[] }>("GET", `/v1/log/proof/consistency?from=${from}&to=${to}`)).hashes,
    directoryKey: () => call("GET", "/v1/keydir/key"),
    lookupDevices: (userId, since) =>
      api("GET", `/v1/keydir/devices/${enc(userId)}${since === undefined ? "" : `?since=${since}`}`),
    myDevices: (since) => api("GET", `/v1/me/keydir/devices${since === undefined ? "" : `?since=${since}`}`),
    myLog: () => api("GET", "/v1/me/keydir/log"),
  },
  // the log pin and last checkpoint of these checks, kept with the device (wiped with it)
  {
    load: async () => (await store.get<Remembered>("keydir-log")) ?? null,
    save: (value) => store.put("keydir-log", value),
  },
  {
    load: async () => (await store.get<{ vrfKey: string; epoch: number }>("keydir")) ?? null,
    save: (value) => store.put("keydir", value),
    seen: async (userId) => (await store.get<Seen>(`keydir-seen:${userId}`)) ?? null,
    remember: (userId, seen) => store.put(`keydir-seen:${userId}`, seen),
    own: async () => (await store.get<Own>("keydir-own")) ?? null,
    rememberOwn: (own) => store.put("keydir-own", own),
  },
);

/** Devices refused because the key directory does not hold them: user -> device -> why. */
const refused = new Map<string, Map<string, string>>();
/** A device that has just published its keys is in the next epoch (the server publishes
 * one within a second): one missing is asked about again a few times before it is refused,
 * as the SDK does (client/verify.py). */
const UNLISTED_RETRIES = 4;
const UNLISTED_WAIT_MS = 500;

async function unlisted(user: string, devices: Record<string, Record<string, unknown>>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let attempt = 0; attempt < UNLISTED_RETRIES; attempt++) {
    out.clear();
    let listed: Map<string, string>;
    try {
      listed = await directory.devices(user);
    } catch (err) {
      const why = err instanceof DirectoryError ? err.message : err instanceof Error ? err.message : String(err);
      for (const dev of Object.keys(devices)) {
        out.set(dev, `The key directory's answer about ${user} did not verify in this browser (${why}), so this browser does not encrypt to device ${dev}.`);
      }
      return out; // evidence against the server: not retried
    }
    for (const [dev, keys] of Object.entries(devices)) {
      if (listed.get(dev) !== signedKeys(keys)) {
        out.set(dev, `Device ${dev} of ${user} is not in the key directory, so this browser refuses to encrypt to it: the server named a device that others may not see.`);
      }
    }
    if (!out.size || attempt === UNLISTED_RETRIES - 1) return out;
    await sleep(UNLISTED_WAIT_MS);
  }
  return out;
}

/** A key query's answer with every device the directory does not hold taken out, so the
 * machine never learns it (no Olm session, no room key, no to-device message). */
async function checkedAgainstDirectory(response: Record<string, unknown>): Promise<Record<string, unknown>> {
  const all = response["device_keys"] as Record<string, Record<string, Record<string, unknown>>> | undefined;
  if (!all || typeof all !== "object") return response;
  const mine = session ? me() : null;
  let changed = false;
  for (const [user, devices] of Object.entries(all)) {
    if (!devices || typeof devices !== "object") continue;
    const out = await unlisted(user, devices);
    if (mine && user === mine.userId) out.delete(mine.deviceId); // the machine knows its own keys
    const before = refused.get(user);
    for (const [dev, why] of out) {
      delete devices[dev];
      if (!before?.has(dev)) post({ push: "notice", id: `refused:${user}:${dev}`, text: why, bad: true });
    }
    if ((before?.size ?? 0) !== out.size || [...out.keys()].some((d) => !before?.has(d))) changed = true;
    if (out.size) refused.set(user, out);
    else refused.delete(user);
  }
  if (changed) pushConversations();
  return response;
}

async function send(req: Outgoing): Promise<void> {
  const m = machine!;
  let response: unknown;
  try {
    if (req instanceof KeysUploadRequest) {
      response = await api("POST", "/v1/keys/upload", req.body);
    } else if (req instanceof KeysQueryRequest) {
      response = await checkedAgainstDirectory(await api<Record<string, unknown>>("POST", "/v1/keys/query", req.body));
    } else if (req instanceof KeysClaimRequest) {
      response = await api("POST", "/v1/keys/claim", req.body);
    } else if (req instanceof ToDeviceRequest) {
      response = await api(
        "PUT",
        `/v1/to-device/${enc(req.event_type)}/${enc(req.txn_id)}`,
        req.body,
      );
    } else {
      // cross-signing, backups and room-message requests: Clearpost has none of these
      response = {};
    }
  } catch (err) {
    // The server takes only Olm-encrypted to-device messages: the machine's plaintext ones
    // (Matrix's key requests and withheld notices to devices without an Olm session) are
    // refused for good. Mark them done so that the queue does not repeat them forever.
    if (err instanceof ApiError && err.status === 422 && req instanceof ToDeviceRequest) {
      response = {};
    } else {
      throw err;
    }
  }
  if (req.id) await m.markRequestAsSent(req.id, req.type as RequestType, JSON.stringify(response));
}

async function flush(): Promise<void> {
  const m = machine;
  if (!m) return;
  for (let round = 0; round < 5; round++) {
    const reqs = (await m.outgoingRequests()) as Outgoing[];
    if (!reqs.length) return;
    for (const req of reqs) await send(req);
  }
}

// ---- sign-in, restore, sign-out ------------------------------------------------------------

async function start(s: store.Session, fresh = false): Promise<Me> {
  session = s;
  stopped = false;
  await engine;
  machine = await OlmMachine.initialize(
    new UserId(s.userId),
    new DeviceId(s.deviceId),
    s.storeName,
    s.storePassphrase,
  );
  machine.registerDevicesUpdatedCallback(async (users) => {
    devicesDirty = true;
    void noticeNewDevices(users);
    if (users.includes(s.userId)) ownDevicesChanged();
  });
  machine.registerRoomKeyUpdatedCallback(async (infos) => {
    const rooms = new Set(infos.map((i) => i.roomId.toString()));
    void retryWaiting(rooms);
  });
  // A withheld notice (m.room_key.withheld, inside Olm: the answer to "Ask again" from a
  // sender's device that will not send the key) is kept by the machine, which then reports
  // its code when decrypting; the messages already shown as waiting are decrypted again so
  // that they say why at once, not after the next reload.
  machine.registerRoomKeysWithheldCallback(async (infos) => {
    const rooms = new Set(infos.map((i) => i.roomId.toString()));
    void retryWaiting(rooms);
  });
  cursor = (await store.get<string>("cursor")) ?? null;
  // a new device publishes its keys before anything else; a restored one catches up later
  if (fresh) await serial(flush);
  else void serial(flush).catch(() => undefined);
  if (cursor === null) {
    const first = await api<SyncBody>("GET", "/v1/sync");
    await serial(() => apply(first));
  }
  await loadConversations(); // the inbox is ready when sign-in or restore returns
  void serial(checkOwnDevices);
  post({ push: "ready", me: me() });
  void live();
  return me();
}

/** One tab at a time holds the device: two OlmMachines on one store would both consume its
 * to-device messages and one-time keys. The lock is released when this worker ends. */
let locked = false;
async function takeDeviceLock(): Promise<void> {
  if (locked) return;
  // wait a little: on a reload the previous page's worker may not have ended yet
  locked = await new Promise<boolean>((resolve) => {
    navigator.locks
      .request("clearpost-device", { signal: AbortSignal.timeout(3_000) }, () => {
        resolve(true);
        return new Promise<void>(() => undefined); // held until this worker ends
      })
      .catch(() => resolve(false));
  });
  if (!locked) {
    throw new ApiError(409, "open_in_another_tab", "Clearpost is already open in another tab of this browser: use that tab (this browser is one device, used by one tab at a time).");
  }
}

async function register(username: string, password: string, invite?: string): Promise<Me> {
  await takeDeviceLock();
  await call("POST", "/v1/accounts", invite ? { username, password, invite } : { username, password });
  return login(username, password);
}

async function login(username: string, password: string): Promise<Me> {
  await takeDeviceLock();
  const name = deviceName();
  const r = await call<{ user_id: string; device_id: string; access_token: string }>(
    "POST",
    "/v1/login",
    { username, password, device_name: name },
  );
  await store.reset(); // whatever an earlier session left behind
  const s: store.Session = {
    userId: r.user_id,
    deviceId: r.device_id,
    accessToken: r.access_token,
    storeName: `clearpost-crypto-${r.device_id}`,
    storePassphrase: store.newPassphrase(),
  };
  await store.saveSession(s);
  return start(s, true);
}

function deviceName(): string {
  const ua = self.navigator.userAgent;
  const browser = /Firefox\//.test(ua)
    ? "Firefox"
    : /Edg\//.test(ua)
      ? "Edge"
      : /Chrom(e|ium)\//.test(ua)
        ? "Chromium"
        : /Safari\//.test(ua)
          ? "Safari"
          : "Browser";
  return `${browser} (web)`;
}

async function restore(): Promise<Me | null> {
  let s: store.Session | null = null;
  try {
    s = await store.loadSession();
  } catch {
    s = null; // the wrapping key is gone (site data partly cleared): start over
  }
  if (!s) return null;
  await takeDeviceLock();
  try {
    return await start(s);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      // removed or signed out elsewhere while this browser was closed
      await signedOut("This device was signed out (removed from your account, or its session ended).");
      return null;
    }
    throw err;
  }
}

async function wipeDevice(): Promise<void> {
  stopped = true;
  closeStream();
  const name = session?.storeName ?? null;
  machine?.close();
  machine = null;
  session = null;
  convs.clear();
  viewing = null;
  cursor = null;
  await store.wipe(name);
}

async function logout(): Promise<void> {
  try {
    await api("POST", "/v1/logout");
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) throw err;
  }
  await wipeDevice();
}

async function signedOut(reason: string): Promise<void> {
  await wipeDevice();
  post({ push: "signedOut", reason });
}

// ---- sync: WebSocket stream, long-poll as fallback ------------------------------------------

interface SyncBody {
  cursor: string;
  messages?: RawMessage[];
  to_device?: { events?: unknown[] } | unknown[];
  events?: { type: string; conversation_id?: string; change?: string }[];
  device_lists?: { changed?: string[]; left?: string[] };
  device_one_time_keys_count?: Record<string, number>;
  device_unused_fallback_key_types?: string[] | null;
}

let socket: WebSocket | null = null;

function closeStream(): void {
  if (socket) {
    socket.onclose = null;
    socket.close();
    socket = null;
  }
}

async function live(): Promise<void> {
  let failures = 0;
  while (!stopped) {
    const opened = await stream();
    if (stopped) return;
    if (opened) {
      failures = 0;
      continue;
    }
    // no WebSocket (a proxy that does not pass it, or the server refused): long-poll for a
    // while, then try the stream again
    failures++;
    post({ push: "connection", state: "polling" });
    const until = Date.now() + Math.min(60_000, 5_000 * failures);
    while (!stopped && Date.now() < until) {
      try {
        const body = await api<SyncBody>(
          "GET",
          `/v1/sync?since=${enc(cursor ?? "")}&timeout=20000`,
        );
        await serial(() => apply(body));
      } catch (err) {
        if (await fatal(err)) return;
        post({ push: "connection", state: "offline" });
        await sleep(2_000);
      }
    }
  }
}

async function fatal(err: unknown): Promise<boolean> {
  if (err instanceof ApiError && err.status === 401) {
    await signedOut("This device was signed out (removed from your account, or its session ended).");
    return true;
  }
  if (err instanceof ApiError && err.code === "invalid_cursor") {
    cursor = null;
    await store.del("cursor");
  }
  return false;
}

/** One WebSocket, until it closes. Resolves true if it was open for a while. */
function stream(): Promise<boolean> {
  return new Promise((resolve) => {
    const url = new URL("/v1/stream", self.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (cursor) url.searchParams.set("since", cursor);
    let openedAt = 0;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, ["clearpost.v1", `clearpost.bearer.${session!.accessToken}`]);
    } catch {
      resolve(false);
      return;
    }
    socket = ws;
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      openedAt = Date.now();
      post({ push: "connection", state: "live" });
    };
    ws.onmessage = (ev) => {
      const text = typeof ev.data === "string" ? ev.data : new TextDecoder().decode(ev.data);
      const body = JSON.parse(text) as SyncBody;
      void serial(async () => {
        await apply(body);
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ ack: body.cursor }));
      });
    };
    ws.onclose = (ev) => {
      socket = null;
      if (ev.code === 4401) {
        void signedOut("This device was signed out (removed from your account, or its session ended).");
        resolve(true);
        return;
      }
      if (ev.code === 4400) {
        cursor = null;
        void store.del("cursor");
      }
      const wasOpen = openedAt > 0 && Date.now() - openedAt > 2_000;
      if (ev.code === 4429 || ev.code === 1013 || ev.code === 1012 || ev.code === 1011) {
        void sleep(2_000 + Math.random() * 1_000).then(() => resolve(wasOpen));
      } else {
        resolve(wasOpen);
      }
    };
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Take one sync object: to-device first (it may carry the keys of the messages), then the
 * device lists and key counts, then messages and membership changes. */
async function apply(body: SyncBody): Promise<void> {
  const m = machine;
  if (!m) return;
  const toDevice = Array.isArray(body.to_device) ? [] : (body.to_device?.events ?? []);
  const countsKey = JSON.stringify([body.device_one_time_keys_count, body.device_unused_fallback_key_types]);
  const forMachine =
    toDevice.length > 0 ||
    (body.device_lists?.changed ?? []).length > 0 ||
    (body.device_lists?.left ?? []).length > 0 ||
    countsKey !== lastCounts;
  lastCounts = countsKey;
  if ((body.device_lists?.changed ?? []).length || (body.device_lists?.left ?? []).length) devicesDirty = true;
  if (forMachine) await machineSync(m, body, toDevice);
  await applyMessages(body);
  if (Date.now() - ownCheckTried >= OWN_CHECK_EVERY_MS) void serial(checkOwnDevices);
}

/** Key counts last given to the machine: a sync with only messages skips it. */
let lastCounts = "";
/** Device lists or memberships changed since the last room-key share. */
let devicesDirty = true;
const sharedWith = new Map<string, string>();

async function machineSync(m: OlmMachine, body: SyncBody, toDevice: unknown[]): Promise<void> {
  const changed = (body.device_lists?.changed ?? []).map((u) => new UserId(u));
  const left = (body.device_lists?.left ?? []).map((u) => new UserId(u));
  const counts = new Map(Object.entries(body.device_one_time_keys_count ?? {}));
  const fallback = body.device_unused_fallback_key_types
    ? new Set(body.device_unused_fallback_key_types)
    : undefined;
  const processed = await m.receiveSyncChanges(
    JSON.stringify(toDevice),
    new DeviceLists(changed, left),
    counts,
    fallback,
  );
  for (const ev of processed) {
    if (ev.type === ProcessedToDeviceEventType.Decrypted) {
      await ownDeviceMessage(ev as DecryptedToDeviceEvent);
    }
  }
  await flush();
}

async function applyMessages(body: SyncBody): Promise<void> {
  const touched = new Map<string, number[]>();
  let membership = false;
  for (const raw of body.messages ?? []) {
    const c = convs.get(raw.conversation_id);
    if (!c) {
      membership = true; // a conversation we have not listed yet
      continue;
    }
    if (!c.messages.has(raw.seq) || c.messages.get(raw.seq)!.state !== "ok") {
      c.events.set(raw.seq, raw);
      c.messages.set(raw.seq, await decrypt(c, raw));
    }
    c.raw.last_seq = Math.max(c.raw.last_seq, raw.seq);
    const seqs = touched.get(raw.conversation_id) ?? [];
    seqs.push(raw.seq);
    touched.set(raw.conversation_id, seqs);
  }
  for (const ev of body.events ?? []) {
    if (ev.type === "membership") membership = true;
    // web-verify: a partner app's share suggestion, for this user's own devices only
    if (ev.type === "share_intent") post({ push: "shareIntent", intent: ev as Record<string, unknown> });
  }
  cursor = body.cursor;
  await store.put("cursor", cursor);
  if (membership) {
    devicesDirty = true;
    await loadConversations();
  }
  for (const [id, seqs] of touched) pushMessages(id, seqs);
  if (touched.size && !membership) pushConversations();
}

// ---- conversations -------------------------------------------------------------------------

async function loadConversations(): Promise<void> {
  const all: RawConv[] = [];
  let after: string | null = null;
  do {
    const page: { conversations: RawConv[]; next: string | null } = await api(
      "GET",
      `/v1/conversations?limit=500${after ? `&after=${enc(after)}` : ""}`,
    );
    all.push(...page.conversations);
    after = page.next;
  } while (after);
  const ids = new Set(all.map((c) => c.conversation_id));
  for (const id of [...convs.keys()]) if (!ids.has(id)) convs.delete(id);
  const users = new Set<string>();
  const tails: Promise<void>[] = [];
  for (const raw of all) {
    raw.members.forEach((u) => users.add(u));
    const c = convs.get(raw.conversation_id);
    if (c) {
      c.raw = raw;
      continue;
    }
    const fresh: ConvState = {
      raw,
      messages: new Map(),
      events: new Map(),
      name: "",
      readSeq: (await store.get<number>(`read:${raw.conversation_id}`)) ?? 0,
      loadedAfter: raw.last_seq,
      complete: false,
      loading: false,
      historyError: null,
    };
    convs.set(raw.conversation_id, fresh);
    // the tail: enough for the preview, the unread count and a rename not long ago
    tails.push(loadHistory(fresh, Math.max(raw.last_seq - 50, Math.min(fresh.readSeq, raw.last_seq - 1))));
  }
  await Promise.all(tails);
  users.add(me().userId);
  await machine!.updateTrackedUsers([...users].map((u) => new UserId(u)));
  pushConversations();
}

/** The seq before the first message this user may see in the conversation. */
function historyFloor(c: ConvState): number {
  return Math.max((c.raw.joined_from_seq ?? 1) - 1, 0);
}

/** The stored messages with seq in (from, upTo], as the server keeps them (encrypted). */
async function fetchRange(c: ConvState, from: number, upTo: number): Promise<RawMessage[]> {
  const out: RawMessage[] = [];
  let after = from;
  for (;;) {
    const limit = Math.max(1, Math.min(500, upTo - after));
    const page: { messages: RawMessage[]; next_after: number | null } = await api(
      "GET",
      `/v1/conversations/${enc(c.raw.conversation_id)}/messages?after=${after}&limit=${limit}`,
    );
    out.push(...page.messages.filter((raw) => raw.seq <= upTo));
    if (page.next_after === null || page.next_after >= upTo) return out;
    after = page.next_after;
  }
}

/** Decrypt fetched messages into the conversation (all but those already decrypted), then
 * note that everything above `from` is loaded. */
async function decryptInto(c: ConvState, raws: RawMessage[], from: number): Promise<void> {
  const todo = raws.filter((raw) => !(c.messages.has(raw.seq) && c.messages.get(raw.seq)!.state === "ok"));
  // a batch at once: the store reads of one overlap the work of the others
  for (let i = 0; i < todo.length; i += 50) {
    const batch = todo.slice(i, i + 50);
    const out = await Promise.all(batch.map((raw) => decrypt(c, raw)));
    batch.forEach((raw, k) => {
      c.events.set(raw.seq, raw);
      c.messages.set(raw.seq, out[k]!);
    });
  }
  c.loadedAfter = Math.min(c.loadedAfter, from);
  if (from <= historyFloor(c)) c.complete = true;
}

/** Fetch and decrypt the messages from `from` up to what is loaded already. */
async function loadHistory(c: ConvState, from: number): Promise<void> {
  from = Math.max(from, historyFloor(c));
  if (from >= c.loadedAfter && c.messages.size) return;
  await decryptInto(c, await fetchRange(c, from, c.loadedAfter), from);
}

/** Messages decrypted before a conversation is shown: more than a tall screen holds. */
const SCREENFUL = 30;
/** Earlier history is decrypted a page at a time: the first of 100 messages, the next ones
 * of 200 (fewer pages to show). Each page is one turn of `serial` (about 0.3 s of
 * decrypting for 200 here), and its fetch is not (it goes on while the page before is
 * decrypted): a send or an incoming message waits for one page's decrypting at most, not
 * for the whole conversation, nor for the network. */
const FIRST_PAGE = 100;
const PAGE = 200;

/** The next `size` messages below what is loaded, fetched (not decrypted). */
function fetchBelow(c: ConvState, upTo: number, size: number): { from: number; raws: Promise<RawMessage[]> } {
  const from = Math.max(upTo - size, historyFloor(c));
  const raws = fetchRange(c, from, upTo);
  raws.catch(() => undefined); // awaited later, or not at all if the loading stops
  return { from, raws };
}

/** Decrypt a shown conversation's earlier history, newest first, a page at a time, and
 * show each page as it is done; stop when the page shows another one (or none). Opening a
 * conversation of 1,000 messages decrypted them all before showing any (about 2-3 s
 * here, all of it matrix-sdk-crypto's `decryptRoomEvent`): now the newest screenful shows at
 * once and the rest appears above it. */
async function showHistory(c: ConvState): Promise<void> {
  if (c.loading) return;
  const id = c.raw.conversation_id;
  const going = () => !c.complete && viewing === id && convs.get(id) === c && !stopped;
  c.loading = true;
  try {
    let next = fetchBelow(c, c.loadedAfter, FIRST_PAGE);
    while (going()) {
      const { from, raws } = next;
      const fetched = await raws;
      if (!going()) break;
      if (from > historyFloor(c)) next = fetchBelow(c, from, PAGE);
      await serial(() => decryptInto(c, fetched, from));
      if (!c.complete) pushMessages(id);
    }
  } catch (err) {
    c.historyError = err instanceof Error ? err.message : String(err);
  } finally {
    c.loading = false;
  }
  pushMessages(id);
}

function roomId(c: ConvState): string {
  if (c.raw.room_id) return c.raw.room_id;
  const server = me().userId.split(":").slice(1).join(":") || "clearpost.localhost";
  return `!${c.raw.conversation_id}:${server}`;
}

function summary(c: ConvState): Conv {
  const mine = me().userId;
  // one pass, in no order (sorting every conversation's messages at each new message cost
  // more than the rest): the newest name, the newest other message, the unread ones
  let name = "";
  let nameSeq = -1;
  let last: Msg | null = null;
  let unread = 0;
  for (const msg of c.messages.values()) {
    if (msg.kind === "name" && msg.state === "ok" && msg.seq > nameSeq) [name, nameSeq] = [msg.text, msg.seq];
    if (msg.kind !== "name" && (last === null || msg.seq > last.seq)) last = msg;
    if (msg.seq > c.readSeq && msg.sender !== mine && msg.kind !== "name") unread++;
  }
  if (!name) {
    const others = c.raw.members.filter((u) => u !== mine);
    name = others.length ? others.map(localpart).join(", ") : "Only you";
  }
  c.name = name;
  return {
    id: c.raw.conversation_id,
    roomId: roomId(c),
    kind: c.raw.kind,
    createdBy: c.raw.created_by,
    members: c.raw.members,
    name,
    unread,
    last,
    lastSeq: c.raw.last_seq,
    refused: c.raw.members.flatMap((u) => [...(refused.get(u)?.values() ?? [])]),
  };
}

function localpart(userId: string): string {
  return userId.replace(/^@/, "").split(":")[0]!;
}

function pushConversations(): void {
  const list = [...convs.values()].map(summary);
  list.sort((a, b) => (b.last?.ts ?? 0) - (a.last?.ts ?? 0) || b.lastSeq - a.lastSeq);
  post({ push: "conversations", conversations: list });
}

/** Show a conversation's messages on the page: all of them, or only those with the seqs
 * `changed` (new, or decrypted anew), which the page merges into the ones it has. Copying a
 * conversation of 5,000 messages to the page at each new one took most of the page's time
 * for it (`bench/web_bench.py`). */
function pushMessages(id: string, changed?: number[]): void {
  const c = convs.get(id);
  if (!c) return;
  const history = { complete: c.complete, loading: c.loading, error: c.historyError };
  if (changed) {
    const seqs = [...new Set(changed)].sort((a, b) => a - b);
    const msgs = seqs.flatMap((seq) => (c.messages.has(seq) ? [c.messages.get(seq)!] : []));
    post({ push: "messages", conversationId: id, changed: msgs, history });
    return;
  }
  const all = [...c.messages.values()].sort((a, b) => a.seq - b.seq);
  post({ push: "messages", conversationId: id, messages: all, history });
}

function conv(id: string): ConvState {
  const c = convs.get(id);
  if (!c) throw new ApiError(404, "conversation_not_found", "no such conversation");
  return c;
}

// ---- decrypting ----------------------------------------------------------------------------

const WITHHELD: Record<string, string> = {
  "m.blacklisted": "The sender's device has blocked this device, so it did not send it the key.",
  "m.unverified": "The sender's device sends keys only to verified devices, and this one is not verified.",
  "m.unauthorised": "The sender's device decided this device may not read this message.",
  "m.unavailable": "The sender's device no longer has the key to this message.",
  "m.no_olm": "The sender's device could not open a secure channel to this device, so it could not send the key.",
};

/** Whose device a message came from, in words: "alice's device", or "your device ABCD". */
function senderDevice(raw: RawMessage): string {
  return session && raw.sender === session.userId ? `your device ${raw.sender_device}` : `${localpart(raw.sender)}'s device`;
}

function capital(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Who else can bring a missing key, in words. matrix-sdk-crypto takes a key passed on
 * (forwarded) only from this user's own verified devices: asked again (m.room_key_request),
 * another person's device can only send back its reason for not sending the key (a
 * withheld notice). The key itself comes from one of your other devices that has it, once
 * you confirm there (org.clearpost.room_key_request, below). */
function whoCanSend(raw: RawMessage, what: string): string {
  const own = `one of your other devices that has the key can send ${what} once you confirm there (Ask again for the key)`;
  if (session && raw.sender === session.userId) return `${own}.`;
  return `${own}; asking ${localpart(raw.sender)}'s device can bring back only its reason for not sending it.`;
}

async function decrypt(c: ConvState, raw: RawMessage): Promise<Msg> {
  // one of this device's sends whose answer was lost: the page's "not sent" copy is this one
  const ciphertext = session && raw.sender === session.userId && raw.sender_device === session.deviceId
    ? ciphertextOf(raw.content)
    : null;
  const txnId = ciphertext ? sentCiphertexts.get(ciphertext) : undefined;
  const base = {
    seq: raw.seq,
    sender: raw.sender,
    senderDevice: raw.sender_device,
    ts: raw.origin_server_ts ?? raw.sent_at ?? 0,
    ...(txnId ? { txnId } : {}),
  };
  const event = {
    type: raw.type ?? "m.room.encrypted",
    event_id: raw.event_id ?? `$${raw.conversation_id}_${raw.seq}`,
    room_id: raw.room_id ?? roomId(c),
    sender: raw.sender,
    origin_server_ts: base.ts,
    content: raw.content ?? {},
  };
  try {
    const out = await machine!.decryptRoomEvent(
      JSON.stringify(event),
      new RoomId(event.room_id),
      new DecryptionSettings(TrustRequirement.Untrusted),
    );
    const plain = JSON.parse(out.event) as { type?: string; content?: Record<string, unknown> };
    const content = plain.content ?? {};
    if (plain.type === "m.room.name") {
      return { ...base, kind: "name", text: String(content["name"] ?? ""), state: "ok" };
    }
    if (plain.type === "m.room.message") {
      const share = content["org.clearpost.share"];
      return {
        ...base,
        kind: share && typeof share === "object" ? "share" : "text",
        text: String(content["body"] ?? ""),
        state: "ok",
        share: share && typeof share === "object" ? (share as Record<string, unknown>) : undefined,
      };
    }
    return { ...base, kind: "other", text: `(a ${plain.type ?? "message"} event)`, state: "ok" };
  } catch (err) {
    if (err instanceof MegolmDecryptionError) {
      if (err.withheldCode) {
        return {
          ...base,
          kind: "text",
          text: "",
          state: "withheld",
          problem: WITHHELD[err.withheldCode] ?? `The sender's device withheld the key (${err.maybe_withheld ?? err.withheldCode}).`,
        };
      }
      if (err.code === DecryptionErrorCode.MissingRoomKey) {
        return {
          ...base,
          kind: "text",
          text: "",
          state: "waiting",
          problem: `Waiting for the key to this message: it may still be on its way from ${senderDevice(raw)}. If it does not come, ${whoCanSend(raw, "it")}`,
        };
      }
      if (err.code === DecryptionErrorCode.UnknownMessageIndex) {
        return {
          ...base,
          kind: "text",
          text: "",
          state: "waiting",
          problem: `This device got the key only for later messages. ${capital(whoCanSend(raw, "the earlier part"))}`,
        };
      }
      return { ...base, kind: "text", text: "", state: "failed", problem: `This message cannot be decrypted: ${err.description}` };
    }
    return { ...base, kind: "text", text: "", state: "failed", problem: `This message cannot be decrypted: ${String(err)}` };
  }
}

async function retryWaiting(rooms: Set<string>): Promise<void> {
  await serial(async () => {
    for (const c of convs.values()) {
      if (!rooms.has(roomId(c))) continue;
      const changed: number[] = [];
      for (const [seq, msg] of c.messages) {
        if (msg.state === "ok" || !c.events.has(seq)) continue;
        const again = await decrypt(c, c.events.get(seq)!);
        if (again.state !== msg.state) {
          c.messages.set(seq, again);
          changed.push(seq);
        }
      }
      if (changed.length) pushMessages(c.raw.conversation_id, changed);
    }
    pushConversations();
  });
}

// ---- sending -------------------------------------------------------------------------------

/** Make sure every current device of every member has this room's key, then encrypt. */
async function encryptFor(c: ConvState, type: string, content: unknown): Promise<string> {
  const m = machine!;
  // wasm-bindgen moves Rust objects passed in arrays: a fresh list for every call
  const users = () => c.raw.members.map((u) => new UserId(u));
  const key = c.raw.members.join(" ");
  if (devicesDirty || sharedWith.get(c.raw.conversation_id) !== key) {
    if (devicesDirty) sharedWith.clear();
    devicesDirty = false;
    await m.updateTrackedUsers(users());
    await flush(); // device lists of new members
    const claim = await m.getMissingSessions(users());
    if (claim) await send(claim);
    sharedWith.set(c.raw.conversation_id, key);
  }
  const settings = new EncryptionSettings();
  settings.sharingStrategy = CollectStrategy.allDevices();
  for (const req of await m.shareRoomKey(new RoomId(roomId(c)), users(), settings)) await send(req);
  return m.encryptRoomEvent(new RoomId(roomId(c)), type, JSON.stringify(content));
}

async function sendEvent(id: string, txnId: string, type: string, content: Record<string, unknown>): Promise<number> {
  const c = conv(id);
  return serial(async () => {
    let body = sentBodies.get(txnId);
    if (!body) {
      body = await encryptFor(c, type, content);
      sentBodies.set(txnId, body);
      const ciphertext = ciphertextOf(JSON.parse(body));
      if (ciphertext) sentCiphertexts.set(ciphertext, txnId);
    }
    const r = await api<{ seq: number; sent_at?: number; origin_server_ts?: number }>(
      "PUT",
      `/v1/conversations/${enc(id)}/messages/${enc(txnId)}`,
      body,
    );
    // Kept until a send of it is answered (not when sync brings it back: a Retry already
    // asked for must send this very body again, which the server stores once).
    const ciphertext = ciphertextOf(JSON.parse(body));
    if (ciphertext) sentCiphertexts.delete(ciphertext);
    sentBodies.delete(txnId);
    const mine = me();
    if (!c.messages.has(r.seq) || c.messages.get(r.seq)!.state !== "ok") {
      c.messages.set(r.seq, {
        seq: r.seq,
        sender: mine.userId,
        senderDevice: mine.deviceId,
        ts: r.origin_server_ts ?? r.sent_at ?? Date.now(),
        kind: type === "m.room.name" ? "name" : content["org.clearpost.share"] ? "share" : "text",
        share: content["org.clearpost.share"] as Record<string, unknown> | undefined,
        text: String(type === "m.room.name" ? content["name"] : content["body"]),
        state: "ok",
      });
    }
    c.raw.last_seq = Math.max(c.raw.last_seq, r.seq);
    c.readSeq = Math.max(c.readSeq, r.seq);
    pushMessages(id, [r.seq]);
    pushConversations();
    return r.seq;
  });
}

// ---- your devices, and other people's new ones ---------------------------------------------

/** A contact's new devices, from the crypto engine's device lists. Your own are told from
 * the key directory instead (`checkOwnDevices`), which is what your contacts encrypt to. */
async function noticeNewDevices(users: string[]): Promise<void> {
  const m = machine;
  if (!m) return;
  for (const user of users) {
    if (user === me().userId) continue;
    const devices = await m.getUserDevices(new UserId(user));
    const now = devices.keys().map((d) => d.toString());
    const key = `devices:${user}`;
    const before = await store.get<string[]>(key);
    await store.put(key, now);
    if (!before) continue; // the first look at this person: nothing to compare with
    for (const dev of now) {
      if (before.includes(dev)) continue;
      const d = devices.get(new DeviceId(dev));
      const label = d?.displayName ? `"${d.displayName}" (${dev})` : dev;
      const text = `${localpart(user)} has a new device: ${label}. Messages you send from now on are encrypted to it too.`;
      post({ push: "notice", id: `dev:${user}:${dev}`, text });
    }
  }
}

// ---- your own account in the key directory: each version this browser did not make -------

/** How often your own account is checked at a sync (and at once when your devices change),
 * as the SDK's `Directory.at_sync`. */
const OWN_CHECK_EVERY_MS = 60_000;
/** What the last check of your own account found, for *Your devices*. */
let ownCheck: DirectoryCheck | null = null;
/** When a check last started (one that failed on the network too). */
let ownCheckTried = 0;
/** How many of the latest changes to your devices are kept to show under Your devices. */
const KEPT_CHANGES = 50;

/** Check this account's `devices:` label from the version verified last; each version this
 * browser did not make becomes a notice. A failed check is evidence against the server and
 * says so; the network failing is not, and the next sync tries again. Run in `serial`, like
 * every other check of the directory (they share what this browser remembers). */
async function checkOwnDevices(): Promise<DirectoryCheck | null> {
  if (!session || stopped) return ownCheck;
  const mine = me();
  const at = (ownCheckTried = Date.now());
  ownCheck ??= (await store.get<DirectoryCheck>("keydir-own-check")) ?? null;
  try {
    const { version, epoch, alarms } = await directory.monitor(mine.userId, mine.deviceId);
    ownCheck = { version, epoch, at, error: null };
    await store.put("keydir-own-check", ownCheck);
    if (alarms.length) {
      // kept with the device, so that one the person did not see in time is under Your devices
      const kept = (await store.get<DirectoryChange[]>("keydir-alarms")) ?? [];
      for (const a of alarms) {
        const change = { version: a.version, epoch: a.epoch, at, text: await alarmText(a), bad: a.added.length > 0 || a.rolledBack };
        kept.push(change);
        post({ push: "notice", id: `keydir-own:${a.version}`, text: change.text, bad: change.bad });
      }
      await store.put("keydir-alarms", kept.slice(-KEPT_CHANGES));
    }
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    ownCheck = { version: ownCheck?.version ?? -1, epoch: ownCheck?.epoch ?? -1, at, error: why };
    if (!(err instanceof DirectoryError)) {
      // the server or the network: not evidence of anything; tried again at the next sync
      ownCheck.error = `the key directory could not be asked (${why}); this browser tries again at the next sync`;
      return ownCheck;
    }
    post({
      push: "notice",
      id: "keydir-own-failed",
      text: `This browser could not verify your own devices in the key directory: ${err.message}. Your contacts may be shown devices you cannot see.`,
      bad: true,
    });
  }
  return ownCheck;
}

/** Your devices changed (a sync said so): check now, and again shortly, since the new
 * version is published in the next epoch (within a second). */
function ownDevicesChanged(): void {
  for (const ms of [0, 1_500, 4_000]) setTimeout(() => void serial(checkOwnDevices), ms);
}

async function alarmText(a: DirectoryAlarm): Promise<string> {
  if (a.rolledBack) {
    return `The key directory showed your devices as they were before the version this browser verified (now version ${a.version}): the server is showing an older directory.`;
  }
  // the names the device list gives (a device the server hides from it has only its id)
  const named = await machine?.getUserDevices(new UserId(me().userId)).catch(() => null);
  const label = (dev: string) => {
    const name = named?.get(new DeviceId(dev))?.displayName;
    return name ? `"${name}" (${dev})` : dev;
  };
  const out: string[] = [];
  if (a.added.length) {
    out.push(
      `A new device signed in to your account: ${a.added.map(label).join(", ")}. The key directory lists it (version ${a.version}), so your contacts encrypt to it. If it was not you, remove it under Your devices and change your password.`,
    );
  }
  if (a.removed.length) out.push(`Removed from your account in the key directory (version ${a.version}): ${a.removed.map(label).join(", ")}.`);
  return out.join(" ");
}

async function devices(): Promise<DeviceInfo[]> {
  const r = await api<{ devices: { device_id: string; display_name: string | null }[] }>(
    "GET",
    "/v1/devices",
  );
  const mine = me();
  const known = await machine!.getUserDevices(new UserId(mine.userId));
  return r.devices.map((d) => ({
    deviceId: d.device_id,
    displayName: d.display_name,
    ed25519: known.get(new DeviceId(d.device_id))?.ed25519Key?.toBase64() ?? null,
    current: d.device_id === mine.deviceId,
    refused: refused.get(mine.userId)?.get(d.device_id) ?? null,
  }));
}

// Own-device key sharing. Matrix's m.room_key_request travels in plaintext, which this
// server refuses; so a device asks its own other devices inside Olm, and the person confirms
// on the other device before it sends the keys (a device the server slipped into the
// account would otherwise get them all).

async function sendToOwnDevices(type: string, content: unknown, only?: string): Promise<number> {
  const m = machine!;
  const mine = me();
  const self_ = () => new UserId(mine.userId);
  await m.updateTrackedUsers([self_()]);
  await flush();
  const claim = await m.getMissingSessions([self_()]);
  if (claim) await send(claim);
  const messages: Record<string, unknown> = {};
  for (const d of (await m.getUserDevices(self_())).devices()) {
    const id = d.deviceId.toString();
    if (id === mine.deviceId || (only && id !== only)) continue;
    messages[id] = JSON.parse(await d.encryptToDeviceEvent(type, content));
  }
  const n = Object.keys(messages).length;
  if (n) {
    await api("PUT", `/v1/to-device/m.room.encrypted/${enc(crypto.randomUUID())}`, {
      messages: { [mine.userId]: messages },
    });
  }
  return n;
}

async function askAgain(id: string): Promise<number> {
  const c = conv(id);
  const sessions = new Map<string, { room_id: string; session_id: string; sender: string; device: string; sender_key?: unknown }>();
  for (const [seq, msg] of c.messages) {
    const raw = c.events.get(seq);
    const sid = raw?.content?.["session_id"];
    if (msg.state !== "ok" && raw && typeof sid === "string") {
      sessions.set(sid, { room_id: roomId(c), session_id: sid, sender: raw.sender, device: raw.sender_device, sender_key: raw.content?.["sender_key"] });
    }
  }
  if (!sessions.size) return 0;
  const requestId = crypto.randomUUID();
  myKeyRequests.add(requestId);
  return serial(async () => {
    const asked = await sendToOwnDevices("org.clearpost.room_key_request", {
      request_id: requestId,
      sessions: [...sessions.values()].map(({ room_id, session_id }) => ({ room_id, session_id })),
    });
    // and the sender's device, with Matrix's m.room_key_request inside Olm (the server
    // refuses it in plaintext). A withheld reason it answers with is shown on the message
    // (registerRoomKeysWithheldCallback); a key it forwards, matrix-sdk-crypto drops (it
    // takes forwarded keys only from this user's own verified devices): keys come from the
    // own devices above. One request per session; the count is of devices, each once.
    const senders = new Set<string>();
    for (const s of sessions.values()) {
      if (s.sender === me().userId) continue;
      try {
        if (await sendToDevice(s.sender, s.device, "m.room_key_request", {
          action: "request",
          requesting_device_id: me().deviceId,
          request_id: `${requestId}-${s.session_id.slice(0, 8)}`,
          body: {
            algorithm: "m.megolm.v1.aes-sha2",
            room_id: s.room_id,
            session_id: s.session_id,
            ...(typeof s.sender_key === "string" ? { sender_key: s.sender_key } : {}),
          },
        })) {
          senders.add(`${s.sender} ${s.device}`);
        }
      } catch {
        // a sender's device that is gone: the own devices may still help
      }
    }
    return asked + senders.size;
  });
}

async function sendToDevice(user: string, deviceId: string, type: string, content: unknown): Promise<number> {
  const m = machine!;
  await m.updateTrackedUsers([new UserId(user)]);
  await flush();
  const claim = await m.getMissingSessions([new UserId(user)]);
  if (claim) await send(claim);
  const d = await m.getDevice(new UserId(user), new DeviceId(deviceId));
  if (!d) return 0;
  const body = JSON.parse(await d.encryptToDeviceEvent(type, content));
  await api("PUT", `/v1/to-device/m.room.encrypted/${enc(crypto.randomUUID())}`, {
    messages: { [user]: { [deviceId]: body } },
  });
  return 1;
}

async function ownDeviceMessage(ev: DecryptedToDeviceEvent): Promise<void> {
  const mine = me();
  const raw = JSON.parse(ev.rawEvent) as { type: string; sender: string; content: Record<string, unknown> };
  const from = ev.encryptionInfo.senderDevice?.toString();
  if (raw.sender !== mine.userId || !from || from === mine.deviceId) return;
  if (raw.type === "org.clearpost.room_key_request") {
    const sessions = (raw.content["sessions"] ?? []) as { room_id: string; session_id: string }[];
    const d = await machine!.getDevice(new UserId(mine.userId), new DeviceId(from));
    const label = d?.displayName ? `"${d.displayName}" (${from})` : from;
    post({
      push: "notice",
      id: `keyreq:${String(raw.content["request_id"])}`,
      text: `Your device ${label} asks for the keys of ${sessions.length} earlier message session(s). Share them only if that device is yours.`,
      action: {
        label: `Share keys with ${from}`,
        op: "shareKeys",
        args: [from, String(raw.content["request_id"]), sessions.map((s) => s.session_id)],
      },
    });
  } else if (raw.type === "org.clearpost.room_keys") {
    const requestId = String(raw.content["request_id"]);
    if (!myKeyRequests.has(requestId)) return; // keys nobody here asked for
    const keys = raw.content["keys"];
    if (!Array.isArray(keys)) return;
    await machine!.importExportedRoomKeys(JSON.stringify(keys), () => undefined);
    const rooms = new Set(keys.map((k: { room_id?: string }) => String(k.room_id)));
    void retryWaiting(rooms);
  }
}

async function shareKeys(deviceId: string, requestId: string, sessionIds: string[]): Promise<number> {
  const wanted = new Set(sessionIds);
  return serial(async () => {
    const exported = JSON.parse(
      await machine!.exportRoomKeys((s) => wanted.has(s.sessionId)),
    ) as unknown[];
    for (let i = 0; i < exported.length; i += 20) {
      await sendToOwnDevices(
        "org.clearpost.room_keys",
        { request_id: requestId, keys: exported.slice(i, i + 20) },
        deviceId,
      );
    }
    return exported.length;
  });
}

// ---- the operations the page calls ----------------------------------------------------------

const ops: Record<string, (...args: never[]) => Promise<unknown>> = {
  restore,
  register,
  login,
  logout,
  async conversations() {
    pushConversations();
  },
  /** web-verify: who is signed in here (the access history opens commitments to this id). */
  async whoami() {
    return me();
  },
  async open(id: string) {
    const c = conv(id);
    viewing = id;
    // the newest screenful first (the inbox has usually decrypted it already), at once
    if (!c.complete && c.messages.size < SCREENFUL) {
      const { from, raws } = fetchBelow(c, c.loadedAfter, SCREENFUL);
      const fetched = await raws;
      await serial(() => decryptInto(c, fetched, from));
    }
    c.historyError = null;
    if (!c.complete) void showHistory(c);
    pushMessages(id);
  },
  /** The page no longer shows this conversation: its earlier history stops loading. */
  async close(id: string) {
    if (viewing === id) viewing = null;
  },
  async markRead(id: string) {
    const c = conv(id);
    if (c.raw.last_seq > c.readSeq) {
      c.readSeq = c.raw.last_seq;
      await store.put(`read:${id}`, c.readSeq);
      pushConversations();
    }
  },
  async sendText(id: string, txnId: string, body: string) {
    return sendEvent(id, txnId, "m.room.message", { msgtype: "m.text", body });
  },
  /** Any m.room.message content, e.g. a share card (body + "org.clearpost.share"). */
  async sendContent(id: string, txnId: string, content: Record<string, unknown>) {
    return sendEvent(id, txnId, "m.room.message", content);
  },
  async rename(id: string, txnId: string, name: string) {
    return sendEvent(id, txnId, "m.room.name", { name });
  },
  async create(kind: "direct" | "group", usernames: string[], name: string) {
    const server = me().userId.split(":").slice(1).join(":");
    const members = usernames.map((u) => {
      const t = u.trim().replace(/^@/, "");
      return t.includes(":") || !server ? `@${t}` : `@${t}:${server}`;
    });
    const r = await api<RawConv>("POST", "/v1/conversations", { kind, members });
    await loadConversations();
    if (name && kind === "group") await sendEvent(r.conversation_id, crypto.randomUUID(), "m.room.name", { name });
    return r.conversation_id;
  },
  async addMember(id: string, username: string) {
    const server = me().userId.split(":").slice(1).join(":");
    const t = username.trim().replace(/^@/, "");
    const user = t.includes(":") || !server ? `@${t}` : `@${t}:${server}`;
    await api("POST", `/v1/conversations/${enc(id)}/members/${enc(user)}`);
    await loadConversations();
  },
  async removeMember(id: string, user: string) {
    await api("DELETE", `/v1/conversations/${enc(id)}/members/${enc(user)}`);
    await loadConversations();
  },
  async leave(id: string) {
    await api("POST", `/v1/conversations/${enc(id)}/leave`);
    await loadConversations();
  },
  devices,
  /** web-verify: the access history's entries (`indexes`) are every one about you that the
   * key directory counts (`Directory.complete`). */
  async accessComplete(indexes: number[]) {
    const mine = me();
    return serial(() => directory.complete(mine.userId, indexes));
  },
  /** What the last check of your own account in the key directory found (`now`: check first). */
  async ownDevicesCheck(now = false) {
    if (now) return serial(checkOwnDevices);
    return ownCheck ?? (await store.get<DirectoryCheck>("keydir-own-check")) ?? null;
  },
  /** The changes to your devices the key directory showed that this browser did not make. */
  async ownDevicesChanges() {
    return ((await store.get<DirectoryChange[]>("keydir-alarms")) ?? []).slice().reverse();
  },
  async removeDevice(deviceId: string) {
    await api("DELETE", `/v1/devices/${enc(deviceId)}`);
  },
  askAgain,
  shareKeys,
  /** For pages built on this worker (sharing, connected apps, access history): an API call
   * with this device's token, which never leaves the worker. */
  async api(method: string, path: string, body?: unknown) {
    if (!path.startsWith("/") || path.startsWith("//")) throw new ApiError(400, "bad_path", "same-origin paths only");
    return api(method, path, body);
  },
};

self.onmessage = async (ev: MessageEvent<Call>) => {
  const { id, op, args } = ev.data;
  const reply: Reply = { id, ok: true };
  try {
    const fn = ops[op];
    if (!fn) throw new ApiError(400, "unknown_op", `no operation ${op}`);
    reply.result = await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
  } catch (err) {
    reply.ok = false;
    reply.error =
      err instanceof ApiError
        ? { code: err.code, message: err.message, status: err.status }
        : err instanceof DirectoryError
          ? { code: err.code, message: err.message, status: 0 }
          : { code: "error", message: err instanceof Error ? err.message : String(err), status: 0 };
  }
  (self as unknown as Worker).postMessage(reply);
};
