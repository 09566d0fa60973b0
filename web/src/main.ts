// The page: sign-in, the inbox, conversations, devices. Everything secret lives in the crypto
// worker (worker.ts); this side shows what it is given, as text.

import type { Conv, DeviceInfo, DirectoryChange, DirectoryCheck, History, Me, Msg } from "./protocol";
import {
  currentRoute,
  dismissNotice,
  errorText,
  findPage,
  go,
  h,
  localpart,
  navLink,
  navLinks,
  notice,
  onPush,
  page,
  rpc,
  RpcError,
  time,
  type Route,
  wipeDevice,
} from "./ui";
import "./pages/verify"; // web-verify: access history, connected apps, shares from apps

let me: Me | null = null;
let conversations: Conv[] = [];
const messages = new Map<string, Msg[]>();
/** how far each conversation's history is loaded (the worker says with each message list) */
const histories = new Map<string, History>();
/** the conversation shown, whose earlier history the worker loads while it is shown */
let shown: string | null = null;
/** messages typed here and not yet stored by the server, by conversation */
const pending = new Map<string, Msg[]>();
let rendering = 0;

const DEVICE_NOTE =
  "This browser is one of your devices. Its keys were made here and never leave it; " +
  "the server only ever sees encrypted messages. Clearing this site's data (or signing out) " +
  "deletes this device's keys: messages it could read are then unreadable here, unless " +
  "another of your devices sends their keys to the next one you sign in with.";

// ---- rendering ---------------------------------------------------------------------------------

function mainEl(): HTMLElement {
  return document.getElementById("main")!;
}

async function render(): Promise<void> {
  const token = ++rendering;
  const route = currentRoute();
  const name = route.parts[0] ?? "";
  const conversation = name === "c" && !route.parts[2] ? (route.parts[1] ?? null) : null;
  if (shown && shown !== conversation && me) void rpc("close", shown).catch(() => undefined);
  shown = conversation;
  renderNav(name);
  let found = findPage(name);
  if (!found || (found.signedIn && !me)) {
    if (!me && name !== "register") found = findPage("signin");
    else if (!found) found = findPage("");
  }
  if (me && (name === "signin" || name === "register")) found = findPage("");
  let node: HTMLElement;
  try {
    node = await found!.render(route);
  } catch (err) {
    node = h("p", { class: "error", role: "alert" }, `This page could not be shown: ${errorText(err)}`);
  }
  if (token !== rendering) return;
  mainEl().replaceChildren(node);
  // when the first signed-in page was interactive, for bench/web_bench.py (ms since navigation)
  if (me && !document.body.dataset["shownAt"]) document.body.dataset["shownAt"] = String(performance.now());
  const focus = node.querySelector<HTMLElement>("[data-autofocus]") ?? mainEl();
  focus.focus();
  // a conversation opens at its newest message (the composer sticks to the bottom, so
  // focusing it does not scroll there)
  if (node.querySelector("#messages")) scrollToEnd();
}

function scrollToEnd(): void {
  window.scrollTo(0, document.documentElement.scrollHeight);
}

