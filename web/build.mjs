// Builds the web messenger into ../src/clearpost/web/app/ (gitignored), which `clearpost
// serve` serves at / and /app/. Run by `make install` through `npm run build`.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "src", "clearpost", "web", "app");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

await build({
  entryPoints: { app: join(here, "src", "main.ts"), worker: join(here, "src", "worker.ts") },
  outdir: out,
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  sourcemap: false,
  legalComments: "linked",
  logLevel: "warning",
});
const wasm = join(here, "node_modules", "@matrix-org", "matrix-sdk-crypto-wasm", "pkg",
  "matrix_sdk_crypto_wasm_bg.wasm");
copyFileSync(wasm, join(out, "crypto.wasm"));
for (const name of ["index.html", "style.css", "icon.svg"]) copyFileSync(join(here, "static", name), join(out, name));
console.log(`web app built into ${out}`);
