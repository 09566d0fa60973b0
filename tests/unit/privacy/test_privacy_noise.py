"""The noise, sampled: mean about 0 and the spread the published scale promises.

Many releases of one fixed dataset through the real mechanism (OpenDP, no seed). The check
is a moment test with a tolerance of six standard errors: a correct mechanism fails it
about once in 10^8 runs, while missing noise or a scale off by 2x fails it every time
(shown below with the same check).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from clearpost.core.privacy import (
    METRICS,
    Bounds,
    Contributions,
    ReleasePlan,
    UserContribution,
    plan_release,
    release,
)

pytestmark = pytest.mark.slow  # about ten thousand releases through OpenDP: several seconds

BOUNDS = Bounds(items_per_user=2, shares_per_item=1, clicks_per_share=2, recipients_per_share=3)
KEYS = tuple(f"https://streamco.example/t/{i:02d}" for i in range(20))
RELEASES = 2000
SIGMAS = 6.0


def discrete_laplace(scale: float) -> tuple[float, float]:
    """(variance, mean absolute value) of P(k) ∝ exp(-|k| / scale) on the integers."""
    p = math.exp(-1 / scale)
    return 2 * p / (1 - p) ** 2, 2 * p / (1 - p * p)


def check_noise(samples: Sequence[int], scale: float) -> None:
    """Raise AssertionError unless ``samples`` look like discrete Laplace noise at ``scale``."""
    n = len(samples)
    var, mad = discrete_laplace(scale)
    mean = sum(samples) / n
    assert abs(mean) <= SIGMAS * math.sqrt(var / n), f"mean {mean:.3f} is not about 0"
    second = sum(x * x for x in samples) / n
    # the sample variance of Laplace noise has relative standard error sqrt(5 / n)
    assert abs(second / var - 1) <= SIGMAS * math.sqrt(5 / n), (
        f"variance {second:.2f}, the scale promises {var:.2f}"
    )
    absolute = sum(abs(x) for x in samples) / n
    assert abs(absolute - mad) <= SIGMAS * math.sqrt((var - mad * mad) / n), (
        f"mean |noise| {absolute:.3f}, the scale promises {mad:.3f}"
    )


def fixed_dataset() -> tuple[Contributions, dict[str, int], dict[str, dict[str, int]]]:
    """50 users inside the bounds (no clipping), and the true counts worked out by hand."""
    users = []
    for u in range(50):
        a, b = KEYS[u % 20], KEYS[(u + 7) % 20]
        users.append(
            UserContribution(
                intents=((a, 1), (b, 1)),
                shares=((a, 1),),
                recipients=((a, 1 + u % 3),),
                clicks=((a, u % 3),),
            )
        )
    data = Contributions(tuple(users), KEYS, BOUNDS)
    items = {k: dict.fromkeys(METRICS, 0) for k in KEYS}
    for user in users:
        for metric in METRICS:
            for url, v in user.of(metric):
                items[url][metric] += v
    totals = {m: sum(items[k][m] for k in KEYS) for m in METRICS}
    return data, totals, items


def sample_noise(
    plan: ReleasePlan, releases: int
) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Noise (noisy minus true) per metric: totals and pooled per-item cells."""
    data, true_totals, true_items = fixed_dataset()
    totals: dict[str, list[int]] = {m: [] for m in METRICS}
    items: dict[str, list[int]] = {m: [] for m in METRICS}
    for _ in range(releases):
        noisy = release(plan, data)
        for m in METRICS:
            totals[m].append(noisy.totals[m] - true_totals[m])
            items[m].extend(noisy.items[k][m] - true_items[k][m] for k in KEYS)
    return totals, items


@pytest.fixture(scope="module")
def plan() -> ReleasePlan:
    return plan_release(1.0, BOUNDS, KEYS)


@pytest.fixture(scope="module")
def noise(plan: ReleasePlan) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    return sample_noise(plan, RELEASES)


def test_noise_has_mean_zero_and_the_promised_spread(
    plan: ReleasePlan, noise: tuple[dict[str, list[int]], dict[str, list[int]]]
) -> None:
    totals, items = noise
    scales = {spec.name: spec.scale for spec in plan.measurements}
    for metric in METRICS:
        check_noise(totals[metric], scales[f"totals.{metric}"])
        check_noise(items[metric], scales[f"items.{metric}"])
        assert len(items[metric]) == RELEASES * len(KEYS)


def test_scales_follow_sensitivity_and_the_epsilon_share(plan: ReleasePlan) -> None:
    # ε = 1 split 8 ways; sensitivity = 2 items x per-item cap (1, 1, 3, 2)
    expected = {"intents": 16.0, "shares": 16.0, "recipients": 48.0, "clicks": 32.0}
    for spec in plan.measurements:
        assert spec.epsilon == 1.0 / 8
        assert spec.scale == pytest.approx(expected[spec.metric], rel=1e-9)


def test_the_check_fails_without_noise(plan: ReleasePlan) -> None:
    with pytest.raises(AssertionError, match="variance"):
        check_noise([0] * RELEASES, plan.measurements[0].scale)


def test_the_check_fails_at_a_wrong_scale(
    plan: ReleasePlan, noise: tuple[dict[str, list[int]], dict[str, list[int]]]
) -> None:
    totals, items = noise
    promised = plan.measurements[0].scale  # totals.intents
    for wrong in (promised / 2, promised * 2):
        with pytest.raises(AssertionError):
            check_noise(totals["intents"], wrong)
    # pooled cells are many: even 20% off is caught
    item_scale = next(s.scale for s in plan.measurements if s.name == "items.shares")
    for wrong in (item_scale / 1.2, item_scale * 1.2):
        with pytest.raises(AssertionError):
            check_noise(items["shares"], wrong)


def test_a_mechanism_that_ignores_the_split_fails_the_check(plan: ReleasePlan) -> None:
    """Noise drawn for the whole epsilon on each measurement (8x too small a scale)."""
    greedy = plan_release(8.0, BOUNDS, KEYS)  # each measurement at ε = 1
    totals, _ = sample_noise(greedy, 400)
    with pytest.raises(AssertionError):
        check_noise(totals["shares"], plan.measurements[1].scale)
    check_noise(totals["shares"], greedy.measurements[1].scale)  # but it is Laplace at its own
