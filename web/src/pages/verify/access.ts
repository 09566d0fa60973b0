// "Access history": the log entries about you, each verified in this browser
// (../../verify/history.ts says how). A failed check is shown as a failure, loudly: an alert
// at the top that says what failed and that the history must not be trusted, and the entry
// that failed marked as such.

import { call } from "../../api";
import { h, rpc, RpcError } from "../../ui";
import { verifyHistory, type CheckedEntry, type History, type LogApi } from "../../verify/history";
import { browserMemory } from "./memory";
import { describe, loadNames, when, type Names } from "./words";

export function logApi(): LogApi {
  return {
    key: () => call("GET", "/v1/log/key"),
    myEntries: (start, size) =>
      rpc("api", "GET", `/v1/me/log-entries?start=${start}${size === null ? "" : `&size=${size}`}`),
    consistency: async (from, to) =>
      (await call<{ hashes: string[] }>("GET", `/v1/log/proof/consistency?from=${from}&to=${to}`)).hashes,
    cosigned: async (n) => {
      const r = await fetch(`/v1/log/checkpoint?cosigned=${n}`, { credentials: "omit", cache: "no-store" });
      if (r.status === 404) return null;
      if (!r.ok) throw new Error(`the log answered ${r.status} for its cosigned checkpoint`);
      return r.text();
    },
  };
}

export async function accessPage(userId: string): Promise<HTMLElement> {
  const section = h("section", { id: "access-history" }, h("h1", { "data-autofocus": true, tabindex: "-1" }, "Access history"));
  section.append(
    h(
      "p",
      {},
      "Every consent you give an app, every use an app makes of it, and every change to your devices is " +
        "recorded in Clearpost's public transparency log before it takes effect. This browser checks each " +
        "record below itself: that it is in the log everyone sees, signed by the log's key, and that the log " +
        "only grew since this browser last looked; and, against the public key directory, that the server left none out.",
    ),
  );
  const body = h("div", { id: "access-result", "aria-busy": "true" }, h("p", { role: "status" }, "Checking the log in this browser…"));
  section.append(body);
  void fill(body, userId);
  return section;
}

async function fill(body: HTMLElement, userId: string): Promise<void> {
  const names = loadNames((p) => call("GET", p)).catch(() => ({ partners: new Map(), scopes: new Map() }) as Names);
  let history = await verifyHistory(logApi(), browserMemory(), userId);
  let complete = await completeness(history);
  if (complete === "retry") {
    // a record about you may have come in between the list and the directory: once more
    history = await verifyHistory(logApi(), browserMemory(), userId);
    complete = await completeness(history, false);
  }
  body.removeAttribute("aria-busy");
  body.replaceChildren(...render(history, await names, complete === "retry" ? null : complete), again(body, userId));
}

/** The key directory's `log:` label checked against the records listed (in the crypto
 * worker, which holds the directory's pins): every record about you below its `through`
 * is there. A failure fails the whole history; "retry": it failed once, ask again. */
async function completeness(history: History, mayRetry = true): Promise<Complete | null | "retry"> {
  if (!history.ok || history.size === null) return null;
  try {
    return await rpc<Complete>("accessComplete", history.entries.map((e) => e.entry.index));
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // the server or the network failing is not evidence: say so, and check again later
    if (!(err instanceof RpcError) || err.status !== 0 || err.code === "error") return { unchecked: message };
    if (mayRetry && err.code === "log_incomplete") return "retry";
    history.ok = false;
    history.failure = { code: err.code, message };
    return null;
  }
}

type Complete = { count: number; through: number; everySeconds: number | null; countedAt: number } | { unchecked: string };

function again(body: HTMLElement, userId: string): HTMLElement {
  return h(
    "p",
    {},
    h("button", {
      type: "button",
      class: "plain",
      id: "check-again",
      onclick: () => {
        body.setAttribute("aria-busy", "true");
        void fill(body, userId);
      },
    }, "Check again"),
  );
}

