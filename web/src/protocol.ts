// What the page and the crypto worker say to each other. The worker holds the access token,
// the OlmMachine and the sync connection; the page only ever sees decrypted text to show.

export interface Me {
  userId: string;
  deviceId: string;
}

/** One message as the page shows it. `text` is shown as text, never as HTML. */
export interface Msg {
  seq: number;
  sender: string;
  senderDevice: string;
  ts: number;
  /** a text message, a rename ("m.room.name"), or a share card */
  kind: "text" | "name" | "share" | "other";
  text: string;
  /** decryption state: ok, waiting for the key, withheld, or failed for another reason */
  state: "ok" | "waiting" | "withheld" | "failed" | "sending" | "unsent";
  /** in plain words, when state is not ok */
  problem?: string;
  /** the transaction id of a message this device sends: on one not stored yet ("sending",
   * "not sent"), and on a stored one that came back through sync after its send's answer
   * was lost (the page then drops its "not sent" copy) */
  txnId?: string;
  /** the share card's fields (org.clearpost.share), for the share pages */
  share?: Record<string, unknown>;
}

/** How far a conversation's history is loaded: all of it, some (the rest is being
 * decrypted, newest first, while the conversation is shown), or some and it failed. */
export interface History {
  complete: boolean;
  loading: boolean;
  error: string | null;
}

export interface Conv {
  id: string;
  roomId: string;
  kind: "direct" | "group";
  createdBy: string;
  members: string[];
  name: string;
  unread: number;
  last: Msg | null;
  lastSeq: number;
  /** Members' devices refused because the key directory does not hold them, in words. */
  refused: string[];
}

export interface DeviceInfo {
  deviceId: string;
  displayName: string | null;
  ed25519: string | null;
  current: boolean;
  /** Why this browser refuses to encrypt to this device (not in the key directory), or null. */
  refused: string | null;
}

/** The last check of your own account's devices in the key directory: the version and
 * epoch verified, when (ms), and why it failed, if it did. */
export interface DirectoryCheck {
  version: number;
  epoch: number;
  at: number;
  error: string | null;
}

/** A change to your devices that the key directory showed and this browser did not make:
 * its version and epoch, when this browser found it (ms), and the notice's words. */
export interface DirectoryChange {
  version: number;
  epoch: number;
  at: number;
  text: string;
  bad: boolean;
}

/** Page -> worker: a call with an id; the worker answers {id, ok, result | error}. */
export interface Call {
  id: number;
  op: string;
  args: unknown[];
}

export interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: { code: string; message: string; status: number };
}

/** Worker -> page, unasked. */
export type Push =
  | { push: "ready"; me: Me }
  | { push: "conversations"; conversations: Conv[] }
  /** a conversation's messages: all of them, or (`changed`) only those that are new or
   * changed, which the page merges into the ones it has (a new message in a conversation of
   * thousands does not copy them all) */
  | { push: "messages"; conversationId: string; messages: Msg[]; history: History }
  | { push: "messages"; conversationId: string; changed: Msg[]; history: History }
  | { push: "notice"; id: string; text: string; bad?: boolean; action?: { label: string; op: string; args: unknown[] } }
  | { push: "connection"; state: "live" | "polling" | "offline" }
  | { push: "signedOut"; reason: string }
  /** web-verify: a `share_intent` sync event (a partner app's suggestion to share) */
  | { push: "shareIntent"; intent: Record<string, unknown> };
