// One Matrix device run by matrix-sdk-crypto (Rust, compiled to WebAssembly) against a real
// `clearpost serve`. pytest starts one process per device and talks JSON lines:
//   stdin:  {"id": 1, "cmd": "login", ...args}
//   stdout: {"id": 1, "ok": true, "result": ...} | {"id": 1, "ok": false, "error": "..."}
// Commands run one at a time, in order. Everything the OlmMachine asks for
// (outgoingRequests) is mapped onto Clearpost's endpoints and its answer fed back with
// markRequestAsSent; /v1/sync goes into receiveSyncChanges as it comes.
//
// The one adaptation a matrix-sdk-crypto client needs on Clearpost: the server takes only
// Olm-encrypted to-device messages, while matrix-sdk-crypto sends `m.room_key_request` and
// `m.room_key.withheld` in the clear. It accepts both encrypted as well, so this driver
// encrypts each of them for its device with `Device.encryptToDeviceEvent` and sends them
// as `m.room.encrypted`. (`m.no_olm` withheld notices go to devices with no Olm session:
// they cannot be encrypted and are dropped.)
import { createInterface } from "node:readline";

import {
  initAsync,
  CollectStrategy,
  DecryptionErrorCode,
  DecryptionSettings,
  DeviceId,
  DeviceLists,
  EncryptionSettings,
  LocalTrust,
  LoggerLevel,
  OlmMachine,
  ProcessedToDeviceEventType,
  RequestType,
  RoomId,
  Tracing,
  TrustRequirement,
  UserId,
} from "@matrix-org/matrix-sdk-crypto-wasm";

const log = (...args) => process.stderr.write(`[driver] ${args.join(" ")}\n`);

class Device {
  constructor(baseUrl) {
    this.baseUrl = baseUrl.replace(/\/$/, "");
    this.token = null;
    this.machine = null;
    this.cursor = null;
    this.txn = 0;
    this.dropped = []; // plaintext to-device messages that could not be encrypted
    this.toDevice = []; // every to-device event received, decrypted (types and senders)
    this.withheld = []; // RoomKeyWithheldInfo reported by the machine
  }

  async http(method, path, body) {
    const headers = { "content-type": "application/json" };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const res = await fetch(this.baseUrl + path, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) {
      const err = new Error(`${method} ${path} -> ${res.status}: ${text}`);
      err.status = res.status;
      err.body = text;
      throw err;
    }
    return text;
  }

  async json(method, path, body) {
    const text = await this.http(method, path, body);
    return text ? JSON.parse(text) : null;
  }

  // -- commands ---------------------------------------------------------------------------

  async login({ username, password, device_name }) {
    const res = await this.json("POST", "/v1/login", { username, password, device_name });
    this.token = res.access_token;
    this.machine = await OlmMachine.initialize(new UserId(res.user_id), new DeviceId(res.device_id));
    this.machine.registerRoomKeysWithheldCallback(async (infos) => {
      for (const info of infos) {
        this.withheld.push({
          room_id: info.roomId.toString(),
          session_id: info.sessionId,
          sender: info.sender.toString(),
          code: info.withheldCode,
        });
      }
    });
    await this.processOutgoing(); // uploads the device keys and one-time keys
    // A first sync without `since` takes what is held and sets the cursor to "now": later
    // syncs bring the messages that follow (earlier ones come from history).
    await this.sync({});
    const keys = this.machine.identityKeys;
    return {
      user_id: res.user_id,
      device_id: res.device_id,
      curve25519: keys.curve25519.toBase64(),
      ed25519: keys.ed25519.toBase64(),
      room_key_requests_enabled: this.machine.roomKeyRequestsEnabled,
    };
  }