function renderNav(current: string): void {
  const nav = document.getElementById("nav")!;
  if (!me) {
    nav.replaceChildren(
      h("a", { href: "#/signin", "aria-current": current === "signin" ? "page" : undefined }, "Sign in"),
      h("a", { href: "#/register", "aria-current": current === "register" ? "page" : undefined }, "Create account"),
    );
    return;
  }
  const items = [
    { href: "#/", label: "Inbox" },
    { href: "#/new", label: "New conversation" },
    { href: "#/devices", label: "Your devices" },
    ...navLinks(),
  ];
  nav.replaceChildren(
    ...items.map((i) =>
      h("a", {
        href: i.href,
        "aria-current": (i.href.replace(/^#\/?/, "").split("/")[0] ?? "") === current ? "page" : undefined,
      }, i.label),
    ),
    h("button", { type: "button", class: "plain", id: "signout", onclick: signOut }, "Sign out"),
  );
}

function field(label: string, input: HTMLElement, hint?: string): HTMLElement {
  const id = input.id;
  return h("div", {}, h("label", { for: id }, label), input, hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null);
}

function errorBox(): HTMLElement {
  return h("p", { class: "error", role: "alert" });
}

// ---- signing in ----------------------------------------------------------------------------------

function authPage(register: boolean): HTMLElement {
  const username = h("input", { id: "username", name: "username", autocomplete: "username", required: true, "data-autofocus": true, autocapitalize: "none", spellcheck: "false" }) as HTMLInputElement;
  const password = h("input", { id: "password", name: "password", type: "password", autocomplete: register ? "new-password" : "current-password", required: true, minlength: register ? "8" : undefined }) as HTMLInputElement;
  const invite = h("input", { id: "invite", name: "invite", autocomplete: "off" }) as HTMLInputElement;
  const err = errorBox();
  const button = h("button", { type: "submit" }, register ? "Create account" : "Sign in") as HTMLButtonElement;
  const form = h(
    "form",
    {
      class: "stack",
      "aria-labelledby": "auth-title",
      onsubmit: async (ev) => {
        ev.preventDefault();
        err.textContent = "";
        button.disabled = true;
        button.textContent = "Making this browser's keys…";
        try {
          me = register
            ? await rpc<Me>("register", username.value.trim(), password.value, invite.value.trim() || undefined)
            : await rpc<Me>("login", username.value.trim(), password.value);
          go("#/");
        } catch (e) {
          err.textContent = errorText(e);
          button.disabled = false;
          button.textContent = register ? "Create account" : "Sign in";
        }
      },
    },
    field("Username", username, register ? "3 to 32 characters: a-z, 0-9, _ . - (starting with a letter)." : undefined),
    field("Password", password, register ? "At least 8 characters." : undefined),
    register ? field("Invite (if this server asks for one)", invite) : null,
    button,
    err,
  );
  return h(
    "section",
    {},
    h("h1", { id: "auth-title" }, register ? "Create an account" : "Sign in"),
    h("p", { class: "hint" }, DEVICE_NOTE),
    form,
    h("p", {}, register ? h("a", { href: "#/signin" }, "I have an account: sign in") : h("a", { href: "#/register" }, "Create an account")),
  );
}

async function signOut(): Promise<void> {
  if (!confirm("Sign out? This browser's keys are deleted: it stops being one of your devices.")) return;
  try {
    await rpc("logout");
  } catch (err) {
    notice(`Signing out failed: ${errorText(err)}`, { bad: true });
    return;
  }
  await wipeDevice();
  me = null;
  conversations = [];
  messages.clear();
  histories.clear();
  pending.clear();
  go("#/signin");
}

// ---- the inbox ---------------------------------------------------------------------------------

function preview(m: Msg | null): string {
  if (!m) return "No messages yet";
  const who = m.sender === me?.userId ? "You" : localpart(m.sender);
  if (m.state === "waiting") return `${who}: waiting for the key…`;
  if (m.state === "withheld" || m.state === "failed") return `${who}: cannot be read on this device`;
  return `${who}: ${m.text}`;
}

function inboxPage(): HTMLElement {
  const list = h("ul", { class: "inbox", id: "inbox", "aria-label": "Conversations" });
  fillInbox(list);
  return h(
    "section",
    {},
    h("h1", { "data-autofocus": true, tabindex: "-1" }, "Inbox"),
    list,
    h("p", {}, h("a", { href: "#/new" }, "Start a conversation")),
  );
}

function fillInbox(list: HTMLElement): void {
  if (!conversations.length) {
    list.replaceChildren(h("li", { class: "hint" }, "No conversations yet."));
    return;
  }
  list.replaceChildren(
    ...conversations.map((c) =>
      h(
        "li",
        {},
        h(
          "a",
          { href: `#/c/${encodeURIComponent(c.id)}`, "data-conversation": c.id },
          h("span", { class: "name" }, c.name),
          c.unread ? h("span", { class: "badge", "aria-label": `${c.unread} unread` }, String(c.unread)) : null,
          h("span", { class: "preview" }, preview(c.last)),
        ),
      ),
    ),
  );
}

// ---- a conversation ------------------------------------------------------------------------------

function convById(id: string): Conv | undefined {
  return conversations.find((c) => c.id === id);
}

async function conversationPage(route: Route): Promise<HTMLElement> {
  const id = route.parts[1]!;
  if (route.parts[2] === "settings") return settingsPage(id);
  const c = convById(id);
  if (!c) return h("p", { role: "alert" }, "No such conversation (or you are not in it). ", h("a", { href: "#/" }, "Back to the inbox"));
  // Not a live region itself: earlier messages are added above while the conversation is
  // shown, and a screen reader would read them all out. New messages are read out by the
  // live region below (`announce`).
  const list = h("ol", { class: "messages", id: "messages", "aria-label": "Messages" });
  const box = h("textarea", { id: "compose", name: "message", rows: "2", required: true, "data-autofocus": true, "aria-describedby": "compose-hint" }) as HTMLTextAreaElement;
  const composer = h(
    "form",
    {
      class: "composer",
      onsubmit: (ev) => {
        ev.preventDefault();
        const text = box.value;
        if (!text.trim()) return;
        box.value = "";
        void sendText(id, text, crypto.randomUUID());
      },
    },
    h("label", { for: "compose", class: "visually-hidden" }, "Message"),
    box,
    h("button", { type: "submit" }, "Send"),
  );
  box.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      (composer as HTMLFormElement).requestSubmit();
    }
  });
  const section = h(
    "section",
    { "data-conversation": id },
    h("div", { class: "row" },
      h("h1", { id: "conv-title" }, c.name),
      h("a", { href: `#/c/${encodeURIComponent(id)}/settings` }, c.kind === "group" ? "Members and name" : "Details")),
    h("p", { class: "hint" }, c.kind === "group" ? `Group of ${c.members.length}: ${c.members.map(localpart).join(", ")}` : `Direct conversation with ${c.members.filter((u) => u !== me?.userId).map(localpart).join(", ")}`),
    refusedList(c),
    h("div", { class: "hint", id: "history-status", role: "status", hidden: true }),
    list,
    h("div", { class: "visually-hidden", id: "messages-live", "aria-live": "polite" }),
    composer,
    h("p", { class: "hint", id: "compose-hint" }, "Enter sends; Shift+Enter starts a new line. Encrypted in this browser before it is sent."),
  );
  await rpc("open", id);
  fillMessages(id, list);
  void rpc("markRead", id);
  return section;
}

