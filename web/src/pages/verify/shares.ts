// "Shares from apps": what partner apps suggest you share. A suggestion (a share intent)
// reaches only your own devices. Nothing goes to anyone until you pick friends or
// conversations here and confirm; then the card is encrypted in this browser and sent as an
// ordinary message, attributed "via <app>", and the server learns only how many people got it
// (the same steps as the SDK's client/shares.py).

import type { Conv, Me } from "../../protocol";
import { errorText, go, h, notice, onPush, rpc } from "../../ui";
import { toBase64, sha256, utf8 } from "../../verify/bytes";

export interface Intent {
  intent_id: string;
  partner: string;
  partner_name: string;
  title: string;
  url: string;
  link: string;
  description: string | null;
  expires_at: number;
  log_index: number | null;
}

const MAX_RECIPIENTS = 1000;
let conversations: Conv[] = [];
onPush((p) => {
  if (p.push === "conversations") conversations = p.conversations;
  if (p.push === "shareIntent") {
    const i = p.intent as unknown as Intent;
    notice(`${i.partner_name} suggests you share “${i.title}”. Nothing is sent until you choose who gets it.`, {
      id: `intent:${i.intent_id}`,
      action: { label: "Choose who gets it", run: async () => go(`#/shares/${encodeURIComponent(i.intent_id)}`) },
    });
    if (location.hash.startsWith("#/shares")) go(location.hash);
  }
});

/** The same transaction id for the same intent and conversation, every time (as the SDK's
 * share_txn_id), so sending again after a failure never delivers a second card. */
export async function shareTxnId(intentId: string, conversationId: string): Promise<string> {
  const digest = await sha256(utf8(`share\n${intentId}\n${conversationId}`));
  return "sh" + toBase64(digest.slice(0, 18)).replaceAll("+", "-").replaceAll("/", "_");
}

/** The card as recipients' apps decrypt it (contract #16: m.text plus org.clearpost.share). */
export function cardContent(i: Intent): Record<string, unknown> {
  return {
    msgtype: "m.text",
    body: `${i.title} ${i.link} (via ${i.partner_name})`,
    "org.clearpost.share": { title: i.title, url: i.link, preview: i.description, via: i.partner_name },
  };
}

export async function sharesPage(only?: string): Promise<HTMLElement> {
  const [{ share_intents: intents }] = await Promise.all([
    rpc<{ share_intents: Intent[] }>("api", "GET", "/v1/me/share-intents"),
    rpc("conversations"),
  ]);
  const me = await rpc<Me>("whoami");
  const section = h(
    "section",
    { id: "shares" },
    h("h1", { "data-autofocus": true, tabindex: "-1" }, "Shares from apps"),
    h(
      "p",
      {},
      "Apps you connected can suggest something for you to share. Only your own devices get the suggestion. " +
        "You choose who gets it; the card is encrypted here, and the app learns only how many people you sent it to.",
    ),
  );
  const shown = only ? intents.filter((i) => i.intent_id === only) : intents;
  if (!shown.length) section.append(h("p", { class: "hint", id: "no-intents" }, "No suggestions waiting."));
  for (const i of shown) section.append(intentForm(i, me));
  if (only && intents.length > shown.length) section.append(h("p", {}, h("a", { href: "#/shares" }, "All suggestions")));
  return section;
}

function intentForm(i: Intent, me: Me): HTMLElement {
  const key = i.intent_id;
  const friends = h("input", {
    id: `friends-${key}`,
    autocapitalize: "none",
    spellcheck: "false",
    "aria-describedby": `friends-hint-${key}`,
  }) as HTMLInputElement;
  const boxes = conversations.map((c) => {
    const box = h("input", { type: "checkbox", id: `conv-${key}-${c.id}`, value: c.id, "data-conversation": c.id }) as HTMLInputElement;
    return { c, box };
  });
  const err = h("p", { class: "error", role: "alert" });
  const done = h("p", { role: "status", class: "sent" });
  const button = h("button", { type: "submit" }, "Send") as HTMLButtonElement;
  const left = Math.max(0, i.expires_at - Date.now());
  return h(
    "article",
    { class: "intent", "data-intent": key, "aria-labelledby": `intent-title-${key}` },
    h("p", { class: "hint" }, `${i.partner_name} suggests:`),
    h("h2", { id: `intent-title-${key}` }, i.title),
    i.description ? h("p", {}, i.description) : null,
    h("p", { class: "hint" }, "Links to ", h("span", { class: "key" }, i.url), ` · expires in ${Math.ceil(left / 3_600_000)} h`),
    h(
      "form",
      {
        class: "stack",
        onsubmit: async (ev) => {
          ev.preventDefault();
          err.textContent = "";
          button.disabled = true;
          try {
            const n = await send(i, me, friends.value, boxes.filter((b) => b.box.checked).map((b) => b.c));
            done.textContent = `Sent to ${n} ${n === 1 ? "person" : "people"}, end-to-end encrypted. ${i.partner_name} learns only that number.`;
            button.textContent = "Sent";
          } catch (e) {
            err.textContent = errorText(e);
            button.disabled = false;
          }
        },
      },
      h("label", { for: `friends-${key}` }, "Friends (usernames, separated by commas)"),
      friends,
      h("p", { class: "hint", id: `friends-hint-${key}` }, "Each gets it in your direct conversation with them."),
      boxes.length
        ? h(
            "fieldset",
            {},
            h("legend", {}, "Or conversations"),
            ...boxes.map(({ c, box }) =>
              h("div", { class: "row" }, box, h("label", { for: box.id }, c.name + (c.kind === "group" ? ` (group of ${c.members.length})` : ""))),
            ),
          )
        : null,
      button,
      err,
      done,
    ),
  );
}

/** Steps as in the SDK: still pending; find or create each friend's direct conversation;
 * count distinct recipients; send the card to each conversation under a stable transaction
 * id; complete the intent with the number only. Returns that number. */
async function send(i: Intent, me: Me, friendsText: string, chosen: Conv[]): Promise<number> {
  if (i.expires_at <= Date.now()) throw new Error("This suggestion has expired (suggestions last 24 hours).");
  const server = me.userId.split(":").slice(1).join(":");
  const users = [...new Set(friendsText.split(/[,\s]+/).filter(Boolean).map((u) => {
    const t = u.replace(/^@/, "");
    return t.includes(":") || !server ? `@${t}` : `@${t}:${server}`;
  }))];
  if (!users.length && !chosen.length) throw new Error("Choose at least one friend or conversation.");
  if (users.includes(me.userId)) throw new Error("You cannot share with yourself.");
  const targets = new Set<string>();
  const recipients = new Set<string>();
  for (const u of users) {
    targets.add(await rpc<string>("create", "direct", [u], ""));
    recipients.add(u);
  }
  for (const c of chosen) {
    targets.add(c.id);
    for (const m of c.members) if (m !== me.userId) recipients.add(m);
  }
  if (!recipients.size) throw new Error("Nobody else is in that conversation.");
  if (recipients.size > MAX_RECIPIENTS) throw new Error(`A share reaches at most ${MAX_RECIPIENTS} people.`);
  const content = cardContent(i);
  for (const id of targets) await rpc("sendContent", id, await shareTxnId(i.intent_id, id), content);
  await rpc("api", "POST", `/v1/me/share-intents/${encodeURIComponent(i.intent_id)}/complete`, { recipients: recipients.size });
  return recipients.size;
}
