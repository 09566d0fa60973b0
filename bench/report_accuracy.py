"""How readable is a partner report? Version 1's mechanism against version 2's, same ε.

For simulated partners of 100, 1,000, 10,000 and 100,000 users this releases one period's
report many times through the real OpenDP mechanism (``plan_release`` / ``release``, noise
unseeded) and prints, per mechanism:

- the median relative error of each released total against the TRUE count (what the
  partner wants to know; bounding bias counts as error, as it should);
- for the ten items with the most true shares: the share of them that is listed, and the
  median relative error of their published cells;
- the mean number of published per-item cells whose true count is 0 (pure noise);
- "pooled": the median relative error over the four totals and the top-ten cells together.

Mechanisms (all at ε = 1 per period):

- ``v1``: version 1 as released before: per-item caps (``shares_per_item`` intents and
  shares per item, that many links' clicks, ``items_per_user`` items), ε/8 per
  measurement, an item listed with all its cells when its noisy shares reach 10;
- ``v2``: per-user L1 budget (``bounds.contributions``), the default split (half of each
  metric's ε on its total), each cell published when it reaches its noise threshold;
- ``v2 q``: the same with a quarter of each metric's ε on totals
  (``report_totals_share = 0.25``);
- ``v2 b``: v2 under the one bound the docs suggest changing when a shared link is
  clicked by several recipients: ``max_clicks_per_share = 3`` instead of 1.

v1 and v2 state the same bounds (items 5, shares per item 1, clicks per share 1,
recipients per share 10: the defaults), so they have the same sensitivities.

The simulated behaviour (seeded, so every mechanism sees the same data): each user is
active in the period with probability 0.3; an active user makes share intents for
1 + Geometric items (mean 1.7), drawn from a Zipf(1.1) catalogue of max(50, users / 4)
titles; per item 1 + Geometric intents (mean 1.4); each intent is sent with probability
0.6 to 1 + Geometric recipients (mean 2.5, at most 30); each recipient clicks with
probability 0.4 and clicks again with probability 0.15. The item list is every title with
an intent in the period (a share link is made with each intent).

Then a roll-up: a quarter of six 14-day periods (an agreement's ``rollup_days = 84``) of a
``--rollup-users`` partner (10,000 by default; 0 skips it), each period simulated as above
with the same users (so one user may be active in several periods). The partner can read
the quarter's totals in two ways, both compared against the TRUE quarter counts:

- ``sum of periods``: add up its six period reports' totals (v2, ε = 1 each, six times the
  per-user bound over the quarter, noise of six releases);
- ``roll-up``: the roll-up report over the whole window (v2, ``rollup_epsilon`` 1 and 0.5),
  with the per-user bound over the whole window, one release's noise, and per-item cells.

Run: ``.venv/bin/python bench/report_accuracy.py [--runs 20] [--sizes 100,1000,10000,100000]
[--rollup-users 10000]`` (``--sizes ''`` runs only the roll-up).
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

from clearpost.core.privacy import (
    METRICS,
    Activity,
    Bounds,
    ClickEvent,
    Contributions,
    IntentEvent,
    ShareEvent,
    UserContribution,
    contributions,
    plan_release,
    publish,
    release,
)

EPSILON = 1.0
DEFAULT = Bounds(items_per_user=5, shares_per_item=1, clicks_per_share=1, recipients_per_share=10)
SUGGESTED = Bounds(items_per_user=5, shares_per_item=1, clicks_per_share=3, recipients_per_share=10)
V1_THRESHOLD = 10


@dataclass(frozen=True, slots=True)
class Truth:
    totals: dict[str, int]
    items: dict[str, dict[str, int]]
    top: tuple[str, ...]


def simulate(users: int, seed: int) -> tuple[Activity, Truth]:
    """One period of a partner with ``users`` users, and its true (unbounded) counts."""
    rng = random.Random(seed)
    catalogue = max(50, users // 4)
    cumulative = list(itertools.accumulate(1 / (k + 1) ** 1.1 for k in range(catalogue)))
    intents: list[IntentEvent] = []
    shares: list[ShareEvent] = []
    clicks: list[ClickEvent] = []
    true: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))

    def geometric(p: float) -> int:
        n = 1
        while rng.random() > p:
            n += 1
        return n

    clock = 0
    for u in range(users):
        if rng.random() >= 0.3:
            continue
        user = f"u{u}"
        picked: set[int] = set()
        for _ in range(geometric(0.6)):
            picked.add(rng.choices(range(catalogue), cum_weights=cumulative)[0])
        for title in picked:
            url = f"https://streamco.example/t/{title}"
            for i in range(geometric(0.7)):
                clock += 1
                intents.append(IntentEvent(user, url, clock))
                true[url]["intents"] += 1
                if rng.random() >= 0.6:
                    continue
                recipients = min(geometric(0.4), 30)
                link = f"{user}/{title}/{i}"
                shares.append(ShareEvent(user, url, link, clock, recipients))
                true[url]["shares"] += 1
                true[url]["recipients"] += recipients
                for _ in range(recipients):
                    if rng.random() < 0.4:
                        n = 2 if rng.random() < 0.15 else 1
                        for _ in range(n):
                            clicks.append(ClickEvent(user, url, link, clock, clock + 1))
                        true[url]["clicks"] += n
    keys = tuple(sorted(true))
    totals = {m: sum(true[k][m] for k in keys) for m in METRICS}
    top = tuple(sorted(keys, key=lambda k: (-true[k]["shares"], k))[:10])
    return Activity(intents, shares, clicks, keys), Truth(totals, dict(true), top)


def simulate_quarter(
    users: int, seed: int, periods: int = 6
) -> tuple[Activity, Truth, list[Activity]]:
    """``periods`` periods of the same ``users`` users; the whole window's activity (events
    in time order across periods), its true counts, and each period's activity."""
    each = [simulate(users, seed=seed * 100 + p) for p in range(periods)]
    step = 10**9  # a period's events all come before the next period's
    intents = [
        IntentEvent(e.user_id, e.url, e.at + p * step)
        for p, (a, _) in enumerate(each)
        for e in a.intents
    ]
    shares = [
        ShareEvent(e.user_id, e.url, f"{p}/{e.intent_id}", e.at + p * step, e.recipients)
        for p, (a, _) in enumerate(each)
        for e in a.shares
    ]
    clicks = [
        ClickEvent(e.user_id, e.url, f"{p}/{e.link}", e.link_created_at + p * step, e.at + p * step)
        for p, (a, _) in enumerate(each)
        for e in a.clicks
    ]
    true: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for _, t in each:
        for url, counts in t.items.items():
            for m in METRICS:
                true[url][m] += counts[m]
    keys = tuple(sorted(true))
    totals = {m: sum(true[k][m] for k in keys) for m in METRICS}
    top = tuple(sorted(keys, key=lambda k: (-true[k]["shares"], k))[:10])
    window = Activity(intents, shares, clicks, keys)
    return window, Truth(totals, dict(true), top), [a for a, _ in each]