/** Members' devices this browser refuses (not in the key directory), in plain words. */
function refusedList(c: Conv): HTMLElement {
  if (!c.refused.length) return h("div", { id: "refused" });
  return h("div", { id: "refused", class: "notice bad", role: "alert" },
    h("p", {}, "Not encrypted to:"), h("ul", {}, ...c.refused.map((why) => h("li", {}, why))));
}

/** How long "Ask again for the key" rests after a press: the asked devices that are online
 * answer within it (a key or a reason shows on the message); pressing at once again would
 * only repeat the request (and put one more confirmation on your other devices). */
const ASK_AGAIN_REST_MS = 5_000;

/** "Ask again for the key", and a line that says when it was asked and how many devices.
 * An answer that changes the message redraws it; one that does not (the same reason again,
 * or none yet) leaves the line, and the button can be pressed again after a short rest. */
function askAgainButton(id: string): HTMLElement[] {
  const label = "Ask again for the key";
  const status = h("div", { class: "meta", role: "status" });
  let times = 0;
  // aria-disabled, not disabled: the button keeps the keyboard focus while it rests
  const button = h("button", { type: "button", class: "plain", onclick: async () => {
    if (button.getAttribute("aria-disabled") === "true") return;
    button.setAttribute("aria-disabled", "true");
    button.textContent = "Asking…";
    try {
      const n = await rpc<number>("askAgain", id);
      times++;
      const when = time(Date.now());
      status.textContent = n
        ? `Asked ${n} ${n === 1 ? "device" : "devices"} for the key at ${when}${times > 1 ? ` (${times} times so far)` : ""}.`
        : `No device could be asked at ${when}.`;
      setTimeout(() => button.removeAttribute("aria-disabled"), ASK_AGAIN_REST_MS);
    } catch (err) {
      notice(`Asking failed: ${errorText(err)}`, { bad: true });
      button.removeAttribute("aria-disabled");
    }
    button.textContent = label;
  } }, label);
  return [button, status];
}

