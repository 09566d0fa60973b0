"""The web messenger in Chromium: cold load, send-to-render latency, opening a long conversation.

Usage::

    .venv/bin/python bench/web_bench.py [--messages 200] [--history 1000] [--loads 5]

Starts its own ``clearpost serve`` (SQLite in a temporary directory, rate limits off) and
drives Debian's ``/usr/bin/chromium`` with Playwright (needs the built app: ``make
install`` with Node 20+). Prints one table:

1. **Cold load to an interactive inbox**: a signed-in browser's page loaded with an empty
   HTTP cache (every file, the 7.8 MB WebAssembly crypto engine among them, fetched and
   compiled again), until the inbox is shown and usable: the worker has loaded the wasm,
   opened the device's encrypted IndexedDB store and listed the conversations. Measured by
   the page itself (``performance.now()`` since navigation start), median of ``--loads``.
2. **Send-to-render between two browsers**: Alice presses Enter; the time until Bob's page
   shows the decrypted text (both clocks are the browser's, ``performance.timeOrigin +
   performance.now()``, one process). One message at a time, ``--messages`` of them,
   over the WebSocket stream on loopback.
3. **Opening a conversation of ``--history`` messages**: sent by an SDK user beforehand;
   the browser reloads (no decrypted message kept), then opens it: fetching every page of
   history and decrypting each message in the worker, until the last one is shown.

Aims: interactive in under 1.5 s cold; p50 send-to-render under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clearpost.client import Client, KdfParams  # noqa: E402
from tests.support.chromium import chromium  # noqa: E402
from tests.support.server import start_server  # noqa: E402
from tests.web.browser import (  # noqa: E402
    PASSWORD,
    open_conversation,
    open_tab,
    register,
)

OBSERVE = """() => {
  window.__arrived = {};
  const seen = new Set();
  new MutationObserver(() => {
    for (const el of document.querySelectorAll('#messages li[data-state=ok] .text')) {
      const m = /^bench-(\\d+)$/.exec(el.textContent || '');
      if (m && !seen.has(m[1])) {
        seen.add(m[1]);
        window.__arrived[m[1]] = performance.timeOrigin + performance.now();
      }
    }
  }).observe(document.getElementById('main'), {childList: true, subtree: true});
}"""

SEND = """(i) => {
  const box = document.getElementById('compose');
  box.value = 'bench-' + i;
  const t = performance.timeOrigin + performance.now();
  box.closest('form').requestSubmit();
  return t;
}"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def cold_loads(tab: Any, n: int) -> list[float]:
    cdp = await tab.context.new_cdp_session(tab.page)
    await cdp.send("Network.enable")
    out = []
    await tab.page.goto(tab.base + "/#/")
    for _ in range(n):
        await cdp.send("Network.clearBrowserCache")
        await tab.page.reload()
        await tab.page.wait_for_selector("body[data-shown-at]")
        out.append(float(await tab.page.get_attribute("body", "data-shown-at")))
    return out


async def run(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="web-bench-"))
    server = start_server(tmp / "srv", f"sqlite+aiosqlite:///{tmp / 'srv' / 'cp.db'}")
    rows: list[tuple[str, str, str]] = []
    try:
        async with chromium() as browser, httpx.AsyncClient(base_url=server.url) as http:
            alice = await open_tab(browser, server.url, "alice")
            await register(alice, "alice")
            bob = await open_tab(browser, server.url, "bob")
            await register(bob, "bob")
            await alice.page.goto(server.url + "/#/new")
            await alice.page.fill("#members", "bob")
            await alice.page.click("form button[type=submit]")
            await alice.page.wait_for_selector("#compose")

            loads = await cold_loads(bob, args.loads)
            rows.append(
                (
                    "cold load to interactive inbox (incl. wasm)",
                    f"median {statistics.median(loads):.0f} ms (min {min(loads):.0f}, "
                    f"max {max(loads):.0f}; {args.loads} loads)",
                    "< 1500 ms",
                )
            )

            await open_conversation(bob, "alice")
            await bob.page.evaluate(OBSERVE)
            latencies = []
            for i in range(args.messages):
                sent = await alice.page.evaluate(SEND, i)
                while True:
                    got = await bob.page.evaluate(f"window.__arrived['{i}'] || 0")
                    if got:
                        break
                    await asyncio.sleep(0.002)
                latencies.append(got - sent)
            rows.append(
                (
                    f"send-to-render, browser to browser ({args.messages} messages)",
                    f"p50 {pct(latencies, 50):.1f} ms, p99 {pct(latencies, 99):.1f} ms, "
                    f"max {max(latencies):.1f} ms",
                    "p50 < 50 ms",
                )
            )

            carol = await Client.register(
                http,
                "carol",
                PASSWORD,
                store_path=tmp / "carol.store",
                passphrase="carol passphrase",
                kdf=KdfParams(time_cost=1, memory_kib=8192, parallelism=1),
                stream=False,
            )
            server_name = carol.user_id.split(":", 1)[1]
            conv = await carol.direct(f"@alice:{server_name}")
            t = time.perf_counter()
            for i in range(args.history):
                await carol.send(conv, f"history message {i}")
            fill = time.perf_counter() - t
            await carol.close()
            await alice.page.goto(server.url + "/#/")
            await alice.page.reload()
            await alice.page.wait_for_selector("#inbox a:has(.name:text-is('carol'))")
            t = time.perf_counter()
            await open_conversation(alice, "carol")
            await alice.page.wait_for_selector(
                f"#messages li[data-state=ok] .text:text-is('history message {args.history - 1}')"
            )
            await alice.page.wait_for_selector(
                "#messages li[data-state=ok] .text:text-is('history message 0')"
            )
            opened = (time.perf_counter() - t) * 1000
            shown = await alice.page.locator("#messages li[data-state=ok]").count()
            rows.append(
                (
                    f"open a conversation of {args.history} messages (fetch + decrypt + show)",
                    f"{opened:.0f} ms ({shown} shown decrypted; filled by the SDK in {fill:.1f} s)",
                    "",
                )
            )
    finally:
        server.stop()
    print(f"\nweb_bench: Chromium {os.uname().machine}, loopback, SQLite\n")
    print("| what | measured | aim |\n|---|---|---|")
    for what, value, aim in rows:
        print(f"| {what} | {value} | {aim} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--history", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=5)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