  /** One /v1/sync round into the machine; returns the room messages, decrypted. */
  async sync({ timeout = 0 } = {}) {
    const params = new URLSearchParams({ timeout: String(timeout) });
    if (this.cursor) params.set("since", this.cursor);
    const res = await this.json("GET", `/v1/sync?${params}`);
    this.cursor = res.cursor;
    const changed = (res.device_lists?.changed ?? []).map((u) => new UserId(u));
    const left = (res.device_lists?.left ?? []).map((u) => new UserId(u));
    const counts = new Map(Object.entries(res.device_one_time_keys_count ?? {}));
    const fallback = new Set(res.device_unused_fallback_key_types ?? []);
    const processed = await this.machine.receiveSyncChanges(
      JSON.stringify(res.to_device?.events ?? []),
      new DeviceLists(changed, left),
      counts,
      fallback,
    );
    const toDevice = processed.map((e) => this.describeToDevice(e));
    this.toDevice.push(...toDevice);
    // Track every member of every conversation we hear about: Matrix clients track the
    // members of their encrypted rooms.
    const convs = new Set([
      ...(res.messages ?? []).map((m) => m.conversation_id),
      ...(res.events ?? []).filter((e) => e.conversation_id).map((e) => e.conversation_id),
    ]);
    for (const conv of convs) {
      try {
        await this.track(conv);
      } catch (e) {
        if (e.status !== 404) throw e; // removed from it: nothing to track
      }
    }
    await this.processOutgoing();
    const messages = [];
    for (const event of res.messages ?? []) messages.push(await this.decrypt(event));
    await this.processOutgoing(); // key requests made by failed decryptions
    return { messages, to_device: toDevice, events: res.events ?? [] };
  }

  describeToDevice(e) {
    const raw = JSON.parse(e.rawEvent);
    const kind = ProcessedToDeviceEventType[e.type];
    const out = { kind, type: raw.type, sender: raw.sender };
    if (e.type === ProcessedToDeviceEventType.Decrypted) {
      // Key material stays out of the report: the content minus its keys.
      const { session_key: _k, ...content } = raw.content ?? {};
      out.content = content;
      out.sender_device = e.encryptionInfo.senderDevice?.toString();
    }
    if (e.type === ProcessedToDeviceEventType.UnableToDecrypt) {
      out.reason = String(e.utdInfo.reason);
    }
    return out;
  }

  async decrypt(event) {
    const base = {
      conversation_id: event.conversation_id,
      room_id: event.room_id,
      seq: event.seq,
      event_id: event.event_id,
      sender: event.sender,
      sender_device: event.sender_device,
      session_id: event.content?.session_id,
    };
    try {
      const res = await this.machine.decryptRoomEvent(
        JSON.stringify(event),
        new RoomId(event.room_id),
        new DecryptionSettings(TrustRequirement.Untrusted),
      );
      const clear = JSON.parse(res.event);
      return {
        ...base,
        ok: true,
        type: clear.type,
        content: clear.content,
        clear_room_id: clear.room_id,
        decrypted_sender: res.sender.toString(),
        // Unknown for a forwarded session: only its origin's Curve25519 key is.
        decrypted_sender_device: res.senderDevice?.toString() ?? null,
        sender_curve25519: res.senderCurve25519Key,
      };
    } catch (err) {
      if (err && err.code !== undefined && err.description !== undefined) {
        return {
          ...base,
          ok: false,
          code: DecryptionErrorCode[err.code] ?? String(err.code),
          description: err.description,
          withheld_code: err.withheldCode ?? null,
          withheld_reason: err.maybe_withheld ?? null,
        };
      }
      throw err;
    }
  }

  /** Decrypt a conversation's whole history (every page) as this device sees it now. */
  async history({ conversation_id }) {
    const out = [];
    let after = 0;
    for (;;) {
      const page = await this.json(
        "GET",
        `/v1/conversations/${conversation_id}/messages?after=${after}&limit=500`,
      );
      const msgs = page.messages ?? [];
      for (const m of msgs) out.push(await this.decrypt(m));
      if (msgs.length < 500) break;
      after = msgs[msgs.length - 1].seq;
    }
    await this.processOutgoing(); // key requests made by failed decryptions
    return out;
  }

