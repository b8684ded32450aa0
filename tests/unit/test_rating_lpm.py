from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from sidecar.rating import Rate, RateIndex, normalize_number

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def r(
    id_: int,
    prefix: str,
    rpm: str = "0.10",
    *,
    start: datetime = T0,
    end: datetime | None = None,
    priority: int = 0,
    enabled: bool = True,
) -> Rate:
    return Rate(
        id_, prefix, f"r{id_}", Decimal(rpm), Decimal(0), 60, 60, start, end, priority, enabled
    )


def test_normalize_number() -> None:
    assert normalize_number("+51 (987) 654-321") == "51987654321"
    assert normalize_number("٥١٩") == ""  # Arabic-Indic digits are not ASCII digits


def test_longest_prefix_wins() -> None:
    index = RateIndex([r(1, "5"), r(2, "51"), r(3, "519"), r(4, "5198")])
    assert index.lookup("51987654321", T0).id == 4
    assert index.lookup("51900000000", T0).id == 3
    assert index.lookup("+51 1 234", T0).id == 2
    assert index.lookup("5000", T0).id == 1
    assert index.lookup("4000", T0) is None
    assert index.lookup("", T0) is None


def test_priority_then_later_start_break_ties() -> None:
    low = r(1, "51", priority=0)
    high = r(2, "51", priority=5)
    assert RateIndex([low, high]).lookup("511", T0 + timedelta(days=1)).id == 2
    old = r(3, "52", start=T0)
    new = r(4, "52", start=T0 + timedelta(days=10))
    index = RateIndex([old, new])
    assert index.lookup("521", T0 + timedelta(days=11)).id == 4
    assert index.lookup("521", T0 + timedelta(days=9)).id == 3


def test_effective_window_boundaries() -> None:
    end = T0 + timedelta(days=30)
    index = RateIndex([r(1, "51", start=T0, end=end), r(2, "5", start=T0)])
    assert index.lookup("511", T0).id == 1  # start is inclusive
    assert index.lookup("511", end - timedelta(microseconds=1)).id == 1
    assert index.lookup("511", end).id == 2  # end is exclusive: falls back to a shorter prefix
    assert index.lookup("511", T0 - timedelta(seconds=1)) is None


def test_disabled_rates_are_ignored() -> None:
    index = RateIndex([r(1, "51", enabled=False), r(2, "5")])
    assert index.lookup("511", T0).id == 2
    assert len(index) == 1


def _brute_force(rates: list[Rate], number: str, at: datetime) -> Rate | None:
    best = None
    for rate in rates:
        if not rate.enabled or not number.startswith(rate.prefix) or not rate.in_effect(at):
            continue
        key = (len(rate.prefix), rate.priority, rate.effective_start)
        if best is None or key > (len(best.prefix), best.priority, best.effective_start):
            best = rate
    return best


@given(
    st.lists(
        st.tuples(
            st.text("0123", min_size=1, max_size=4),
            st.integers(0, 3),
            st.integers(0, 5),
            st.booleans(),
        ),
        max_size=25,
    ),
    st.text("0123", min_size=0, max_size=6),
    st.integers(0, 6),
)
def test_matches_brute_force(specs, number, day) -> None:  # type: ignore[no-untyped-def]
    rates = [
        r(i, prefix, priority=prio, start=T0 + timedelta(days=start), enabled=enabled)
        for i, (prefix, prio, start, enabled) in enumerate(specs)
    ]
    # equal (prefix, priority, start) keys are ambiguous by definition: keep the first only
    seen, unique = set(), []
    for rate in rates:
        key = (rate.prefix, rate.priority, rate.effective_start)
        if key not in seen:
            seen.add(key)
            unique.append(rate)
    at = T0 + timedelta(days=day)
    expected = _brute_force(unique, number, at)
    got = RateIndex(unique).lookup(number, at)
    assert (got.id if got else None) == (expected.id if expected else None)