function messageItem(m: Msg, id: string): HTMLElement {
  const mine = m.sender === me?.userId;
  const who = mine ? "You" : localpart(m.sender);
  if (m.kind === "name" && m.state === "ok") {
    return h("li", { class: "system", "data-seq": String(m.seq) }, `${who} named the conversation “${m.text}”`);
  }
  const li = h("li", { class: (mine ? "mine " : "") + (m.state === "ok" ? "" : "problem"), "data-seq": String(m.seq), "data-state": m.state });
  li.append(h("div", { class: "meta" }, `${who} · ${m.state === "sending" ? "sending…" : m.state === "unsent" ? "not sent" : time(m.ts)}`));
  if (m.state === "ok" || m.state === "sending" || m.state === "unsent") {
    li.append(h("div", { class: "text" }, m.text));
    if (m.kind === "share" && m.share) {
      const url = typeof m.share["url"] === "string" ? m.share["url"] : "";
      const via = typeof m.share["partner_name"] === "string" ? m.share["partner_name"] : typeof m.share["via"] === "string" ? m.share["via"] : "";
      if (via) li.append(h("div", { class: "meta" }, `via ${via}`));
      if (/^https?:\/\//.test(url)) li.append(h("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, "Open the link"));
    }
  } else {
    li.append(h("div", { class: "text" }, m.problem ?? "This message cannot be read on this device."));
    if (m.state === "waiting" || m.state === "withheld") li.append(...askAgainButton(id));
  }
  if (m.state === "unsent" && m.txnId) {
    const txn = m.txnId;
    li.append(h("button", { type: "button", class: "plain", onclick: () => void sendText(id, m.text, txn) }, "Retry"));
  }
  return li;
}

/** What a screen reader says of a new message. */
function spoken(m: Msg): string {
  if (m.kind === "name" && m.state === "ok") return `${localpart(m.sender)} named the conversation “${m.text}”`;
  return preview(m);
}

/** Show the conversation's messages in `list`, changing only what changed: an item whose
 * message did not change stays (with its focus and state), new ones go in where they
 * belong, earlier history in one DocumentFragment above. Messages from others that are
 * newer than any shown before are read out (the list itself is not a live region).
 * `appended`: messages that came after every stored one; when the list ends with the one
 * stored before them (nothing typed is waiting or shown after it), they are added at its
 * end without going over the rest (a conversation of thousands of messages). */
function fillMessages(id: string, list: HTMLElement, appended: Msg[] | null = null): void {
  const stored = messages.get(id) ?? [];
  const section = list.closest("section");
  historyStatus(section?.querySelector<HTMLElement>("#history-status") ?? null, id);
  const before = list.dataset["newest"];
  // the list ends with the message stored just before these (none typed after it shown)
  const prior = appended?.length ? stored[stored.length - appended.length - 1] : undefined;
  const tail = list.lastElementChild as HTMLElement | null;
  if (appended && prior && !pending.get(id)?.length && tail?.dataset["key"] === keyOf(prior)) {
    const atBottom = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 40;
    list.append(...appended.map((m) => keyed(messageItem(m, id), m)));
    list.dataset["newest"] = String(appended[appended.length - 1]!.seq);
    const fresh = appended.filter((m) => m.sender !== me?.userId);
    if (fresh.length) announce(section, fresh.map(spoken));
    if (atBottom && list.isConnected) scrollToEnd();
    return;
  }
  const all = [...stored, ...(pending.get(id) ?? [])];
  const newest = stored.length ? stored[stored.length - 1]!.seq : 0;
  list.dataset["newest"] = String(Math.max(newest, Number(before ?? 0)));
  if (!all.length) {
    list.replaceChildren(h("li", { class: "system" }, "No messages yet. Say hello."));
    return;
  }
  // at the end of the page (the newest message in view): stay there; otherwise the browser
  // keeps what is in view in place as earlier messages are added above (scroll anchoring)
  const atBottom = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 40;
  const old = new Map<string, HTMLElement>();
  for (const el of Array.from(list.children) as HTMLElement[]) {
    const key = el.dataset["key"];
    if (key) old.set(key, el);
  }
  const items = all.map((m) => {
    const key = keyOf(m);
    const el = old.get(key) ?? messageItem(m, id);
    el.dataset["key"] = key;
    return el;
  });
  const keep = new Set<Element>(items);
  let cur = list.firstElementChild;
  let run: DocumentFragment | null = null;
  const skipGone = () => {
    while (cur && !keep.has(cur)) {
      const next: Element | null = cur.nextElementSibling;
      cur.remove();
      cur = next;
    }
  };
  for (const el of items) {
    skipGone();
    if (el === cur) {
      if (run) list.insertBefore(run, cur);
      run = null;
      cur = cur.nextElementSibling;
    } else {
      (run ??= document.createDocumentFragment()).append(el);
    }
  }
  skipGone();
  if (run) list.insertBefore(run, null);
  if (before !== undefined) {
    const fresh = stored.filter((m) => m.seq > Number(before) && m.sender !== me?.userId);
    if (fresh.length) announce(section, fresh.map(spoken));
  }
  if (atBottom && list.isConnected) scrollToEnd();
}

/** What makes a message's item stale: a new item is made when any of it changes. */
function keyOf(m: Msg): string {
  return `${m.seq}|${m.state}|${m.txnId ?? ""}|${m.kind}|${m.text.length}`;
}

function keyed(el: HTMLElement, m: Msg): HTMLElement {
  el.dataset["key"] = keyOf(m);
  return el;
}

/** Read out lines in the conversation's live region (the last few kept). */
function announce(section: HTMLElement | null, lines: string[]): void {
  const live = section?.querySelector<HTMLElement>("#messages-live");
  if (!live) return;
  live.append(...lines.map((l) => h("p", {}, l)));
  while (live.childElementCount > 5) live.firstElementChild!.remove();
}

/** Above the list: earlier messages still being decrypted, or why they could not be (with
 * a button to try again). A polite status: it changes only between these, not per page. */
function historyStatus(el: HTMLElement | null, id: string): void {
  if (!el) return;
  const hist = histories.get(id);
  const state = !hist || hist.complete ? "" : hist.error ? `error:${hist.error}` : hist.loading ? "loading" : "";
  if (el.dataset["state"] === state) return;
  el.dataset["state"] = state;
  el.hidden = !state;
  if (!state) el.replaceChildren();
  else if (state === "loading") el.replaceChildren("Decrypting earlier messages in this browser…");
  else {
    el.replaceChildren(
      `Earlier messages could not be loaded: ${hist!.error}. `,
      h("button", { type: "button", class: "plain", onclick: () => void rpc("open", id).catch((e) => notice(`That did not work: ${errorText(e)}`, { bad: true })) }, "Try again"),
    );
  }
}

/** Show at once, send in the background; a failure leaves it "not sent" with a Retry that
 * reuses the same transaction id (the server stores it once). */
async function sendText(id: string, text: string, txnId: string): Promise<void> {
  const list = pending.get(id) ?? [];
  pending.set(id, list);
  let item = list.find((p) => p.txnId === txnId);
  if (!item) {
    item = { seq: Number.MAX_SAFE_INTEGER, sender: me!.userId, senderDevice: me!.deviceId, ts: Date.now(), kind: "text", text, state: "sending", txnId };
    list.push(item);
  } else {
    item.state = "sending";
  }
  refreshMessages(id);
  try {
    await rpc<number>("sendText", id, txnId, text);
    pending.set(id, (pending.get(id) ?? []).filter((p) => p.txnId !== txnId));
    dismissNotice(`unsent:${txnId}`); // sent on a Retry: the notice is no longer true
  } catch (err) {
    // unless it was stored after all (its answer lost) and came back through sync already
    if ((pending.get(id) ?? []).includes(item)) {
      item.state = "unsent";
      notice(`A message was not sent: ${errorText(err)}. Use Retry next to it.`, { bad: true, id: `unsent:${txnId}` });
    }
  }
  refreshMessages(id);
}

/** Messages this device sent that the server stored, though the page did not hear so (the
 * answer to the send was lost): they came back through sync with their transaction id, so
 * their "not sent" copies go, and so does the notice about them. */
function dropDelivered(id: string, stored: Msg[]): void {
  const list = pending.get(id);
  if (!list?.length) return;
  const done = new Set(stored.flatMap((m) => (m.txnId ? [m.txnId] : [])));
  if (!done.size) return;
  pending.set(id, list.filter((p) => !p.txnId || !done.has(p.txnId)));
  for (const txn of done) dismissNotice(`unsent:${txn}`);
}

function refreshMessages(id: string, appended: Msg[] | null = null): void {
  const list = document.getElementById("messages");
  if (list && list.closest(`[data-conversation="${CSS.escape(id)}"]`)) fillMessages(id, list, appended);
}

/** Merge new or changed messages (in seq order) into the conversation's list; returns them
 * when they all came after the newest one it held (the list only grew at its end), else
 * null. */
function merge(id: string, changed: Msg[]): Msg[] | null {
  const list = messages.get(id) ?? [];
  messages.set(id, list);
  let appendedOnly = true;
  for (const m of changed) {
    if (!list.length || m.seq > list[list.length - 1]!.seq) {
      list.push(m);
      continue;
    }
    appendedOnly = false;
    let [lo, hi] = [0, list.length];
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.seq < m.seq) lo = mid + 1;
      else hi = mid;
    }
    if (list[lo]?.seq === m.seq) list[lo] = m;
    else list.splice(lo, 0, m);
  }
  return appendedOnly ? changed : null;
}