  async conversation(conversation_id) {
    return this.json("GET", `/v1/conversations/${conversation_id}`);
  }

  async track(conversation_id) {
    const conv = await this.conversation(conversation_id);
    await this.machine.updateTrackedUsers(conv.members.map((u) => new UserId(u)));
    return conv;
  }

  /** Encrypt and send `content` (an m.room.message content) to a conversation. */
  async send({ conversation_id, content, strategy = "all" }) {
    const conv = await this.track(conversation_id);
    const room = conv.room_id;
    await this.processOutgoing(); // key queries for newly tracked users
    const members = () => conv.members.map((u) => new UserId(u));
    const claim = await this.machine.getMissingSessions(members());
    if (claim) await this.sendRequest(claim);
    const settings = new EncryptionSettings();
    if (strategy === "trusted") {
      settings.sharingStrategy = CollectStrategy.onlyTrustedDevices();
    }
    const shares = await this.machine.shareRoomKey(new RoomId(room), members(), settings);
    for (const req of shares) await this.sendRequest(req);
    const encrypted = JSON.parse(
      await this.machine.encryptRoomEvent(new RoomId(room), "m.room.message", JSON.stringify(content)),
    );
    const txn = `rust-${Date.now()}-${++this.txn}`;
    const res = await this.json(
      "PUT",
      `/v1/conversations/${conversation_id}/messages/${txn}`,
      encrypted,
    );
    await this.processOutgoing();
    return { ...res, session_id: encrypted.session_id, content: encrypted };
  }

  async setTrust({ user_id, device_id, trust }) {
    await this.machine.updateTrackedUsers([new UserId(user_id)]);
    await this.processOutgoing(); // the key query, if the user is new to this device
    const device = await this.machine.getDevice(new UserId(user_id), new DeviceId(device_id));
    if (!device) throw new Error(`unknown device ${user_id} ${device_id}`);
    const level = { verified: LocalTrust.Verified, blacklisted: LocalTrust.BlackListed,
      unset: LocalTrust.Unset, ignored: LocalTrust.Ignored }[trust];
    await device.setLocalTrust(level);
    return { verified: device.isVerified(), blacklisted: device.isBlacklisted() };
  }

  async devices({ user_id }) {
    await this.machine.updateTrackedUsers([new UserId(user_id)]);
    await this.processOutgoing();
    const devices = await this.machine.getUserDevices(new UserId(user_id));
    return devices.devices().map((d) => ({
      device_id: d.deviceId.toString(),
      curve25519: d.curve25519Key?.toBase64(),
      ed25519: d.ed25519Key?.toBase64(),
      verified: d.isVerified(),
      deleted: d.isDeleted(),
    }));
  }

  async createConversation({ kind, members }) {
    return this.json("POST", "/v1/conversations", { kind, members });
  }

  async deleteDevice({ device_id }) {
    await this.http("DELETE", `/v1/devices/${encodeURIComponent(device_id)}`);
    return {};
  }

  async logout() {
    await this.http("POST", "/v1/logout");
    this.token = null;
    return {};
  }

  state() {
    return { dropped: this.dropped, to_device: this.toDevice, withheld: this.withheld };
  }

  // -- the OlmMachine's outgoing requests -------------------------------------------------

  async processOutgoing() {
    for (let round = 0; round < 10; round++) {
      const requests = await this.machine.outgoingRequests();
      if (requests.length === 0) return;
      for (const req of requests) await this.sendRequest(req);
    }
  }

  async sendRequest(req) {
    let response;
    switch (req.type) {
      case RequestType.KeysUpload:
        response = await this.http("POST", "/v1/keys/upload", req.body);
        break;
      case RequestType.KeysQuery:
        response = await this.http("POST", "/v1/keys/query", req.body);
        break;
      case RequestType.KeysClaim:
        response = await this.http("POST", "/v1/keys/claim", req.body);
        break;
      case RequestType.ToDevice:
        response = await this.sendToDevice(req);
        break;
      default:
        // Cross-signing uploads, room-message verification, key backup: not on Clearpost.
        log(`not sending a request of type ${RequestType[req.type]}`);
        response = "{}";
    }
    await this.machine.markRequestAsSent(req.id, req.type, response);
  }