def run_sum_of_periods(periods: list[Activity]) -> Callable[[], Published]:
    """The quarter's totals as the sum of its period reports' totals (v2 defaults, ε 1
    each); no per-item cells (a sum of cells that are published only now and then is not
    a count)."""
    onces = [run_v2(activity, DEFAULT, 0.5) for activity in periods]

    def once() -> Published:
        totals = dict.fromkeys(METRICS, 0)
        for period in onces:
            for m, v in period()[0].items():
                totals[m] += v
        return totals, {}

    return once


def v1_contributions(activity: Activity, bounds: Bounds) -> Contributions:
    """Version 1's bounding, as it was (``git show 05513e5:src/clearpost/core/privacy/
    bounds.py``): the first ``items_per_user`` items per metric, per item at most
    ``shares_per_item`` intents and shares, clicks on that many links, each link capped."""
    k, m = bounds.shares_per_item, bounds.items_per_user
    by_user: dict[str, dict[str, dict[str, list[tuple[int, int]]]]] = defaultdict(
        lambda: {metric: defaultdict(list) for metric in ("i", "s", "c")}
    )
    for i in activity.intents:
        by_user[i.user_id]["i"][i.url].append((i.at, 1))
    for s in activity.shares:
        by_user[s.user_id]["s"][s.url].append(
            (s.at, min(s.recipients, bounds.recipients_per_share))
        )
    links: dict[tuple[str, str, str], list[int]] = {}
    for c in activity.clicks:
        entry = links.setdefault((c.user_id, c.url, c.link), [c.link_created_at, c.at, 0])
        entry[1] = min(entry[1], c.at)
        entry[2] += 1
    per_link: dict[tuple[str, str], list[tuple[int, str, int]]] = defaultdict(list)
    for (user, url, link), (created, first_click, n) in links.items():
        # item order by first click (the entry's time); links by creation
        by_user[user]["c"][url].append((first_click, 0))
        per_link[(user, url)].append((created, link, min(n, bounds.clicks_per_share)))

    def first(per_item: dict[str, list[tuple[int, int]]]) -> list[str]:
        return sorted(per_item, key=lambda url: (min(at for at, _ in per_item[url]), url))[:m]

    records = []
    for user in sorted(by_user):
        mine = by_user[user]
        s_items = first(mine["s"])
        counted = {url: sorted(mine["s"][url])[:k] for url in s_items}
        records.append(
            UserContribution(
                intents=tuple((url, min(len(mine["i"][url]), k)) for url in first(mine["i"])),
                shares=tuple((url, len(counted[url])) for url in s_items),
                recipients=tuple((url, sum(r for _, r in counted[url])) for url in s_items),
                clicks=tuple(
                    (url, sum(n for _, _, n in sorted(per_link[(user, url)])[:k]))
                    for url in first(mine["c"])
                ),
            )
        )
    return Contributions(tuple(records), activity.keys, bounds)