async function settingsPage(id: string): Promise<HTMLElement> {
  const c = convById(id);
  if (!c) return h("p", { role: "alert" }, "No such conversation. ", h("a", { href: "#/" }, "Back to the inbox"));
  const err = errorBox();
  const section = h("section", {}, h("h1", { "data-autofocus": true, tabindex: "-1" }, c.name),
    h("p", {}, h("a", { href: `#/c/${encodeURIComponent(id)}` }, "Back to the conversation")));
  if (c.kind === "group") {
    const name = h("input", { id: "conv-name", value: c.name }) as HTMLInputElement;
    section.append(h("form", { class: "stack", onsubmit: async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      try {
        await rpc("rename", id, crypto.randomUUID(), name.value.trim());
        notice("The conversation's name was changed (encrypted: the server does not see it).");
      } catch (e) { err.textContent = errorText(e); }
    } }, field("Name (seen by members only)", name), h("button", { type: "submit" }, "Rename")));
  }
  section.append(h("h2", {}, "Members"));
  const canRemove = (u: string) => c.kind === "group" && (c.createdBy === me?.userId) && u !== me?.userId;
  section.append(h("ul", { class: "plainlist", "aria-label": "Members" }, ...c.members.map((u) =>
    h("li", { class: "row" }, h("span", {}, `${localpart(u)}${u === me?.userId ? " (you)" : ""}`),
      canRemove(u) ? h("button", { type: "button", class: "danger", "aria-label": `Remove ${localpart(u)}`, onclick: async () => {
        try { await rpc("removeMember", id, u); go(`#/c/${encodeURIComponent(id)}/settings`); } catch (e) { err.textContent = errorText(e); }
      } }, "Remove") : null))));
  if (c.kind === "group") {
    const who = h("input", { id: "add-member", autocapitalize: "none", spellcheck: "false" }) as HTMLInputElement;
    section.append(h("form", { class: "stack", onsubmit: async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      try { await rpc("addMember", id, who.value); go(`#/c/${encodeURIComponent(id)}/settings`); } catch (e) { err.textContent = errorText(e); }
    } }, field("Add a member (username)", who), h("button", { type: "submit" }, "Add")));
    section.append(h("h2", {}, "Leave"), h("button", { type: "button", class: "danger", onclick: async () => {
      if (!confirm("Leave this group? You stop getting its messages.")) return;
      try { await rpc("leave", id); go("#/"); } catch (e) { err.textContent = errorText(e); }
    } }, "Leave this group"));
  }
  section.append(err);
  return section;
}