  async sendToDevice(req) {
    const body = JSON.parse(req.body);
    let messages = body.messages;
    let type = req.event_type;
    if (type !== "m.room.encrypted") {
      messages = await this.encryptPlain(type, messages);
      type = "m.room.encrypted";
      if (Object.keys(messages).length === 0) return "{}";
    }
    return this.http(
      "PUT",
      `/v1/to-device/${encodeURIComponent(type)}/${encodeURIComponent(req.txn_id)}`,
      { messages },
    );
  }

  /** Encrypt a plaintext to-device request (m.room_key_request, m.room_key.withheld) with
   * Olm for each target device; `*` means every device of the user but this one. */
  async encryptPlain(type, messages) {
    const me = this.machine.userId.toString();
    const mine = this.machine.deviceId.toString();
    const targets = [];
    for (const [user, byDevice] of Object.entries(messages)) {
      for (const [device, content] of Object.entries(byDevice)) {
        if (device === "*") {
          const all = await this.machine.getUserDevices(new UserId(user));
          for (const d of all.devices()) {
            const id = d.deviceId.toString();
            if (!(user === me && id === mine)) targets.push([user, id, content]);
          }
        } else {
          targets.push([user, device, content]);
        }
      }
    }
    const users = [...new Set(targets.map(([u]) => u))].map((u) => new UserId(u));
    const claim = await this.machine.getMissingSessions(users);
    if (claim) await this.sendRequest(claim);
    const out = {};
    for (const [user, id, content] of targets) {
      const device = await this.machine.getDevice(new UserId(user), new DeviceId(id));
      let encrypted = null;
      if (device) {
        try {
          encrypted = JSON.parse(
            await device.encryptToDeviceEvent(type, content, CollectStrategy.allDevices()),
          );
        } catch (err) {
          log(`cannot encrypt ${type} for ${user} ${id}: ${err}`);
        }
      }
      if (encrypted === null) {
        this.dropped.push({ type, user_id: user, device_id: id, code: content.code ?? null });
        continue;
      }
      (out[user] ??= {})[id] = encrypted;
    }
    return out;
  }
}

// -- the JSON-lines loop ------------------------------------------------------------------

await initAsync();
new Tracing(LoggerLevel[process.env.DRIVER_LOG_LEVEL ?? "Warn"] ?? LoggerLevel.Warn).turnOn();
const device = new Device(process.argv[2]);
const commands = {
  login: (a) => device.login(a),
  sync: (a) => device.sync(a),
  history: (a) => device.history(a),
  decrypt_event: (a) => device.decrypt(a.event),
  send: (a) => device.send(a),
  set_trust: (a) => device.setTrust(a),
  devices: (a) => device.devices(a),
  logout: () => device.logout(),
  delete_device: (a) => device.deleteDevice(a),
  create_conversation: (a) => device.createConversation(a),
  state: () => device.state(),
};

const rl = createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on("line", (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => {
    let msg;
    try {
      msg = JSON.parse(line);
      const fn = commands[msg.cmd];
      if (!fn) throw new Error(`unknown command ${msg.cmd}`);
      const result = await fn(msg);
      process.stdout.write(JSON.stringify({ id: msg.id, ok: true, result: result ?? null }) + "\n");
    } catch (err) {
      log(`${msg?.cmd} failed: ${err?.stack ?? err}`);
      process.stdout.write(
        JSON.stringify({ id: msg?.id ?? null, ok: false, error: String(err?.message ?? err) }) + "\n",
      );
    }
  });
});
rl.on("close", () => {
  chain.then(() => {
    device.machine?.close();
    process.exit(0);
  });
});
