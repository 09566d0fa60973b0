"""The noise: OpenDP discrete Laplace on integer counts, composed to the agreement's epsilon.

A release is eight measurements on the same dataset (one bounded record per user): the
total and the per-item vector of each metric. Each metric gets a quarter of the period's
epsilon; of that, the agreement's ``report_totals_share`` (one half unless it says
otherwise) goes to its total and the rest to its per-item cells. One half is what report
version 1 spent; ``bench/report_accuracy.py`` shows why it stays the default: a quarter
buys the cells of a 10,000-user partner about a third less noise but doubles the noise of
the totals, which are all that a partner of a few thousand users can read. A partner with
many users and many items may agree to a smaller share. Totals are measured, not summed
from the cells: the sum of ``K`` cells carries ``sqrt(K)`` times a cell's noise, worse than
a measured total from four items on. Each measurement is an OpenDP chain

    user-level dataset --(bound and count: d_out = d_in * sensitivity)--> counts
                       --(make_laplace, integer domain: discrete Laplace)--> noisy counts

with ``scale = sensitivity / epsilon_share``, and OpenDP's basic (sequential) composition
of the eight must report a privacy loss of exactly the agreement's epsilon for a change of
one user; ``plan_release`` refuses to return a plan otherwise.

Every measurement also states, from its scale alone (never from the data): ``margin``, the
half-width of the 95% interval of its noise (OpenDP's ``discrete_laplacian_scale_to_accuracy``),
and for per-item cells ``threshold``, the noisy value a cell must reach to be published:
a cell whose true count is 0 reaches it with probability at most ``RELEASE_ALPHA``.

The counting step is ours, declared to OpenDP as a user transformation, which needs the
``honest-but-curious`` feature: we vouch that its stability map is right. It clips every
record itself (``bounds.clipped``), so the claim does not rest on the caller.

Noise comes from OpenDP's own sampler (the operating system's CSPRNG). It is deliberately
not injectable: a seedable noise source is a way to undo the noise.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clearpost.core.errors import InvalidInput
from clearpost.core.privacy.bounds import METRICS, Bounds, Contributions, clipped

SCALE_MARGIN = 1e-12
"""Scales are widened by this fraction so OpenDP's conservative (rounded-up) privacy map
never exceeds the agreement's epsilon by a rounding error."""

EPSILON_TOLERANCE = 1e-9
"""The composed epsilon must lie in ``[epsilon * (1 - tol), epsilon]``."""

MAX_COUNT = 2**31 - 1  # OpenDP's integer domain is 32-bit

TOTALS_SHARE = 0.5
"""The fraction of each metric's epsilon spent on its total; the rest goes to its cells."""

CONFIDENCE = 0.95
"""Every released number carries the interval that holds its noise with this probability."""

RELEASE_ALPHA = 0.005
"""A per-item cell is published only when its noisy value reaches a threshold that noise
alone (a true count of 0) reaches with at most this probability."""


@functools.cache
def _opendp() -> tuple[Any, Any, Any]:
    """OpenDP, its features, and our input domain and distance — loaded on first use
    (importing OpenDP costs about 0.15 s, which server start-up need not pay)."""
    import opendp.prelude as dp

    dp.enable_features("contrib", "honest-but-curious")
    domain = dp.user_domain("ClearpostContributions", member=lambda x: isinstance(x, Contributions))
    return dp, domain, dp.user_distance("users added or removed")


@dataclass(frozen=True, slots=True)
class MeasurementSpec:
    """One measurement of a release, as published in the report."""

    name: str
    """``totals.<metric>`` or ``items.<metric>``."""
    metric: str
    sensitivity: int
    epsilon: float
    scale: float
    margin: int
    """Half-width of the 95% interval: P(|noise| <= margin) >= 0.95."""
    threshold: int | None
    """Per-item cells only: the least noisy value that is published."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "sensitivity": self.sensitivity,
            "epsilon": self.epsilon,
            "scale": self.scale,
            "margin95": self.margin,
        }
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out


@dataclass(frozen=True, slots=True)
class ReleasePlan:
    epsilon: float
    bounds: Bounds
    keys: tuple[str, ...]
    measurements: tuple[MeasurementSpec, ...]
    composed_epsilon: float
    """OpenDP's composed privacy map at one user: the epsilon this release spends."""
    totals_share: float
    _measurement: Any = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class NoisyCounts:
    """What leaves the mechanism: noisy totals and noisy per-item counts, nothing else."""

    totals: dict[str, int]
    items: dict[str, dict[str, int]]


def _total(metric: str, bounds: Bounds) -> Callable[[Contributions], int]:
    def count(data: Contributions) -> int:
        total = sum(v for user in data.users for _, v in clipped(user.of(metric), metric, bounds))
        return min(total, MAX_COUNT)

    return count


