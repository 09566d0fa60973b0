"""The noise, sampled: mean about 0, the spread the published scale promises, 95% intervals
that hold 95% of it, and thresholds that noise alone reaches at most as often as promised.

Many releases of one fixed dataset through the real mechanism (OpenDP, no seed). The
checks have a tolerance of six standard errors: a correct mechanism fails them about once
in 10^8 runs, while missing noise or a scale off by 2x fails them every time (shown below
with the same checks). Both budget splits are sampled: the default (half of each
metric's epsilon on its total) and a quarter on totals, as an agreement may choose; and a
roll-up's plan, built from its agreement's own ``rollup_epsilon`` (a different scale).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest

from clearpost.core.partners.agreement import parse_agreement
from clearpost.core.privacy import (
    METRICS,
    Bounds,
    Contributions,
    ReleasePlan,
    UserContribution,
    plan_release,
    release,
)
from clearpost.core.privacy.mechanism import RELEASE_ALPHA, margin, release_threshold
from tests.support.partner import AGREEMENT

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


def check_interval(samples: Sequence[int], scale: float, margin: int) -> None:
    """Raise unless about the promised share of ``samples`` lies within ``margin``: the
    exact discrete Laplace probability, which is at least 0.95 by construction."""
    n = len(samples)
    p = math.exp(-1 / scale)
    inside = 1 - 2 * p ** (margin + 1) / (1 + p)
    assert inside >= 0.95
    share = sum(abs(x) <= margin for x in samples) / n
    assert abs(share - inside) <= SIGMAS * math.sqrt(inside * (1 - inside) / n), (
        f"{share:.4f} of the noise within ±{margin}, the scale promises {inside:.4f}"
    )


def check_threshold(samples: Sequence[int], threshold: int, alpha: float) -> None:
    """Raise if noise alone (a true count of 0) reaches ``threshold`` more often than
    ``alpha`` allows."""
    n = len(samples)
    share = sum(x >= threshold for x in samples) / n
    assert share <= alpha + SIGMAS * math.sqrt(alpha * (1 - alpha) / n), (
        f"noise reached the threshold {threshold} in {share:.4f} of cells, over {alpha}"
    )


ROLLUP_AGREEMENT = parse_agreement(AGREEMENT + "rollup_days = 91\nrollup_epsilon = 0.4\n")


@pytest.fixture(
    scope="module",
    params=[(1.0, 0.5), (1.0, 0.25), (None, 0.5)],
    ids=["half-on-totals", "quarter-on-totals", "rollup"],
)
def plan(request: pytest.FixtureRequest) -> ReleasePlan:
    epsilon, share = request.param
    if epsilon is None:  # a roll-up: the service plans it at the agreement's rollup_epsilon
        epsilon = ROLLUP_AGREEMENT.rollup_epsilon
    return plan_release(epsilon, BOUNDS, KEYS, totals_share=share)


@pytest.fixture(scope="module")
def noise(plan: ReleasePlan) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    return sample_noise(plan, RELEASES)


def test_intervals_hold_95_percent_and_thresholds_keep_noise_out(
    plan: ReleasePlan, noise: tuple[dict[str, list[int]], dict[str, list[int]]]
) -> None:
    totals, items = noise
    for spec in plan.measurements:
        samples = (totals if spec.name.startswith("totals.") else items)[spec.metric]
        check_interval(samples, spec.scale, spec.margin)
        if spec.threshold is not None:
            check_threshold(samples, spec.threshold, RELEASE_ALPHA)


def test_the_interval_and_threshold_checks_fail_at_a_wrong_scale(
    plan: ReleasePlan, noise: tuple[dict[str, list[int]], dict[str, list[int]]]
) -> None:
    _, items = noise
    spec = next(s for s in plan.measurements if s.name == "items.shares")
    # noise at twice, or half, the scale the published interval was made for
    for wrong in ([2 * x for x in items["shares"]], [round(x / 2) for x in items["shares"]]):
        with pytest.raises(AssertionError):
            check_interval(wrong, spec.scale, spec.margin)
    with pytest.raises(AssertionError):  # an interval from a scale half the true one
        check_interval(items["shares"], spec.scale, margin(spec.scale / 2))
    with pytest.raises(AssertionError):  # noise at twice the scale the threshold assumed
        check_threshold([2 * x for x in items["shares"]], spec.threshold or 0, RELEASE_ALPHA)
    with pytest.raises(AssertionError):  # or a threshold set for a tenth of the noise
        check_threshold(items["shares"], release_threshold(spec.scale / 10), RELEASE_ALPHA)


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
    # ε (1, or the roll-up's 0.4) split over 4 metrics, then totals_share to the total;
    # sensitivity = 2 items x per-item cap (1, 1, 3, 2)
    sensitivity = {"intents": 2, "shares": 2, "recipients": 6, "clicks": 4}
    for spec in plan.measurements:
        share = plan.totals_share if spec.name.startswith("totals.") else 1 - plan.totals_share
        share *= plan.epsilon
        assert spec.epsilon == pytest.approx(share / 4)
        assert spec.scale == pytest.approx(sensitivity[spec.metric] / (share / 4), rel=1e-9)


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
    greedy = plan_release(8 * plan.epsilon, BOUNDS, KEYS, totals_share=plan.totals_share)
    totals, _ = sample_noise(greedy, 400)
    with pytest.raises(AssertionError):
        check_noise(totals["shares"], plan.measurements[1].scale)
    check_noise(totals["shares"], greedy.measurements[1].scale)  # but it is Laplace at its own
