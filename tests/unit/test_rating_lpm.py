import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.rating import Rate, RateIndex, normalize_number
from sidecar.rating.lpm_build import Builder

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


# ---------------------------------------------------------------- files and long prefixes

rate_specs = st.lists(
    st.tuples(
        st.text("01", min_size=1, max_size=20),  # past 15 digits: the long-prefix path
        st.integers(0, 3),
        st.integers(0, 5),
        st.one_of(st.none(), st.integers(1, 4)),
        st.booleans(),
    ),
    max_size=30,
)


def _unique(specs) -> list[Rate]:  # type: ignore[no-untyped-def]
    rates, seen = [], set()
    for i, (prefix, prio, start, days, enabled) in enumerate(specs):
        begin = T0 + timedelta(days=start)
        end = None if days is None else begin + timedelta(days=days)
        if (prefix, prio, begin) not in seen:
            seen.add((prefix, prio, begin))
            rates.append(r(i, prefix, f"0.{i:02d}", start=begin, end=end, priority=prio,
                           enabled=enabled))  # fmt: skip
    return rates


@given(rate_specs, st.lists(st.text("01", max_size=24), max_size=8), st.integers(0, 9))
def test_saved_and_mapped_index_answers_as_built(specs, numbers, day) -> None:  # type: ignore[no-untyped-def]
    rates = _unique(specs)
    built = RateIndex(rates, version=7)
    with tempfile.TemporaryDirectory() as tmp:
        built.save(Path(tmp) / "plan.lpm")
        mapped = RateIndex.load(Path(tmp) / "plan.lpm")
    at = T0 + timedelta(days=day, hours=12)
    assert mapped.version == 7 and len(mapped) == len(built) == sum(x.enabled for x in rates)
    for number in [*numbers, *(x.prefix for x in rates)]:
        expected = _brute_force(rates, number, at)
        assert built.lookup(number, at) == mapped.lookup(number, at)
        got = mapped.lookup(number, at)
        assert (got.id if got else None) == (expected.id if expected else None)
        if got is not None:
            assert got == expected._replace(prefix=got.prefix) and got.prefix == expected.prefix


def test_a_prefix_longer_than_the_number_never_matches_it() -> None:
    # keys are zero-padded: 5198 pads to the key of 51980..., which 51980 covers
    index = RateIndex([r(1, "5198"), r(2, "51980"), r(3, "5"), r(4, "519800000000000000")])
    assert index.lookup("5198", T0).id == 1
    assert index.lookup("519", T0).id == 3
    assert index.lookup("51980", T0).id == 2
    assert index.lookup("5198000000000000000000", T0).id == 4
    assert index.lookup("51980000000000000", T0).id == 2  # 17 digits: shorter than #4


def test_long_prefixes_and_their_fallbacks() -> None:
    long = "1" * 16
    end = T0 + timedelta(days=1)
    index = RateIndex([
        r(1, "1"), r(2, long), r(3, long + "22", end=end), r(4, "1" * 15), r(5, long + "2"),
    ])  # fmt: skip
    assert index.lookup(long + "2299", T0).id == 3
    assert index.lookup(long + "2299", end).id == 5  # #3 ended: its longest prefix in the plan
    assert index.lookup(long + "9", T0).id == 2
    assert index.lookup("1" * 15, T0).id == 4
    assert index.lookup("1" * 14, T0).id == 1
    assert index.lookup(long + "2", T0).id == 5


def test_empty_and_missing_plans_save_and_load(tmp_path: Path) -> None:
    RateIndex([], version=3).save(tmp_path / "empty.lpm")
    empty = RateIndex.load(tmp_path / "empty.lpm")
    assert len(empty) == 0 and empty.version == 3 and empty.lookup("51", T0) is None


def test_a_damaged_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan.lpm"
    RateIndex([r(1, "51"), r(2, "52")]).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated|inconsistent"):
        RateIndex.load(path)
    path.write_bytes(b"not an index" + data)
    with pytest.raises(ValueError, match="not an index file"):
        RateIndex.load(path)


def test_copy_text_rows() -> None:
    """What ``COPY ... TO STDOUT`` sends: escapes in names, any split into blocks."""
    lines = (  # the rows of a prefix in preference order: priority 5 first
        b"8\t51\t0.050000 0.010000 1 1 1767225600000000 1767312000000000 5  0.5 3\tPeru promo\n"
        b"7\t51\t0.100000 0.000000 60 6 1767225600000000  0  0 0\tPeru\\tLima \\\\ \\n x\n"
        b"9\t5198\t1.5 0 30 6 0  0  0 0\t\xc3\x91u\xc3\xb1oa\n"
    )
    index = RateIndex.from_text([lines], version=4)
    assert index.version == 4 and len(index) == 3
    first = index.lookup("51123", T0)
    assert first == Rate(8, "51", "Peru promo", Decimal("0.050000"), Decimal("0.010000"), 1, 1,
                         T0, T0 + timedelta(days=1), 5, True, None, Decimal("0.5"), 3)  # fmt: skip
    assert str(first.rate_per_minute) == "0.050000"
    later = index.lookup("51123", T0 + timedelta(days=1))
    assert later.id == 7 and later.name == "Peru\tLima \\ \n x" and later.initial_increment == 60
    assert index.lookup("519876", T0).name == "Ñuñoa"
    with pytest.raises(ValueError, match="not grouped"):
        RateIndex.from_text([b"1\t52\t0 0 1 1 0  0  0 0\ta\n2\t51\t0 0 1 1 0  0  0 0\tb\n"])
    with pytest.raises(ValueError, match="4 tab-separated"):
        RateIndex.from_text([b"1\t52\t0 0 1 1 0  0  0 0\n"])
    with pytest.raises(ValueError, match="10 space-separated"):
        RateIndex.from_text([b"1\t52\t0 0 1 1 0  0\ta\n"])