def _per_item(metric: str, bounds: Bounds, keys: tuple[str, ...]) -> Callable[..., list[int]]:
    index = {url: i for i, url in enumerate(keys)}

    def count(data: Contributions) -> list[int]:
        out = [0] * len(keys)
        for user in data.users:
            for url, v in clipped(user.of(metric), metric, bounds):
                i = index.get(url)
                if i is not None:
                    out[i] = min(out[i] + v, MAX_COUNT)
        return out

    return count


def _scale(sensitivity: int, epsilon: float) -> float:
    return sensitivity / epsilon * (1 + SCALE_MARGIN)


def margin(scale: float, alpha: float = 1 - CONFIDENCE) -> int:
    """The least integer ``m`` with ``P(|noise| > m) <= alpha`` for discrete Laplace noise
    at ``scale``. OpenDP's accuracy ``a`` satisfies ``P(|noise| >= a) = alpha``."""
    dp, _, _ = _opendp()
    a = float(dp.discrete_laplacian_scale_to_accuracy(scale, alpha))
    return max(math.ceil(a) - 1, 0)


def release_threshold(scale: float, alpha: float = RELEASE_ALPHA) -> int:
    """The least integer ``t`` with ``P(noise >= t) <= alpha``: the one-sided tail is half
    the two-sided one, so it is the two-sided accuracy at ``2 alpha``, rounded up."""
    dp, _, _ = _opendp()
    return math.ceil(float(dp.discrete_laplacian_scale_to_accuracy(scale, 2 * alpha)))


def plan_release(
    epsilon: float,
    bounds: Bounds,
    keys: tuple[str, ...],
    *,
    totals_share: float = TOTALS_SHARE,
) -> ReleasePlan:
    """Build the composed measurement and check that it spends exactly ``epsilon``.

    ``totals_share`` is the fraction of each metric's epsilon spent on its total."""
    dp, domain, users = _opendp()
    if not 0 < epsilon <= 100:
        raise InvalidInput("epsilon per period must be in (0, 100]")
    if not 0 < totals_share < 1:
        raise InvalidInput("the totals' share of the budget is in (0, 1)")
    if len(set(keys)) != len(keys):
        raise InvalidInput("report items must be distinct")
    per_metric = epsilon / len(METRICS)
    shares = {"totals": per_metric * totals_share, "items": per_metric * (1 - totals_share)}
    specs: list[MeasurementSpec] = []
    chains = []
    for kind in ("totals", "items"):
        for metric in METRICS:
            sensitivity = bounds.sensitivity(metric)
            share = shares[kind]
            scale = _scale(sensitivity, share)
            spec = MeasurementSpec(
                f"{kind}.{metric}",
                metric,
                sensitivity,
                share,
                scale,
                margin(scale),
                release_threshold(scale) if kind == "items" else None,
            )
            if kind == "totals":
                out_domain, out_metric = dp.atom_domain(T=int), dp.absolute_distance(T=int)
                function: Callable[..., Any] = _total(metric, bounds)
            else:
                out_domain = dp.vector_domain(dp.atom_domain(T=int), size=len(keys))
                out_metric = dp.l1_distance(T=int)
                function = _per_item(metric, bounds, keys)
            count = dp.t.make_user_transformation(
                domain,
                users,
                out_domain,
                out_metric,
                function=function,
                stability_map=lambda d_in, s=sensitivity: d_in * s,
            )
            chains.append(count >> dp.m.then_laplace(scale=spec.scale))
            specs.append(spec)
    composed: Any = dp.c.make_composition(chains)  # OpenDP's map() is untyped
    spent = float(composed.map(1))
    if not epsilon * (1 - EPSILON_TOLERANCE) <= spent <= epsilon:
        raise InvalidInput(
            f"the composed privacy loss {spent!r} does not match the budget {epsilon!r}"
        )
    return ReleasePlan(epsilon, bounds, tuple(keys), tuple(specs), spent, totals_share, composed)


def release(plan: ReleasePlan, data: Contributions) -> NoisyCounts:
    """Run the composed measurement once. Only noisy numbers come out."""
    if data.bounds != plan.bounds or data.keys != plan.keys:
        raise InvalidInput("the dataset was prepared for a different plan")
    results = plan._measurement(data)
    n = len(METRICS)
    totals = {metric: int(v) for metric, v in zip(METRICS, results[:n], strict=True)}
    items: dict[str, dict[str, int]] = {url: {} for url in plan.keys}
    for metric, vector in zip(METRICS, results[n:], strict=True):
        for url, v in zip(plan.keys, vector, strict=True):
            items[url][metric] = int(v)
    return NoisyCounts(totals, items)
