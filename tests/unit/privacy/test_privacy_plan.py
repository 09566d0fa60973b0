"""The release plan: the epsilon split, the scales, and OpenDP's composed privacy map."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearpost.core.errors import InvalidInput
from clearpost.core.privacy import (
    METRICS,
    Bounds,
    Contributions,
    UserContribution,
    plan_release,
    release,
)

bounds_st = st.builds(
    Bounds,
    items_per_user=st.integers(1, 20),
    shares_per_item=st.integers(1, 100),
    clicks_per_share=st.integers(1, 100),
    recipients_per_share=st.integers(1, 1000),
)


@settings(max_examples=60, deadline=None)
@given(
    epsilon=st.floats(0.01, 10.0),
    bounds=bounds_st,
    n_keys=st.integers(0, 5),
    totals_share=st.floats(0.05, 0.95),
)
def test_the_composition_spends_exactly_the_agreement_epsilon(
    epsilon: float, bounds: Bounds, n_keys: int, totals_share: float
) -> None:
    keys = tuple(f"https://x.example/{i}" for i in range(n_keys))
    plan = plan_release(epsilon, bounds, keys, totals_share=totals_share)
    assert epsilon * (1 - 1e-9) <= plan.composed_epsilon <= epsilon
    assert [s.name for s in plan.measurements] == [
        f"{kind}.{m}" for kind in ("totals", "items") for m in METRICS
    ]
    for spec in plan.measurements:
        share = totals_share if spec.name.startswith("totals.") else 1 - totals_share
        assert spec.epsilon == pytest.approx(epsilon / 4 * share)
        assert spec.sensitivity == bounds.items_per_user * bounds.per_item(spec.metric)
        assert spec.scale == pytest.approx(spec.sensitivity / spec.epsilon, rel=1e-9)
        assert spec.scale >= spec.sensitivity / spec.epsilon  # never less noise than needed


def test_the_privacy_map_is_per_user() -> None:
    plan = plan_release(1.0, Bounds(3, 2, 1, 5), ())
    composed = plan._measurement
    assert composed.map(2) == pytest.approx(2.0)  # two users: twice the loss
    assert composed.map(0) == 0


def test_sensitivities_multiply_the_bounds() -> None:
    b = Bounds(items_per_user=4, shares_per_item=2, clicks_per_share=3, recipients_per_share=10)
    assert {m: b.sensitivity(m) for m in METRICS} == {
        "intents": 8,
        "shares": 8,
        "recipients": 80,
        "clicks": 24,
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"items_per_user": 0},
        {"shares_per_item": -1},
        {"clicks_per_share": 1001},
        {"recipients_per_share": True},
    ],
)
def test_bounds_are_checked(kwargs: dict[str, int]) -> None:
    values = {
        "items_per_user": 1,
        "shares_per_item": 1,
        "clicks_per_share": 1,
        "recipients_per_share": 1,
        **kwargs,
    }
    with pytest.raises(InvalidInput):
        Bounds(**values)


def test_release_outputs_only_the_plan_items_and_metrics() -> None:
    bounds = Bounds(1, 1, 1, 1)
    keys = ("https://a.example/1", "https://a.example/2")
    plan = plan_release(1.0, bounds, keys)
    stray = UserContribution(
        intents=(("https://elsewhere.example/", 1),), shares=(), recipients=(), clicks=()
    )
    noisy = release(plan, Contributions((stray,), keys, bounds))
    assert set(noisy.items) == set(keys)
    assert all(set(v) == set(METRICS) for v in noisy.items.values())
    assert set(noisy.totals) == set(METRICS)


def test_release_refuses_a_dataset_prepared_for_another_plan() -> None:
    plan = plan_release(1.0, Bounds(1, 1, 1, 1), ("https://a.example/1",))
    with pytest.raises(InvalidInput):
        release(plan, Contributions((), ("https://a.example/1",), Bounds(2, 1, 1, 1)))
    with pytest.raises(InvalidInput):
        release(plan, Contributions((), (), Bounds(1, 1, 1, 1)))


def test_bad_budgets_and_duplicate_items_are_refused() -> None:
    for epsilon in (0.0, -1.0, float("nan"), 1e9):
        with pytest.raises(InvalidInput):
            plan_release(epsilon, Bounds(1, 1, 1, 1), ())
    with pytest.raises(InvalidInput):
        plan_release(1.0, Bounds(1, 1, 1, 1), ("https://a.example/", "https://a.example/"))
    for share in (0.0, 1.0, float("nan")):
        with pytest.raises(InvalidInput):
            plan_release(1.0, Bounds(1, 1, 1, 1), (), totals_share=share)
