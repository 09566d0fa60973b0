// "Connected apps": each partner app you connected, its permissions in plain words, its
// agreement as a readable page, and a button to disconnect it (revoke: logged first, then
// its tokens stop working at once).

import { call } from "../../api";
import { errorText, go, h, rpc } from "../../ui";
import { loadNames, when, type Names } from "./words";

interface App {
  partner_id: string;
  scopes: string[];
  since: number;
  last_access: number | null;
  grant_log_index: number | null;
  revoked_at: number | null;
  revoke_log_index: number | null;
}

export async function appsPage(): Promise<HTMLElement> {
  const [{ apps }, names] = await Promise.all([
    rpc<{ apps: App[] }>("api", "GET", "/v1/me/apps"),
    loadNames((p) => call("GET", p)),
  ]);
  const connected = apps.filter((a) => a.revoked_at === null);
  const gone = apps.filter((a) => a.revoked_at !== null);
  const section = h(
    "section",
    { id: "connected-apps" },
    h("h1", { "data-autofocus": true, tabindex: "-1" }, "Connected apps"),
    h(
      "p",
      {},
      "Apps you allowed to use your Clearpost account. None of them can read your messages, conversations, " +
        "contacts or devices: no permission for that exists. Each use they make is in your ",
      h("a", { href: "#/access" }, "access history"),
      ", checked in this browser.",
    ),
  );
  if (!connected.length) section.append(h("p", { class: "hint", id: "no-apps" }, "No app is connected."));
  else section.append(h("ul", { class: "plainlist apps", "aria-label": "Connected apps" }, ...connected.map((a) => card(a, names))));
  if (gone.length) {
    section.append(
      h("h2", {}, "Disconnected"),
      h("ul", { class: "plainlist apps", "aria-label": "Disconnected apps" }, ...gone.map((a) => card(a, names))),
    );
  }
  return section;
}

function card(a: App, names: Names): HTMLElement {
  const name = names.partners.get(a.partner_id) ?? a.partner_id;
  const err = h("p", { class: "error", role: "alert" });
  const li = h(
    "li",
    { class: "app", "data-partner": a.partner_id, "data-connected": String(a.revoked_at === null) },
    h("h3", {}, name),
    h(
      "p",
      { class: "hint" },
      a.revoked_at === null
        ? `Connected ${when(a.since)}` + (a.last_access ? ` · last used ${when(a.last_access)}` : " · not used yet")
        : `Disconnected ${when(a.revoked_at)}` + (a.revoke_log_index !== null ? ` (log entry ${a.revoke_log_index})` : ""),
    ),
    h("p", {}, a.revoked_at === null ? `${name} may:` : `${name} was allowed to:`),
    h(
      "ul",
      { class: "scopes" },
      ...a.scopes.map((s) => h("li", { "data-scope": s }, names.scopes.get(s) ?? s, " ", h("span", { class: "key" }, `(${s})`))),
    ),
    h(
      "p",
      {},
      h("a", { href: `/agreements/${encodeURIComponent(a.partner_id)}`, class: "agreement-link" }, `Read ${name}'s agreement`),
      a.grant_log_index !== null ? ` · your consent is log entry ${a.grant_log_index}` : "",
    ),
  );
  if (a.revoked_at === null) {
    li.append(
      h("button", {
        type: "button",
        class: "danger",
        "aria-label": `Disconnect ${name}`,
        onclick: async (ev) => {
          if (!confirm(`Disconnect ${name}? It can no longer use your account; this is recorded in the log first.`)) return;
          const b = ev.currentTarget as HTMLButtonElement;
          b.disabled = true;
          try {
            await rpc("api", "DELETE", `/v1/me/apps/${encodeURIComponent(a.partner_id)}`);
            go("#/apps");
          } catch (e) {
            b.disabled = false;
            err.textContent = `Disconnecting failed: ${errorText(e)}`;
          }
        },
      }, "Disconnect"),
      err,
    );
  }
  return li;
}