function newPage(): HTMLElement {
  const members = h("input", { id: "members", required: true, autocapitalize: "none", spellcheck: "false", "data-autofocus": true, "aria-describedby": "members-hint" }) as HTMLInputElement;
  const name = h("input", { id: "group-name" }) as HTMLInputElement;
  const direct = h("input", { type: "radio", name: "kind", id: "kind-direct", value: "direct", checked: true }) as HTMLInputElement;
  const group = h("input", { type: "radio", name: "kind", id: "kind-group", value: "group" }) as HTMLInputElement;
  const err = errorBox();
  return h("section", {}, h("h1", {}, "New conversation"),
    h("form", { class: "stack", onsubmit: async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      const users = members.value.split(/[,\s]+/).filter(Boolean);
      try {
        const id = await rpc<string>("create", group.checked ? "group" : "direct", users, name.value.trim());
        go(`#/c/${encodeURIComponent(id)}`);
      } catch (e) { err.textContent = errorText(e); }
    } },
      h("fieldset", {}, h("legend", {}, "Kind"),
        h("div", { class: "row" }, direct, h("label", { for: "kind-direct" }, "Direct (one person)")),
        h("div", { class: "row" }, group, h("label", { for: "kind-group" }, "Group"))),
      field("With (usernames, separated by commas)", members, "For example: bob, carol"),
      field("Group name (optional; encrypted, only members see it)", name),
      h("button", { type: "submit" }, "Start"),
      err));
}

