// What every page of the app shares: the worker connection (rpc), element building that
// only ever sets text (never HTML), the page registry and the notices. Pages built by others
// (sharing, connected apps, access history) register themselves with `page(...)` and add
// a link with `navLink(...)`.

import type { Call, Push, Reply } from "./protocol";

export class RpcError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

let nextId = 1;
const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
const listeners: ((p: Push) => void)[] = [];

function makeWorker(): Worker {
  const w = new Worker("/app/worker.js", { type: "module", name: "clearpost-crypto" });
  w.onmessage = (ev: MessageEvent<Reply | Push>) => {
    const data = ev.data;
    if ("push" in data) {
      for (const l of listeners) l(data);
      return;
    }
    const pending = waiting.get(data.id);
    if (!pending) return;
    waiting.delete(data.id);
    if (data.ok) pending.resolve(data.result);
    else pending.reject(new RpcError(data.error!.code, data.error!.message, data.error!.status));
  };
  return w;
}

let worker = makeWorker();

/** Stop the crypto worker (closing its database connections), delete this browser's
 * device (crypto store, session, its wrapping key, cursors), and start a fresh worker.
 * The log verifier's own database (the last checkpoint seen) is not the device's: kept. */
export async function wipeDevice(): Promise<void> {
  worker.terminate();
  for (const w of waiting.values()) w.reject(new RpcError("signed_out", "signed out", 0));
  waiting.clear();
  const names = (await indexedDB.databases()).map((d) => d.name ?? "");
  await Promise.all(
    names
      .filter((n) => n === "clearpost-app" || n.startsWith("clearpost-crypto-"))
      .map(
        (n) =>
          new Promise<void>((resolve) => {
            const req = indexedDB.deleteDatabase(n);
            req.onsuccess = req.onerror = () => resolve();
          }),
      ),
  );
  worker = makeWorker();
}

/** Ask the crypto worker to do `op`. */
export function rpc<T = unknown>(op: string, ...args: unknown[]): Promise<T> {
  const id = nextId++;
  return new Promise<T>((resolve, reject) => {
    waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
    worker.postMessage({ id, op, args } satisfies Call);
  });
}

export function onPush(fn: (p: Push) => void): void {
  listeners.push(fn);
}

type Child = Node | string | null | undefined | false;
type Attrs = Record<string, string | boolean | ((ev: Event) => void) | undefined>;

/** Build an element. Strings become text nodes: nothing is ever parsed as HTML. */
export function h(tag: string, attrs: Attrs = {}, ...children: Child[]): HTMLElement {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") node.addEventListener(k.replace(/^on/, ""), v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) node.append(c);
  return node;
}

export interface Route {
  /** the hash path's parts after "#/", e.g. ["c", "<id>"] */
  parts: string[];
  query: URLSearchParams;
}

export type PageRender = (route: Route) => HTMLElement | Promise<HTMLElement>;

const pages = new Map<string, { render: PageRender; signedIn: boolean }>();
const links: { href: string; label: string }[] = [];

/** Register a page at "#/<name>/...". */
export function page(name: string, render: PageRender, signedIn = true): void {
  pages.set(name, { render, signedIn });
}

export function navLink(href: string, label: string): void {
  links.push({ href, label });
}

export function navLinks(): { href: string; label: string }[] {
  return links;
}

export function findPage(name: string): { render: PageRender; signedIn: boolean } | undefined {
  return pages.get(name);
}

export function currentRoute(): Route {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?", 2);
  return {
    parts: (path ?? "").split("/").filter(Boolean).map(decodeURIComponent),
    query: new URLSearchParams(query ?? ""),
  };
}

export function go(hash: string): void {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

/** Show a notice at the top (for people: plain words). */
export function notice(
  text: string,
  opts: { id?: string; bad?: boolean; action?: { label: string; run: () => Promise<unknown> } } = {},
): void {
  const area = document.getElementById("notices")!;
  if (opts.id && area.querySelector(`[data-id="${CSS.escape(opts.id)}"]`)) return;
  const box = h("div", { class: opts.bad ? "notice bad" : "notice", "data-id": opts.id }, h("p", {}, text));
  if (opts.action) {
    const action = opts.action;
    box.append(
      h("button", {
        type: "button",
        onclick: async (ev) => {
          (ev.currentTarget as HTMLButtonElement).disabled = true;
          try {
            await action.run();
            box.remove();
          } catch (err) {
            (ev.currentTarget as HTMLButtonElement).disabled = false;
            notice(`That did not work: ${errorText(err)}`, { bad: true });
          }
        },
      }, action.label),
    );
  }
  box.append(h("button", { type: "button", class: "plain", onclick: () => box.remove() }, "Dismiss"));
  area.append(box);
}

/** Take away the notice with this id, if it is shown. */
export function dismissNotice(id: string): void {
  document.getElementById("notices")?.querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
}

export function errorText(err: unknown): string {
  if (err instanceof RpcError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}

export function localpart(userId: string): string {
  return userId.replace(/^@/, "").split(":")[0]!;
}

// made once: a formatter per call costs about a millisecond, a second for 1,000 messages
const clock = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
const dated = new Intl.DateTimeFormat([], { dateStyle: "short", timeStyle: "short" });

export function time(ms: number): string {
  if (!ms) return "";
  const d = new Date(ms);
  const today = new Date().toDateString() === d.toDateString();
  return today ? clock.format(d) : dated.format(d);
}