Published = tuple[dict[str, int], dict[str, dict[str, int | None]]]


def run_v1(activity: Activity) -> Callable[[], Published]:
    data = v1_contributions(activity, DEFAULT)
    plan = plan_release(EPSILON, DEFAULT, activity.keys, totals_share=0.5)

    def once() -> Published:
        noisy = release(plan, data)
        rows = {
            url: dict(counts)
            for url, counts in noisy.items.items()
            if counts["shares"] >= V1_THRESHOLD
        }
        return noisy.totals, rows  # type: ignore[return-value]

    return once


def run_v2(
    activity: Activity, bounds: Bounds, totals_share: float, epsilon: float = EPSILON
) -> Callable[[], Published]:
    data = contributions(activity, bounds)
    plan = plan_release(epsilon, bounds, activity.keys, totals_share=totals_share)

    def once() -> Published:
        noisy = release(plan, data)
        rows, _ = publish(noisy, plan, 0)
        items = {
            row["url"]: {m: (None if row[m] is None else row[m]["value"]) for m in METRICS}
            for row in rows
        }
        return noisy.totals, items

    return once


@dataclass
class Score:
    totals: dict[str, list[float]]
    cells: list[float]
    top_listed: list[float]
    noise_cells: list[int]


def score(truth: Truth, once: Callable[[], Published], runs: int) -> Score:
    out = Score({m: [] for m in METRICS}, [], [], [])
    for _ in range(runs):
        totals, items = once()
        for m in METRICS:
            out.totals[m].append(abs(totals[m] - truth.totals[m]) / max(truth.totals[m], 1))
        out.top_listed.append(sum(url in items for url in truth.top) / len(truth.top))
        for url in truth.top:
            for m in METRICS:
                value, true = items.get(url, {}).get(m), truth.items[url][m]
                if value is not None and true > 0:
                    out.cells.append(abs(value - true) / true)
        out.noise_cells.append(
            sum(
                1
                for url, cells in items.items()
                for m, v in cells.items()
                if v is not None and truth.items.get(url, {}).get(m, 0) == 0
            )
        )
    return out


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="releases per size and mechanism")
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument("--rollup-users", type=int, default=10_000, help="0: no roll-up")
    args = parser.parse_args()
    if args.sizes:
        main_table(args.runs, [int(s) for s in args.sizes.split(",")])
    if args.rollup_users:
        rollup_table(args.runs, args.rollup_users)