// ---- devices ---------------------------------------------------------------------------------------

async function devicesPage(): Promise<HTMLElement> {
  const list = await rpc<DeviceInfo[]>("devices");
  const err = errorBox();
  return h("section", {}, h("h1", { "data-autofocus": true, tabindex: "-1" }, "Your devices"),
    h("p", {}, DEVICE_NOTE),
    h("ul", { class: "plainlist", id: "devices", "aria-label": "Your devices" }, ...list.map((d) =>
      h("li", { "data-device": d.deviceId },
        h("div", {}, h("strong", {}, d.displayName ?? d.deviceId), d.current ? " — this browser" : "", ` (${d.deviceId})`),
        h("div", { class: "key" }, d.ed25519 ? `Fingerprint (Ed25519): ${d.ed25519}` : "No keys published yet"),
        d.refused ? h("p", { class: "notice bad", role: "alert" }, d.refused) : null,
        d.current ? null : h("button", { type: "button", class: "danger", "aria-label": `Remove device ${d.deviceId}`, onclick: async () => {
          if (!confirm(`Remove ${d.displayName ?? d.deviceId}? It is signed out and gets no new messages.`)) return;
          try { await rpc("removeDevice", d.deviceId); go("#/devices"); } catch (e) { err.textContent = errorText(e); }
        } }, "Remove this device")))),
    err,
    directorySection(await rpc<DirectoryCheck | null>("ownDevicesCheck"), await rpc<DirectoryChange[]>("ownDevicesChanges")),
    h("h2", {}, "If you lose a device"),
    h("p", {}, "Remove it here: it is signed out at once, and your contacts' apps stop encrypting new messages to it."));
}

