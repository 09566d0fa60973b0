"""Contribution bounds: how much one person can add to any count, and which events count."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

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
)
from clearpost.core.privacy.bounds import clipped

A, B, C = "https://s.example/a", "https://s.example/b", "https://s.example/c"


def by_user(data: Contributions) -> dict[str, UserContribution]:
    """Records in user order (``contributions`` sorts users); the tests name users u1, u2..."""
    return {f"u{i + 1}": r for i, r in enumerate(data.users)}


def test_one_user_spends_a_budget_of_the_sensitivity_per_metric() -> None:
    """Budget items x per-item cap = 5 x 2 = 10 intents and shares, 90 recipients."""
    bounds = Bounds(items_per_user=5, shares_per_item=2, clicks_per_share=1, recipients_per_share=9)
    activity = Activity(
        intents=[IntentEvent("u1", A, t) for t in range(12)] + [IntentEvent("u2", A, 1)],
        shares=[ShareEvent("u1", A, f"i{t}", 100 + t, 3) for t in range(12)],
        clicks=[],
        keys=(A,),
    )
    users = by_user(contributions(activity, bounds))
    assert users["u1"].intents == ((A, 10),)  # twelve intents for one title: ten count
    assert users["u1"].shares == ((A, 10),)
    assert users["u1"].recipients == ((A, 36),)  # twelve shares x 3 recipients, under 90
    assert users["u2"].intents == ((A, 1),)


def test_a_second_intent_for_the_same_item_counts_within_the_budget() -> None:
    """Version 1 counted one intent per item (shares_per_item = 1) and dropped the second
    even though the user's budget of five was mostly unused."""
    bounds = Bounds(items_per_user=5, shares_per_item=1, clicks_per_share=1, recipients_per_share=1)
    activity = Activity([IntentEvent("u1", A, 1), IntentEvent("u1", A, 2)], [], [], (A,))
    assert contributions(activity, bounds).users[0].intents == ((A, 2),)


def test_recipients_are_capped_per_share() -> None:
    bounds = Bounds(items_per_user=1, shares_per_item=1, clicks_per_share=1, recipients_per_share=4)
    activity = Activity([], [ShareEvent("u1", A, "i1", 5, 1000)], [], (A,))
    assert contributions(activity, bounds).users[0].recipients == ((A, 4),)


def test_the_budget_goes_to_the_items_the_user_was_first_active_on() -> None:
    bounds = Bounds(items_per_user=2, shares_per_item=1, clicks_per_share=1, recipients_per_share=1)
    activity = Activity(
        intents=[IntentEvent("u1", C, 1), IntentEvent("u1", A, 3), IntentEvent("u1", B, 2)],
        shares=[],
        clicks=[],
        keys=(A, B, C),
    )
    assert contributions(activity, bounds).users[0].intents == ((C, 1), (B, 1))


def test_clicks_are_capped_per_link_then_by_the_budget() -> None:
    bounds = Bounds(items_per_user=3, shares_per_item=2, clicks_per_share=3, recipients_per_share=1)
    clicks = (
        [ClickEvent("u1", A, "old", 10, 500 + t) for t in range(50)]  # one link clicked 50 times
        + [ClickEvent("u1", A, "mid", 20, 600)]
        + [ClickEvent("u1", A, "new", 30, 400) for _ in range(3)]
        + [ClickEvent("u1", B, "b", 30, 900) for _ in range(40)]
        + [ClickEvent("u2", A, "other", 15, 700)]
    )
    users = by_user(contributions(Activity([], [], clicks, (A, B)), bounds))
    # budget 3 x 2 x 3 = 18; A: "old" capped at 3, "mid" 1, "new" 3 = 7; B: capped at 3
    assert users["u1"].clicks == ((A, 7), (B, 3))
    assert users["u2"].clicks == ((A, 1),)  # clicks count under the sharer, not the clicker
    tight = Bounds(items_per_user=1, shares_per_item=2, clicks_per_share=3, recipients_per_share=1)
    users = by_user(contributions(Activity([], [], clicks, (A, B)), tight))
    assert users["u1"].clicks == ((A, 6),)  # budget 1 x 2 x 3 = 6, spent on A first


def test_clipping_holds_for_records_not_built_by_contributions() -> None:
    bounds = Bounds(items_per_user=2, shares_per_item=1, clicks_per_share=1, recipients_per_share=2)
    forged = ((A, 10**9), (A, 5), (B, -7), (C, 3))
    assert list(clipped(forged, "recipients", bounds)) == [(A, 4)]  # budget 2 x 2 = 4
    assert list(clipped(((A, 1), (B, -7), (C, 9)), "recipients", bounds)) == [
        (A, 1),
        (B, 0),
        (C, 3),
    ]


events = st.integers(0, 10_000)
urls = st.sampled_from([A, B, C, "https://s.example/d"])


@st.composite
def one_user(
    draw: st.DrawFn, user: str
) -> tuple[list[IntentEvent], list[ShareEvent], list[ClickEvent]]:
    intents = [IntentEvent(user, draw(urls), draw(events)) for _ in range(draw(st.integers(0, 8)))]
    shares = [
        ShareEvent(user, draw(urls), f"{user}-{i}", draw(events), draw(st.integers(1, 1000)))
        for i in range(draw(st.integers(0, 8)))
    ]
    clicks = [
        ClickEvent(user, draw(urls), f"{user}-l{draw(st.integers(0, 4))}", 0, draw(events))
        for _ in range(draw(st.integers(0, 20)))
    ]
    return intents, shares, clicks


@settings(max_examples=150, deadline=None)
@given(
    others=st.lists(st.sampled_from(["u1", "u2", "u3"]), unique=True).flatmap(
        lambda names: st.tuples(*(one_user(n) for n in names))
    ),
    newcomer=one_user("zz"),
    items_per_user=st.integers(1, 3),
    shares_per_item=st.integers(1, 3),
    clicks_per_share=st.integers(1, 3),
    recipients_per_share=st.integers(1, 5),
)
def test_adding_one_user_moves_each_metric_by_at_most_its_sensitivity(
    others: tuple[tuple[list[IntentEvent], list[ShareEvent], list[ClickEvent]], ...],
    newcomer: tuple[list[IntentEvent], list[ShareEvent], list[ClickEvent]],
    items_per_user: int,
    shares_per_item: int,
    clicks_per_share: int,
    recipients_per_share: int,
) -> None:
    bounds = Bounds(items_per_user, shares_per_item, clicks_per_share, recipients_per_share)
    keys = (A, B, C, "https://s.example/d")

    def build(
        parts: list[tuple[list[IntentEvent], list[ShareEvent], list[ClickEvent]]],
    ) -> Contributions:
        return contributions(
            Activity(
                [e for p in parts for e in p[0]],
                [e for p in parts for e in p[1]],
                [e for p in parts for e in p[2]],
                keys,
            ),
            bounds,
        )

    without, with_ = build(list(others)), build([*others, newcomer])
    assert with_.users[: len(without.users)] == without.users  # nobody else's record moves
    added = with_.users[len(without.users) :]
    assert len(added) <= 1
    for record in added:
        for metric in METRICS:
            cells = record.of(metric)
            assert len({u for u, _ in cells}) == len(cells)
            assert all(v >= 0 for _, v in cells)
            assert sum(v for _, v in cells) <= bounds.sensitivity(metric)