def rollup_table(runs: int, users: int) -> None:
    """A quarter's totals: the sum of six period reports against one roll-up report."""
    started = time.monotonic()
    window, truth, periods = simulate_quarter(users, seed=users)
    print(f"\nA quarter of six 14-day periods, {users:,} users, {runs} releases each\n")
    print(
        "| release | ε spent | intents | shares | recipients | clicks | top-10 listed "
        "| top-10 cell error | noise cells |"
    )
    print("|---" * 9 + "|")
    variants = {
        "sum of 6 period totals": (6 * EPSILON, run_sum_of_periods(periods)),
        "roll-up, ε 1": (1.0, run_v2(window, DEFAULT, 0.5, 1.0)),
        "roll-up, ε 0.5": (0.5, run_v2(window, DEFAULT, 0.5, 0.5)),
    }
    for name, (spent, once) in variants.items():
        s = score(truth, once, runs)
        med = {m: statistics.median(v) for m, v in s.totals.items()}
        cells = name.startswith("roll-up")
        print(
            f"| {name} | {spent:g} | "
            + " | ".join(pct(med[m]) for m in METRICS)
            + (
                f" | {statistics.mean(s.top_listed):.2f} | "
                + (pct(statistics.median(s.cells)) if s.cells else "-")
                + f" | {statistics.mean(s.noise_cells):.1f} |"
                if cells
                else " | - | - | - |"
            )
        )
    print(
        "| true totals | | "
        + " | ".join(f"{truth.totals[m]:,}" for m in METRICS)
        + f" | {len(window.keys):,} items | {time.monotonic() - started:.0f} s |  |"
    )


def main_table(runs: int, sizes: list[int]) -> None:
    """Version 1 against version 2 for one period, per partner size."""
    header = (
        "| users | mechanism | intents | shares | recipients | clicks | top-10 listed "
        "| top-10 cell error | noise cells | pooled |"
    )
    print(f"ε = {EPSILON} per period, {runs} releases each; median relative errors\n")
    print(header)
    print("|---" * 10 + "|")
    for users in sizes:
        started = time.monotonic()
        activity, truth = simulate(users, seed=users)
        variants = {
            "v1": run_v1(activity),
            "v2": run_v2(activity, DEFAULT, 0.5),
            "v2 q": run_v2(activity, DEFAULT, 0.25),
            "v2 b": run_v2(activity, SUGGESTED, 0.5),
        }
        pooled_v1 = 0.0
        for name, once in variants.items():
            s = score(truth, once, runs)
            med = {m: statistics.median(v) for m, v in s.totals.items()}
            pooled = statistics.median([*(x for v in s.totals.values() for x in v), *s.cells])
            if name == "v1":
                pooled_v1 = pooled
            gain = "" if name == "v1" else f" ({pooled_v1 / pooled:.1f}x)" if pooled else ""
            print(
                f"| {users:,} | {name} | "
                + " | ".join(pct(med[m]) for m in METRICS)
                + f" | {statistics.mean(s.top_listed):.2f} | "
                + (pct(statistics.median(s.cells)) if s.cells else "-")
                + f" | {statistics.mean(s.noise_cells):.1f} | {pct(pooled)}{gain} |"
            )
        print(
            "|  | true totals | "
            + " | ".join(f"{truth.totals[m]:,}" for m in METRICS)
            + f" | {len(activity.keys):,} items | {time.monotonic() - started:.0f} s |  |  |"
        )


if __name__ == "__main__":
    main()