/** Your devices as the key directory lists them, and this browser's last check of it. */
function directorySection(first: DirectoryCheck | null, changes: DirectoryChange[]): HTMLElement {
  const status = h("p", { id: "directory-check", role: "status" });
  const show = (c: DirectoryCheck | null) => {
    status.className = c?.error ? "notice bad" : "";
    status.textContent = !c
      ? "Not checked yet."
      : c.error
        ? `The last check failed (${new Date(c.at).toLocaleTimeString()}): ${c.error}`
        : `Checked at ${new Date(c.at).toLocaleTimeString()}: the key directory's epoch ${c.epoch} lists version ${c.version} of your devices, and this browser has checked every version since it signed in.`;
  };
  show(first);
  const button = h("button", { type: "button", onclick: async () => {
    button.disabled = true;
    try { show(await rpc<DirectoryCheck | null>("ownDevicesCheck", true)); }
    catch (e) { status.className = "notice bad"; status.textContent = `Checking did not work: ${errorText(e)}`; }
    finally { button.disabled = false; }
  } }, "Check now") as HTMLButtonElement;
  return h("div", {},
    h("h2", {}, "In the key directory"),
    h("p", {}, "Your contacts' apps encrypt only to the devices the public key directory lists for you. This browser checks that list (at most once a minute, and at once when your devices change) and tells you of any device it did not add, even one the server hides from this page."),
    status, button,
    changes.length
      ? h("div", {},
          h("h3", {}, "Changes this browser did not make"),
          h("ul", { class: "plainlist", id: "directory-changes", "aria-label": "Changes to your devices this browser did not make" },
            ...changes.map((c) => h("li", { class: c.bad ? "change bad" : "change" },
              h("div", { class: "hint" }, `${new Date(c.at).toLocaleString()} · version ${c.version}, epoch ${c.epoch}`),
              h("p", {}, c.text)))))
      : null);
}

// ---- wiring ------------------------------------------------------------------------------------------

page("", () => inboxPage());
page("c", conversationPage);
page("new", () => newPage());
page("devices", devicesPage);
page("signin", () => authPage(false), false);
page("register", () => authPage(true), false);
void navLink;

onPush((p) => {
  switch (p.push) {
    case "conversations": {
      conversations = p.conversations;
      const list = document.getElementById("inbox");
      if (list) fillInbox(list);
      const title = document.getElementById("conv-title");
      const r = currentRoute();
      if (title && r.parts[0] === "c") {
        const c = convById(r.parts[1]!);
        if (c) title.textContent = c.name;
        if (c) document.getElementById("refused")?.replaceWith(refusedList(c));
      }
      break;
    }
    case "messages": {
      const got = "changed" in p ? p.changed : p.messages;
      const appended = "changed" in p ? merge(p.conversationId, p.changed) : null;
      if (!("changed" in p)) messages.set(p.conversationId, p.messages);
      histories.set(p.conversationId, p.history);
      dropDelivered(p.conversationId, got);
      refreshMessages(p.conversationId, appended);
      const r = currentRoute();
      if (r.parts[0] === "c" && r.parts[1] === p.conversationId && !r.parts[2] && document.visibilityState === "visible") {
        void rpc("markRead", p.conversationId);
      }
      break;
    }
    case "notice":
      notice(p.text, { id: p.id, bad: p.bad, action: p.action ? { label: p.action.label, run: () => rpc(p.action!.op, ...p.action!.args) } : undefined });
      break;
    case "connection": {
      const el = document.getElementById("connection")!;
      el.textContent = p.state === "live" ? "" : p.state === "polling" ? "Live updates (WebSocket) are unavailable here; new messages are fetched by polling instead." : "Offline: trying to reconnect…";
      break;
    }
    case "signedOut":
      me = null;
      conversations = [];
      messages.clear();
      histories.clear();
      pending.clear();
      void wipeDevice().then(() => {
        notice(p.reason + " Its keys were deleted from this browser.", { bad: true, id: "signed-out" });
        go("#/signin");
      });
      break;
    case "ready":
      me = p.me;
      break;
  }
});

window.addEventListener("hashchange", () => void render());

async function boot(): Promise<void> {
  try {
    me = await rpc<Me | null>("restore");
  } catch (err) {
    if (!(err instanceof RpcError && err.code === "signed_out")) {
      notice(`This browser's device could not be opened: ${errorText(err)}`, { bad: true, id: "open-failed" });
    }
    me = null;
  }
  document.body.dataset["ready"] = "true";
  await render();
}

void boot();