function render(r: History, names: Names, complete: Complete | null): HTMLElement[] {
  const out: HTMLElement[] = [];
  const verified = r.entries.filter((e) => e.status === "verified").length;
  const pending = r.entries.filter((e) => e.status === "pending").length;
  if (!r.ok) {
    out.push(
      h(
        "div",
        { class: "verdict failed", id: "verdict", role: "alert", "data-verdict": "failed", "data-code": r.failure?.code ?? "" },
        h("h2", {}, "✗ Verification FAILED"),
        h("p", {}, r.failure?.message ?? "The log could not be checked."),
        h(
          "p",
          {},
          "Do not trust this history. The server showed this browser something that the public log does not " +
            "back up, or a log that does not extend the one this browser saw before. Keep this page open or take " +
            "a screenshot, and tell the people who run this server and anyone who audits it.",
        ),
      ),
    );
  } else {
    out.push(
      h(
        "div",
        { class: "verdict ok", id: "verdict", role: "status", "data-verdict": "verified" },
        h("h2", {}, `✓ Verified in this browser: ${verified} record${verified === 1 ? "" : "s"}`),
        h(
          "p",
          {},
          (r.size === null
            ? "The log has not signed a checkpoint yet."
            : `Each is in the log's tree of ${r.size} entries, whose signature by the log's key was checked here.`) +
            (pending ? ` ${pending} newer record${pending === 1 ? " is" : "s are"} not in a signed tree yet: check again in a moment.` : ""),
        ),
      ),
    );
  }
  out.push(h("h2", {}, "Records about you"));
  if (!r.entries.length) out.push(h("p", { class: "hint" }, "No records yet."));
  else out.push(h("ol", { class: "entries", id: "entries", "aria-label": "Records about you" }, ...r.entries.map((e) => item(e, names))));
  if (complete !== null && "unchecked" in complete) {
    out.push(h("p", { id: "complete", class: "hint" }, `Whether this list is complete could not be checked just now (${complete.unchecked}). Check again in a moment.`));
  } else if (complete !== null) {
    out.push(
      h(
        "p",
        { id: "complete", "data-through": String(complete.through) },
        `✓ Complete: the public key directory counts ${complete.count === 1 ? "1 record" : `${complete.count} records`} about you ` +
          `in the log's first ${complete.through} entries (counted at ${new Date(complete.countedAt).toLocaleTimeString()}), ` +
          `and these are exactly the ones listed here (checked in this browser). ` +
          newerCounted(complete.everySeconds),
      ),
    );
  } else if (r.ok && r.total !== null) {
    out.push(h("p", { class: "hint" }, `The server says there ${r.total === 1 ? "is 1 record" : `are ${r.total} records`} about you.`));
  }
  out.push(h("h2", {}, "What was checked"), h("dl", { class: "facts", id: "log-facts" }, ...facts(r)));
  if (r.note) {
    out.push(h("details", {}, h("summary", {}, "The signed checkpoint, as the server sent it"), h("pre", { class: "key", id: "checkpoint-note" }, r.note)));
  }
  return out;
}

/** When records newer than the count are counted: the server says how often it counts. */
function newerCounted(everySeconds: number | null): string {
  if (!everySeconds) return "Newer records are counted at the directory's next epoch.";
  const [n, unit] = everySeconds % 60 === 0 ? [everySeconds / 60, "minute"] : [everySeconds, "second"];
  const within = n === 1 ? `a ${unit}` : `${n} ${unit}s`;
  const every = n === 1 ? unit : `${n} ${unit}s`;
  return `Newer records are counted within about ${within}: the directory counts them at most every ${every}.`;
}

function item(c: CheckedEntry, names: Names): HTMLElement {
  const e = c.entry;
  const badge =
    c.status === "verified"
      ? c.witnessed
        ? "✓ in the log, witnessed"
        : "✓ in the log"
      : c.status === "pending"
        ? "… not in a signed tree yet"
        : c.status === "failed"
          ? "✗ FAILED"
          : "not checked";
  return h(
    "li",
    { class: `entry ${c.status}`, "data-index": String(e.index), "data-status": c.status, "data-type": e.type },
    h("div", { class: "row" }, h("strong", {}, describe(e, names)), h("span", { class: `status ${c.status}` }, badge)),
    h("div", { class: "hint" }, `${when(e.time)} · log entry ${e.index}`),
    c.problem ? h("p", { class: "error", role: "alert" }, c.problem) : null,
  );
}

function facts(r: History): HTMLElement[] {
  const pairs: [string, string][] = [];
  pairs.push(["Log", r.origin ?? "?"]);
  pairs.push([
    "Log key",
    `${r.vkey ?? "?"} — ${r.trustedOnFirstUse ? "taken from the server on this first visit and now pinned in this browser" : "pinned in this browser since its first visit"}`,
  ]);
  if (r.size !== null) pairs.push(["Signed tree", `${r.size} entries, root ${r.root}`]);
  pairs.push([
    "Since last time",
    r.previous === null
      ? "This is the first checkpoint this browser has verified; it is remembered, and the next must extend it."
      : r.previous.relation === "same"
        ? `The same tree this browser verified before (${r.previous.size} entries).`
        : r.previous.relation === "extends"
          ? `Proven to extend the tree of ${r.previous.size} entries this browser verified before (consistency proof checked).`
          : r.previous.relation === "rolled-back"
            ? `SMALLER than the tree of ${r.previous.size} entries this browser verified before: rolled back.`
            : `NOT proven to extend the tree of ${r.previous.size} entries this browser verified before.`,
  ]);
  if (!r.witnesses.length) pairs.push(["Witnesses", "This log names no witnesses."]);
  else if (!r.witnessesChecked) pairs.push(["Witnesses", `${r.witnesses.length} named; not checked, as an earlier check failed.`]);
  else if (!r.cosignatures.length) pairs.push(["Witnesses", `${r.witnesses.length} named; none has cosigned a checkpoint yet.`]);
  else {
    for (const c of r.cosignatures) {
      pairs.push([
        "Witness",
        `${c.witness} cosigned the tree of ${c.size} entries on ${when(c.time * 1000)} (signature checked here)`,
      ]);
    }
    if (r.witnessedSize !== null) pairs.push(["Witnessed", `Records below entry ${r.witnessedSize} are in the tree the witnesses saw.`]);
  }
  return pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: k === "Log key" ? "key" : "" }, v)]);
}