def test_text_is_read_in_pieces_cut_at_line_ends() -> None:
    lines = b"".join(
        b"%d\t%s\t0.1 0 1 1 0  %d  0 0\tname %d\n" % (n, str(n * 7).encode(), n % 3, n % 5)
        for n in sorted(range(1, 300), key=lambda n: str(n * 7))
    )
    whole, pieces = Builder(), Builder()
    whole.add_text(lines)
    pieces.add_text(lines, piece=1)  # a piece a line
    assert pieces.finish(1, bytes, bytes) == whole.finish(1, bytes, bytes)


# ---------------------------------------------------------------- timings and plan meta


def test_timings_minimum_free_and_plan_meta_survive_the_file(tmp_path: Path) -> None:
    from sidecar.rating import NumberRule, PlanMeta, Timing
    from sidecar.rating.timing import parse_clock, parse_days
    from sidecar.rating.zones import zone

    mx = zone("America/Mexico_City")
    peak = Timing(7, "peak", mx, parse_days("mon-fri"), parse_clock("08:00"), parse_clock("20:00"))
    meta = PlanMeta(
        plan_id=3, timezone="America/Mexico_City", parent_id=1, timings=(peak,),
        callee_rules=(NumberRule(add="52", min_length=10, max_length=10),),
        caller_rules=(NumberRule(strip="+"),),
    )  # fmt: skip
    rates = [
        r(1, "52", "0.10")._replace(timing=peak, priority=1, minimum_charge=Decimal("0.5")),
        r(2, "52", "0.04")._replace(free_seconds=6),
        r(3, "5255", "0.20"),
    ]
    built = RateIndex(rates, version=9, meta=meta)
    built.save(tmp_path / "plan.lpm")
    mapped = RateIndex.load(tmp_path / "plan.lpm")
    assert mapped.meta == meta and mapped.timed and not mapped.steady(T0, T0)
    monday_noon = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)  # 12:00 in Mexico City
    monday_night = datetime(2026, 3, 3, 3, 0, tzinfo=UTC)  # 21:00
    for index in (built, mapped):
        assert index.lookup("5233", monday_noon) == rates[0]
        assert index.lookup("5233", monday_night) == rates[1]
        assert [c.id for c in index.candidates("525512")] == [3, 1, 2]
        assert index.candidates("4") == [] and index.candidates("") == []


def test_steady_knows_every_effective_instant(tmp_path: Path) -> None:
    change = T0 + timedelta(days=10)
    index = RateIndex([r(1, "51", end=change), r(2, "51", start=change), r(3, "6")])
    index.save(tmp_path / "plan.lpm")
    for idx in (index, RateIndex.load(tmp_path / "plan.lpm")):
        assert not idx.timed
        assert idx.steady(change - timedelta(hours=2), change - timedelta(hours=1))
        assert not idx.steady(change - timedelta(hours=1), change + timedelta(seconds=1))
        assert idx.steady(change, change + timedelta(days=1))  # the change is not inside
        assert idx.steady(T0 - timedelta(days=1), T0)  # up to T0, exclusive


def test_an_index_refuses_a_rate_naming_an_unknown_timing() -> None:
    row = (1, "51", "x", Decimal(1), Decimal(0), 60, 60, T0, None, 0, True, 99, Decimal(0), 0)
    with pytest.raises(ValueError, match="timing 99"):
        RateIndex.from_rows([row])


def _peak_and_weekend():  # type: ignore[no-untyped-def]
    from sidecar.rating import Timing
    from sidecar.rating.timing import parse_clock, parse_days
    from sidecar.rating.zones import zone

    ny = zone("America/New_York")
    return (
        Timing(1, "peak", ny, parse_days("mon-fri"), parse_clock("08:00"), parse_clock("20:00")),
        Timing(2, "weekend", ny, parse_days("sat,sun")),
        Timing(3, "night", ny, start=parse_clock("22:00"), end=parse_clock("06:00")),
    )


TIMINGS = _peak_and_weekend()


@given(
    st.lists(
        st.tuples(
            st.text("012", min_size=1, max_size=3),
            st.integers(0, 2),
            st.integers(0, 3),
            st.one_of(st.none(), st.sampled_from(TIMINGS)),
        ),
        max_size=20,
    ),
    st.text("012", min_size=1, max_size=5),
    st.integers(0, 14 * 24),
)
def test_timed_lookups_match_brute_force(specs, number, hours) -> None:  # type: ignore[no-untyped-def]
    rates, seen = [], set()
    for i, (prefix, prio, start, timing) in enumerate(specs):
        key = (prefix, prio, start, timing)
        if key not in seen:
            seen.add(key)
            rates.append(r(i, prefix, priority=prio, start=T0 + timedelta(days=start))
                         ._replace(timing=timing))  # fmt: skip
    at = T0 + timedelta(hours=hours)
    best = None
    for rate in rates:
        if number.startswith(rate.prefix) and rate.applies(at):
            k = (len(rate.prefix), rate.priority, rate.effective_start, -rate.id)
            if best is None or k > best[0]:
                best = (k, rate)
    expected = None if best is None else best[1].id
    index = RateIndex(rates)
    got = index.lookup(number, at)
    assert (got.id if got else None) == expected
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "plan.lpm")
        mapped = RateIndex.load(Path(tmp) / "plan.lpm")
        assert mapped.lookup(number, at) == got
        assert type(mapped).__name__ == ("_TimedRateIndex" if mapped.timed else "RateIndex")
