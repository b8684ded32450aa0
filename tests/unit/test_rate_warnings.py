"""Overlapping / shadowed prefix warnings (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sidecar.rating import Rate
from sidecar.services.rate_warnings import covered, plan_warnings

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 6, 1, tzinfo=UTC)
T2 = datetime(2025, 1, 1, tzinfo=UTC)


def rate(rid: int, prefix: str, rpm: str = "0.10", **kw: object) -> Rate:
    fields: dict[str, object] = {
        "connection_fee": Decimal(0),
        "initial_increment": 60,
        "increment": 60,
        "effective_start": T0,
        "effective_end": None,
        "priority": 0,
        "enabled": True,
    }
    fields.update(kw)
    return Rate(rid, prefix, f"r{rid}", Decimal(rpm), **fields)  # type: ignore[arg-type]


def kinds(rates: list[Rate]) -> list[tuple[str, int]]:
    found, count = plan_warnings(rates)
    assert count == len(found)
    return [(w.kind, w.rate_id) for w in found]


def test_longer_prefix_with_the_parents_price_is_redundant() -> None:
    rates = [rate(1, "51"), rate(2, "519", "0.10"), rate(3, "5198", "0.20")]
    found, _ = plan_warnings(rates)
    assert [(w.kind, w.rate_id, w.related_rate_id) for w in found] == [
        ("same_price_as_parent", 2, 1)
    ]


def test_nearest_parent_is_compared_not_the_root() -> None:
    # 5198 differs from its nearest parent 519 although it equals 51
    assert kinds([rate(1, "51"), rate(2, "519", "0.30"), rate(3, "5198", "0.10")]) == []


def test_same_price_but_other_increment_is_not_redundant() -> None:
    assert kinds([rate(1, "51"), rate(2, "519", increment=1, initial_increment=1)]) == []


def test_parent_price_in_a_disjoint_window_does_not_count() -> None:
    rates = [rate(1, "51", effective_end=T1), rate(2, "519", effective_start=T1)]
    assert kinds(rates) == []


def test_rate_covered_by_a_higher_priority_rate_is_never_in_effect() -> None:
    rates = [rate(1, "52", effective_start=T1, effective_end=T2), rate(2, "52", "0.2", priority=5)]
    found, _ = plan_warnings(rates)
    assert [(w.kind, w.rate_id, w.related_rate_id) for w in found] == [("never_in_effect", 1, 2)]


def test_partial_cover_is_not_reported() -> None:
    rates = [rate(1, "52"), rate(2, "52", "0.2", priority=5, effective_end=T2)]
    assert kinds(rates) == []


def test_union_of_winners_covers_the_window() -> None:
    rates = [
        rate(1, "52", effective_start=T0, effective_end=T2),
        rate(2, "52", "0.2", priority=1, effective_start=T0, effective_end=T1),
        rate(3, "52", "0.3", priority=1, effective_start=T1, effective_end=None),
    ]
    assert kinds(rates) == [("never_in_effect", 1)]


def test_lower_priority_rate_never_hides_a_higher_one() -> None:
    rates = [rate(1, "52", priority=5), rate(2, "52", "0.2", priority=1)]
    assert kinds(rates) == [("never_in_effect", 2)]


def test_disabled_rates_are_listed_and_ignored_for_cover() -> None:
    rates = [rate(1, "52"), rate(2, "52", "0.2", priority=5, enabled=False)]
    assert kinds(rates) == [("disabled", 2)]


def test_limit_keeps_counting() -> None:
    children = sorted((rate(i, f"5{i}") for i in range(2, 12)), key=lambda r: r.prefix)
    rates = [rate(1, "5"), *children]
    found, count = plan_warnings(rates, limit=3)
    assert len(found) == 3 and count == 10


def test_covered_handles_gaps_and_open_ends() -> None:
    assert covered(T0, T2, [(T0, T1), (T1, None)])
    assert not covered(T0, T2, [(T0, T1), (datetime(2024, 7, 1, tzinfo=UTC), None)])
    assert not covered(T0, None, [(T0, T2)])
    assert covered(T0, None, [(T0, T1), (T0, None)])


def test_unordered_input_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError):
        plan_warnings([rate(1, "52"), rate(2, "51")])


def test_a_sibling_branch_is_not_a_parent() -> None:
    # in prefix order 52 follows 51, but its parent is 5
    rates = [rate(1, "5", "0.30"), rate(2, "51", "0.10"), rate(3, "52", "0.10")]
    assert kinds(rates) == []
    rates = [rate(1, "5", "0.10"), rate(2, "51", "0.20"), rate(3, "52", "0.10")]
    assert kinds(rates) == [("same_price_as_parent", 3)]
