"""The web messenger in Chromium: cold load, send-to-render latency, opening a long conversation.

Usage::

    .venv/bin/python bench/web_bench.py [--messages 200] [--history 1000] [--loads 5] [--opens 3]

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
   the browser reloads (no decrypted message kept; the inbox decrypts the last 50 of each
   conversation), then opens it from the inbox: the time until the newest message is shown
   (the first screenful), and until every message is (fetched, decrypted in the worker and
   shown; the earlier ones load in the background, newest first). Also the CPU time the
   browser's processes spent meanwhile (``/proc``: every Chromium process this bench
   started, main page, worker, IndexedDB and all), the one number here that other work on
   the machine does not stretch. Median of ``--opens``, each after a reload.
4. **Send-to-render into a long conversation**: with all ``--history`` messages shown,
   the SDK user sends ``--messages / 4`` more, one at a time; from the start of each send
   (this process's clock) until Alice's page shows it (the browser's; one machine). What a
   new message costs the page grows with the messages it shows.

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

# Only the nodes each mutation added are looked at: a query of the whole list at every
# mutation cost more than the app's own work once thousands of messages were shown.
OBSERVE = """() => {
  window.__arrived = {};
  const seen = new Set();
  const note = (el) => {
    const m = /^bench-(\\d+)$/.exec(el.textContent || '');
    if (m && !seen.has(m[1])) {
      seen.add(m[1]);
      window.__arrived[m[1]] = performance.timeOrigin + performance.now();
    }
  };
  new MutationObserver((records) => {
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (!(n instanceof Element)) continue;
        if (n.matches('#messages li[data-state=ok]')) n.querySelectorAll('.text').forEach(note);
        else if (n.id === 'messages' || n.querySelector('#messages'))
          n.querySelectorAll('#messages li[data-state=ok] .text').forEach(note);
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


# In the page: from the click on the conversation in the inbox to the first animation frame
# after the newest message (the list's last item) is in the page decrypted, and after the
# oldest (its first item) is. Measured by the page's own clock, without Playwright's polls.
WATCH_OPEN = """([newest, oldest]) => {
  const t = window.__open = {};
  const frame = (k) => requestAnimationFrame(() => { t[k] = performance.now(); });
  const shows = (el, text) => !!el && el.dataset.state === 'ok' &&
    el.querySelector('.text')?.textContent === text;
  document.addEventListener('click', () => { t.click = performance.now(); },
    {capture: true, once: true});
  const mo = new MutationObserver(() => {
    const list = document.getElementById('messages');
    if (!list) return;
    if (!t.newestAt && shows(list.lastElementChild, newest)) { t.newestAt = 1; frame('newest'); }
    if (!t.allAt && shows(list.firstElementChild, oldest)) {
      t.allAt = 1; frame('all'); mo.disconnect();
    }
  });
  mo.observe(document.getElementById('main'), {childList: true, subtree: true});
}"""


async def arrived(page: Any, i: int) -> float:
    """When the page showed message ``bench-<i>`` (``OBSERVE``'s clock), once it has."""
    while True:
        got = await page.evaluate(f"window.__arrived['{i}'] || 0")
        if got:
            return float(got)
        await asyncio.sleep(0.002)


def browser_cpu_ms() -> float:
    """CPU time (user + system) of the Chromium processes this bench started, in ms:
    every process below this one whose name starts with "chrom" (not other users')."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        pid = int(entry)
        parents[pid] = int(fields[1])
        names[pid] = name
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime
    mine = {os.getpid()}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                grew = True
    total = sum(ticks[p] for p in mine if names[p].startswith("chrom"))
    return total * 1000 / os.sysconf("SC_CLK_TCK")


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
                latencies.append(await arrived(bob.page, i) - sent)
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
            newest, everything, cpu = [], [], []
            shown_text = "#messages li[data-state=ok] .text"
            last = f"history message {args.history - 1}"
            for _ in range(args.opens):
                await alice.page.goto(server.url + "/#/")
                await alice.page.reload()
                await alice.page.wait_for_selector("#inbox a:has(.name:text-is('carol'))")
                await asyncio.sleep(1.0)  # the inbox's own work done
                await alice.page.evaluate(WATCH_OPEN, [last, "history message 0"])
                c0 = browser_cpu_ms()
                await alice.page.click("#inbox a:has(.name:text-is('carol'))")
                # (not wait_for_function: the app's CSP forbids its eval)
                while not await alice.page.evaluate("() => window.__open.all > 0"):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                cpu.append(browser_cpu_ms() - c0)
                t = await alice.page.evaluate("window.__open")
                newest.append(t["newest"] - t["click"])
                everything.append(t["all"] - t["click"])
                await alice.page.wait_for_selector(f"{shown_text}:text-is('{last}')")
                shown = await alice.page.locator("#messages li[data-state=ok]").count()
                assert shown == args.history, shown

            # the conversation is open with every message shown: Carol (the SDK, this
            # process) sends more, one at a time; from the send's start (this process's wall
            # clock) until Alice's page shows it (the browser's, the same machine's clock)
            await alice.page.evaluate(OBSERVE)
            long_latencies = []
            for i in range(args.messages // 4):
                sent = time.time() * 1000
                await carol.send(conv, f"bench-{i}")
                long_latencies.append(await arrived(alice.page, i) - sent)
            await carol.close()

            def spread(values: list[float]) -> str:
                return (
                    f"median {statistics.median(values):,.0f} ms "
                    f"({min(values):,.0f}-{max(values):,.0f}; {len(values)} opens)"
                )

            what = f"open a conversation of {args.history} messages"
            rows += [
                (f"{what}: the newest shown (click to frame)", spread(newest), ""),
                (
                    f"{what}: all shown (fetch + decrypt + show; click to frame)",
                    f"{spread(everything)}; filled by the SDK in {fill:.1f} s",
                    "",
                ),
                (f"{what}: the browser's CPU time until all shown", spread(cpu), ""),
                (
                    f"send-to-render, SDK to a browser showing {args.history} messages "
                    f"({len(long_latencies)} messages)",
                    f"p50 {pct(long_latencies, 50):.1f} ms, p99 {pct(long_latencies, 99):.1f} ms, "
                    f"max {max(long_latencies):.1f} ms",
                    "p50 < 50 ms",
                ),
            ]
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
    parser.add_argument("--opens", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
