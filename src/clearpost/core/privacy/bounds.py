"""What a report counts, and how much one person can add to any count.

The privacy unit is one user (the person who shares): their share intents, the shares they
send, the recipients of those shares, and the clicks on their share links. Clicks are
anonymous, so a clicker is protected by the cap per link and is counted under the sharer.

Per user and period, for each metric separately, the user has a contribution budget
``Bounds.sensitivity(metric) = items_per_user x per-item cap`` (the L1 budget Chrome's
Attribution Reporting calls a contribution budget). Single events are capped first:

- per share, at most ``recipients_per_share`` recipients count;
- per share link, at most ``clicks_per_share`` clicks count (this protects the clicker).

Then the user's items are taken in the order the user was first active on them, and each
item's count is spent from the budget until it is used up. So adding or removing one user
changes a metric's total, and the sum over items of its per-item counts, by at most the
sensitivity, however the user's activity is spread over items.

Until report version 2 each item was also capped (``shares_per_item`` intents and shares,
``shares_per_item`` links' clicks) and only ``items_per_user`` items counted. That bounded
the same sensitivity but threw away most of a typical user's activity (a second intent for
the same title, a second click on a link) while leaving most of the budget unused; the
benchmark in ``bench/report_accuracy.py`` measures the difference.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from clearpost.core.errors import InvalidInput

METRICS = ("intents", "shares", "recipients", "clicks")
"""The four counted metrics, in report order."""


@dataclass(frozen=True, slots=True)
class IntentEvent:
    """A share intent the partner created for ``user_id`` inside the period."""

    user_id: str
    url: str
    at: int


@dataclass(frozen=True, slots=True)
class ShareEvent:
    """A share intent the user completed inside the period, with its number of recipients."""

    user_id: str
    url: str
    intent_id: str
    at: int
    recipients: int


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """A click inside the period on a share link; ``user_id`` is the sharer, not the clicker."""

    user_id: str
    url: str
    link: str
    link_created_at: int
    at: int


@dataclass(frozen=True, slots=True)
class Activity:
    """Everything one partner's report for one period is computed from. Server-side only."""

    intents: Sequence[IntentEvent]
    shares: Sequence[ShareEvent]
    clicks: Sequence[ClickEvent]
    keys: tuple[str, ...]
    """The report's item list: the URLs of share links the partner itself created that were
    alive during the period. The partner submitted every one of them, so the list tells it
    nothing new; it is fixed before any count is looked at."""


