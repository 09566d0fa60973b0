// Times the browser's access-history verifier (web/src/verify/history.ts) in Node 20, whose
// WebCrypto is the same API the page uses. Driven by bench/web_verify_bench.py, which makes
// the log with the Python code and passes it in VERIFY_BENCH (a JSON file).
import { verifyHistory, type LogApi, type Remembered } from "../web/src/verify/history";

// the log: from a file in Node, or set on the page as `verifyBench` in Chromium
declare const process: { env: Record<string, string | undefined> } | undefined;
const fx =
  typeof process === "undefined"
    ? (globalThis as unknown as { verifyBench: Record<string, any> }).verifyBench
    : JSON.parse((await import("node:fs")).readFileSync(process.env.VERIFY_BENCH ?? "", "utf8"));
const api: LogApi = {
  key: async () => ({ origin: fx.origin, vkey: fx.log_vkey, witnesses: [] }),
  myEntries: async () => fx.answer,
  consistency: async () => [],
  cosigned: async () => null,
};
let saved: Remembered | null = null;
const memory = { load: async () => saved, save: async (v: Remembered) => void (saved = v) };
const runs: number[] = [];
for (let i = 0; i < 7; i++) {
  saved = null;
  const t0 = performance.now();
  const r = await verifyHistory(api, memory, fx.user);
  runs.push(performance.now() - t0);
  if (!r.ok || r.entries.some((e) => e.status !== "verified")) throw new Error(JSON.stringify(r.failure));
}
runs.sort((a, b) => a - b);
const result = { entries: fx.answer.entries.length, size: fx.size, ms: runs };
(globalThis as unknown as { benchResult: unknown }).benchResult = result;
console.log(JSON.stringify(result));