@dataclass(frozen=True, slots=True)
class Bounds:
    items_per_user: int
    shares_per_item: int
    clicks_per_share: int
    recipients_per_share: int

    def __post_init__(self) -> None:
        for name in ("items_per_user", "shares_per_item", "clicks_per_share"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
                raise InvalidInput(f"contribution bound {name} is an integer in [1, 1000]")
        r = self.recipients_per_share
        if isinstance(r, bool) or not isinstance(r, int) or not 1 <= r <= 1000:
            raise InvalidInput("contribution bound recipients_per_share is an integer in [1, 1000]")

    def per_item(self, metric: str) -> int:
        """The most one user adds to ``metric`` for one item."""
        k = self.shares_per_item
        caps = {
            "intents": k,
            "shares": k,
            "recipients": k * self.recipients_per_share,
            "clicks": k * self.clicks_per_share,
        }
        if metric not in caps:
            raise InvalidInput(f"no metric {metric!r}")
        return caps[metric]

    def sensitivity(self, metric: str) -> int:
        """The most one user adds to ``metric`` in a period, over all items (L1)."""
        return self.items_per_user * self.per_item(metric)

    def to_json(self) -> dict[str, int]:
        return {
            "items_per_user": self.items_per_user,
            "shares_per_item": self.shares_per_item,
            "clicks_per_share": self.clicks_per_share,
            "recipients_per_share": self.recipients_per_share,
        }


@dataclass(frozen=True, slots=True)
class UserContribution:
    """One user's bounded contribution: per metric, (url, count) in the user's item order."""

    intents: tuple[tuple[str, int], ...]
    shares: tuple[tuple[str, int], ...]
    recipients: tuple[tuple[str, int], ...]
    clicks: tuple[tuple[str, int], ...]

    def of(self, metric: str) -> tuple[tuple[str, int], ...]:
        if metric not in METRICS:
            raise InvalidInput(f"no metric {metric!r}")
        value: tuple[tuple[str, int], ...] = getattr(self, metric)
        return value


@dataclass(frozen=True, slots=True)
class Contributions:
    """The dataset the mechanism sees: one bounded record per user, and the item list."""

    users: tuple[UserContribution, ...]
    keys: tuple[str, ...]
    bounds: Bounds


def clipped(
    items: Iterable[tuple[str, int]], metric: str, bounds: Bounds
) -> Iterator[tuple[str, int]]:
    """Distinct items in order, each count clamped to >= 0, spending at most the metric's
    sensitivity in all: the L1 norm of what comes out is at most ``sensitivity(metric)``.

    The mechanism applies this to every record it sees, so its sensitivity claim holds for
    any record, not only those built by ``contributions``."""
    left = bounds.sensitivity(metric)
    seen: set[str] = set()
    for url, count in items:
        if url in seen:
            continue
        seen.add(url)
        take = min(max(int(count), 0), left)
        yield url, take
        left -= take
        if left == 0:
            return


def _first_items(first_at: dict[str, tuple[int, str]], limit: int) -> list[str]:
    """The ``limit`` items the user was first active on (ties by URL): this choice depends
    only on the user's own activity, so it is part of bounding, not a data-wide selection."""
    return sorted(first_at, key=lambda url: first_at[url])[:limit]


def contributions(activity: Activity, bounds: Bounds) -> Contributions:
    """Group events by user, cap single events, and spend each user's budget per metric."""
    r_cap, c_cap = bounds.recipients_per_share, bounds.clicks_per_share
    intents: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i in activity.intents:
        intents[i.user_id][i.url].append(i.at)
    shares: dict[str, dict[str, list[tuple[int, int]]]] = defaultdict(lambda: defaultdict(list))
    for s in activity.shares:
        shares[s.user_id][s.url].append((s.at, min(max(s.recipients, 0), r_cap)))
    # per user and item: link -> [first click at, clicks]
    clicks: dict[str, dict[str, dict[str, list[int]]]] = defaultdict(lambda: defaultdict(dict))
    for c in activity.clicks:
        per_link = clicks[c.user_id][c.url].setdefault(c.link, [c.at, 0])
        per_link[0] = min(per_link[0], c.at)
        per_link[1] += 1

    def spend(metric: str, counts: dict[str, tuple[int, int]]) -> tuple[tuple[str, int], ...]:
        """``counts``: url -> (first activity, count); the budget goes to the earliest."""
        order = _first_items({u: (v[0], u) for u, v in counts.items()}, len(counts))
        return tuple(clipped(((u, counts[u][1]) for u in order), metric, bounds))

    records = []
    for user in sorted(set(intents) | set(shares) | set(clicks)):
        mine_i, mine_s, mine_c = intents.get(user, {}), shares.get(user, {}), clicks.get(user, {})
        first_share = {u: min(at for at, _ in es) for u, es in mine_s.items()}
        records.append(
            UserContribution(
                intents=spend("intents", {u: (min(ts), len(ts)) for u, ts in mine_i.items()}),
                shares=spend("shares", {u: (first_share[u], len(es)) for u, es in mine_s.items()}),
                recipients=spend(
                    "recipients",
                    {u: (first_share[u], sum(r for _, r in es)) for u, es in mine_s.items()},
                ),
                clicks=spend(
                    "clicks",
                    {
                        u: (
                            min(v[0] for v in links.values()),
                            sum(min(v[1], c_cap) for v in links.values()),
                        )
                        for u, links in mine_c.items()
                    },
                ),
            )
        )
    return Contributions(tuple(records), tuple(activity.keys), bounds)
