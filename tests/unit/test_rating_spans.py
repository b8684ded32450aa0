"""Calls split at rate boundaries (pure): hand-computed vectors, then properties.

Each vector's cost is worked out in its comment from the README rule: seconds priced at
the rate in force when each starts, billed duration and fee/minimum/free seconds from the
rate at answer, rounding seconds in the last span, one half-up rounding to 4 decimals.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from sidecar.rating import PlanMeta, Rate, RateIndex, Rating, Timing, call_cost
from sidecar.rating.spans import Schedule, build_schedule
from sidecar.rating.timing import parse_clock, parse_dates, parse_days
from sidecar.rating.zones import zone

UTCZ = zone("UTC")
NY = zone("America/New_York")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
D = Decimal


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def rate(
    id_: int,
    prefix: str,
    rpm: str,
    *,
    timing: Timing | None = None,
    priority: int = 0,
    first: int = 60,
    step: int = 60,
    fee: str = "0",
    minimum: str = "0",
    free: int = 0,
    start: datetime = T0,
    end: datetime | None = None,
) -> Rate:
    return Rate(id_, prefix, f"r{id_}", D(rpm), D(fee), first, step, start, end, priority, True,
                timing, D(minimum), free)  # fmt: skip


PEAK = Timing(1, "peak", UTCZ, parse_days("mon-fri"), parse_clock("08:00"), parse_clock("20:00"))
WEEKEND = Timing(2, "weekend", UTCZ, parse_days("sat,sun"))
HOLIDAYS = Timing(3, "holidays", UTCZ, dates=parse_dates("2026-12-25"))


def rating(*rates: Rate, parent: tuple[Rate, ...] = (), tz: str = "UTC") -> Rating:
    meta = PlanMeta(plan_id=1, timezone=tz, parent_id=2 if parent else None)
    indexes = [RateIndex(rates, meta=meta)]
    if parent:
        indexes.append(RateIndex(parent, meta=PlanMeta(plan_id=2)))
    return Rating(indexes)


def priced(r: Rating, number: str, answer: datetime, billsec: int):  # type: ignore[no-untyped-def]
    schedule = r.schedule(number, answer, billsec)
    assert schedule is not None
    return schedule.price(billsec)


def spans_of(charge) -> list[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    return [(s.rate.id, s.offset, s.seconds) for s in charge.spans]


def test_across_a_boundary() -> None:
    # Mon 2026-03-02 19:58:30 UTC, 150 s, increments 60/60 of the peak rate -> billed 180:
    # 19:58:30-19:59:59 = 90 s at 0.10 (peak), then 60 s + 30 rounding = 90 s at 0.04;
    # 0.05 fee + (90 * 0.10 + 90 * 0.04) / 60 = 0.05 + 12.6 / 60 = 0.26
    plan = rating(rate(1, "44", "0.10", timing=PEAK, priority=1, fee="0.05"), rate(2, "44", "0.04"))
    charge = priced(plan, "442079460000", utc(2026, 3, 2, 19, 58, 30), 150)
    assert spans_of(charge) == [(1, 0, 90), (2, 90, 90)]
    assert charge.cost == D("0.2600") and charge.billed_seconds == 180
    assert charge.spans[1].start == utc(2026, 3, 2, 20, 0)
    assert [s.amount for s in charge.spans] == [D("0.15"), D("0.06")]


def test_rounding_seconds_belong_to_the_last_span() -> None:
    # 19:59:30, 45 s at 60/60 -> billed 60: 30 s peak, 15 s off-peak + 15 rounding;
    # (30 * 0.10 + 30 * 0.04) / 60 = 4.2 / 60 = 0.07
    plan = rating(rate(1, "44", "0.10", timing=PEAK, priority=1), rate(2, "44", "0.04"))
    charge = priced(plan, "4420", utc(2026, 3, 2, 19, 59, 30), 45)
    assert spans_of(charge) == [(1, 0, 30), (2, 30, 30)] and charge.cost == D("0.0700")


def test_a_fractional_answer_instant() -> None:
    # answered 19:59:59.5: second 0 starts then (peak); second 1 starts 20:00:00.5 (off-peak)
    plan = rating(rate(1, "44", "0.60", timing=PEAK, priority=1, first=1, step=1),
                  rate(2, "44", "0.06", first=1, step=1))  # fmt: skip
    answer = utc(2026, 3, 2, 19, 59, 59) + timedelta(milliseconds=500)
    charge = priced(plan, "4420", answer, 10)
    # 1 s at 0.60 + 9 s at 0.06 = (0.60 + 0.54) / 60 = 0.019
    assert spans_of(charge) == [(1, 0, 1), (2, 1, 9)] and charge.cost == D("0.0190")


def test_across_midnight_into_the_weekend() -> None:
    # Fri 2026-03-06 23:59:20 UTC, 100 s at 1/1: 40 s weekday 0.06, then Saturday 60 s at
    # 0.02: (40 * 0.06 + 60 * 0.02) / 60 = 3.6 / 60 = 0.06
    plan = rating(rate(1, "1", "0.02", timing=WEEKEND, priority=1, first=1, step=1),
                  rate(2, "1", "0.06", first=1, step=1))  # fmt: skip
    charge = priced(plan, "15034401001", utc(2026, 3, 6, 23, 59, 20), 100)
    assert spans_of(charge) == [(2, 0, 40), (1, 40, 60)] and charge.cost == D("0.0600")


def test_a_holiday_needs_a_higher_priority_than_the_weekday_rate() -> None:
    # 2026-12-25 is a Friday
    weekday = rate(1, "52", "0.10", timing=PEAK, priority=1, first=1, step=1)
    base = rate(2, "52", "0.05", first=1, step=1)
    holiday = rate(3, "52", "0.01", timing=HOLIDAYS, priority=10, first=1, step=1)
    plan = rating(weekday, base, holiday)
    assert plan.lookup("5255", utc(2026, 12, 25, 10)).id == 3
    assert plan.lookup("5255", utc(2026, 12, 24, 10)).id == 1
    low = rating(weekday, base, holiday._replace(priority=0))
    assert low.lookup("5255", utc(2026, 12, 25, 10)).id == 1  # the weekday rate wins
    # Thu 23:59:00, 120 s: 60 s off-peak base 0.05, 60 s holiday 0.01: 3.6 / 60 = 0.06
    charge = priced(plan, "5255", utc(2026, 12, 24, 23, 59), 120)
    assert spans_of(charge) == [(2, 0, 60), (3, 60, 60)] and charge.cost == D("0.0600")


def test_dst_spring_forward_inside_a_call() -> None:
    # New York 2026-03-08: 01:59:00 EST = 06:59:00 UTC; at 07:00 UTC clocks read 03:00 EDT,
    # past the 00:00-03:00 window: 60 s at 0.01, 60 s at 0.10 -> (0.6 + 6) / 60 = 0.11
    # (a fixed UTC-5 would read 02:00 and keep 0.01: 0.02)
    night = Timing(7, "night", NY, start=0, end=parse_clock("03:00"))
    plan = rating(rate(1, "1", "0.01", timing=night, priority=1, first=1, step=1),
                  rate(2, "1", "0.10", first=1, step=1), tz="America/New_York")  # fmt: skip
    charge = priced(plan, "1503", utc(2026, 3, 8, 6, 59), 120)
    assert spans_of(charge) == [(1, 0, 60), (2, 60, 60)] and charge.cost == D("0.1100")


def test_dst_fall_back_keeps_the_repeated_hour() -> None:
    # New York 2026-11-01: 05:59 UTC = 01:59 EDT; at 06:00 UTC it is 01:00 EST, still in
    # the 01:00-02:00 window: 120 s at 0.01 -> 1.2 / 60 = 0.02
    one_am = Timing(8, "one-am", NY, start=parse_clock("01:00"), end=parse_clock("02:00"))
    plan = rating(rate(1, "1", "0.01", timing=one_am, priority=1, first=1, step=1),
                  rate(2, "1", "0.10", first=1, step=1), tz="America/New_York")  # fmt: skip
    charge = priced(plan, "1503", utc(2026, 11, 1, 5, 59), 120)
    assert spans_of(charge) == [(1, 0, 120)] and charge.cost == D("0.0200")
    # 06:59 UTC = 01:59 EST: the window ends at 07:00 UTC -> 60 s at 0.01 + 60 s at 0.10
    charge = priced(plan, "1503", utc(2026, 11, 1, 6, 59), 120)
    assert spans_of(charge) == [(1, 0, 60), (2, 60, 60)] and charge.cost == D("0.1100")


def test_minimum_charge() -> None:
    # 10 s at 0.10/min, 1/1: 0.016667 < 0.05 -> 0.05; 40 s: 0.0666666... -> 0.0667
    plan = rating(rate(1, "44", "0.10", first=1, step=1, minimum="0.05"))
    assert priced(plan, "44", T0, 10).cost == D("0.0500")
    assert priced(plan, "44", T0, 10).minimum_applied
    assert priced(plan, "44", T0, 40).cost == D("0.0667")
    assert not priced(plan, "44", T0, 40).minimum_applied
    assert priced(plan, "44", T0, 0).cost == D("0.0000")  # unanswered: no minimum


def test_free_seconds() -> None:
    # free 10 s: a 10 s call costs nothing (no fee); 11 s is billed from second 0:
    # 0.02 fee + 60 s at 0.10 = 0.12
    plan = rating(rate(1, "44", "0.10", free=10, fee="0.02"))
    free = priced(plan, "44", T0, 10)
    assert free.cost == D("0.0000") and free.free and free.billed_seconds == 0 and not free.spans
    paid = priced(plan, "44", T0, 11)
    assert paid.cost == D("0.1200") and paid.billed_seconds == 60 and spans_of(paid) == [(1, 0, 60)]


def test_fallback_to_the_parent_plan() -> None:
    # the plan prices 447 at peak only; off-peak (and for 45) the parent's rates apply
    child = (rate(1, "447", "0.30", timing=PEAK),)
    base = (rate(2, "44", "0.05"), rate(3, "4", "0.08"))
    plan = rating(*child, parent=base)
    assert plan.lookup("4479", utc(2026, 3, 2, 10)).id == 1
    assert plan.lookup("4479", utc(2026, 3, 2, 21)).id == 2
    assert plan.lookup("4512", utc(2026, 3, 2, 10)).id == 3
    assert plan.lookup("9", utc(2026, 3, 2, 10)) is None
    # 19:59:00, 120 s at 60/60: 60 s at 0.30 (the plan's), 60 s at 0.05 (the parent's)
    charge = priced(plan, "4479", utc(2026, 3, 2, 19, 59), 120)
    assert spans_of(charge) == [(1, 0, 60), (2, 60, 60)] and charge.cost == D("0.3500")


def test_a_rate_ending_with_nothing_after_keeps_pricing_the_call() -> None:
    end = utc(2026, 3, 2, 12, 0)
    plan = rating(rate(1, "44", "0.10", first=1, step=1, end=end))
    charge = priced(plan, "44", end - timedelta(seconds=30), 90)
    assert spans_of(charge) == [(1, 0, 90)] and charge.cost == D("0.1500")


# ------------------------------------------------------------- authorization and control

CHEAP_AFTER_8PM = (
    rate(1, "44", "0.60", timing=PEAK, priority=1, first=1, step=1),
    rate(2, "44", "0.06", first=1, step=1),
)


def test_max_duration_across_a_cheaper_boundary() -> None:
    # 19:59:00 with 1.00: 60 s of peak cost 0.60; 0.40 more at 0.001/s buys 400 s -> 460
    # (priced at the peak rate alone it would be 100 s)
    schedule = rating(*CHEAP_AFTER_8PM).schedule("44", utc(2026, 3, 2, 19, 59), 3600)
    assert schedule is not None and schedule.changes == ((60, CHEAP_AFTER_8PM[1]),)
    assert schedule.max_duration(D("1.00"), 3600) == 460
    assert schedule.cost(460) == D("1.0000") and schedule.cost(461) == D("1.0010")
    assert Schedule(schedule.answer, CHEAP_AFTER_8PM[0]).max_duration(D("1.00"), 3600) == 100
    # the reservation covers the dearest call of up to 3600 s: 60 s peak + 3540 s off
    assert schedule.max_cost(3600) == D("4.1400")


def test_max_duration_into_a_dearer_period() -> None:
    # 07:59:00 with 0.10: 60 s off-peak cost 0.06; 0.04 at 0.01/s buys 4 s -> 64
    schedule = rating(*CHEAP_AFTER_8PM).schedule("44", utc(2026, 3, 2, 7, 59), 3600)
    assert schedule is not None and schedule.max_duration(D("0.10"), 3600) == 64


def test_max_duration_when_rounding_makes_a_longer_call_cheaper() -> None:
    # 60/60 increments, answered 19:59:30: 30 s costs a whole peak minute (0.60), 31 s
    # only 30 s peak + 30 s off (0.33). With 0.60 every call up to 300 s fits (billed 300
    # = 30 s peak + 270 s off = 0.30 + 0.27); 301 s is billed 360 (0.30 + 0.33 = 0.63)
    peak = rate(1, "44", "0.60", timing=PEAK, priority=1)
    plan = rating(peak, rate(2, "44", "0.06"))
    schedule = plan.schedule("44", utc(2026, 3, 2, 19, 59, 30), 3600)
    assert schedule is not None
    assert [schedule.cost(b) for b in (30, 31, 300, 301)] == [
        D("0.6000"), D("0.3300"), D("0.5700"), D("0.6300"),
    ]  # fmt: skip
    assert schedule.max_duration(D("0.60"), 3600) == 300
    assert schedule.max_duration(D("0.59"), 3600) == 0  # even 1 s costs 0.60
    assert schedule.shortest_charge() == D("0.6000")


def test_max_duration_with_free_seconds_and_a_minimum() -> None:
    plan = rating(rate(1, "44", "0.60", first=1, step=1, free=5, minimum="0.20"))
    schedule = plan.schedule("44", T0, 3600)
    assert schedule is not None
    assert schedule.shortest_charge() == D("0.2000")  # 6 s: 0.06 -> the 0.20 minimum
    assert schedule.max_duration(D("0.19"), 3600) == 5  # only the free seconds
    assert schedule.max_duration(D("0.20"), 3600) == 20  # 20 s = 0.20
    assert schedule.max_duration(D("0.25"), 3600) == 25


# ------------------------------------------------------------------------ properties

_rates = st.lists(
    st.tuples(
        st.sampled_from(["4", "44", "447"]),
        st.sampled_from(["0", "0.01", "0.06", "0.6", "1.2"]),
        st.sampled_from([None, PEAK, WEEKEND]),
        st.integers(0, 3),
        st.sampled_from([(1, 1), (60, 60), (30, 6)]),
        st.sampled_from(["0", "0.05"]),
        st.sampled_from(["0", "0.2"]),
        st.sampled_from([0, 5]),
    ),
    min_size=1,
    max_size=5,
)


def _plan(specs) -> Rating:  # type: ignore[no-untyped-def]
    rates = [
        rate(n, p, rpm, timing=t, priority=pr, first=inc[0], step=inc[1], fee=fee,
             minimum=mn, free=fr)
        for n, (p, rpm, t, pr, inc, fee, mn, fr) in enumerate(specs, 1)
    ]  # fmt: skip
    return rating(*rates)


@given(_rates, st.integers(0, 4 * 24 * 3600), st.integers(1, 3 * 3600))
def test_price_and_cost_agree_and_match_a_second_by_second_walk(specs, offset, billsec) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(specs)
    answer = utc(2026, 3, 5, 6) + timedelta(seconds=offset)  # Thu .. Mon
    schedule = build_schedule(plan.candidates("4479"), answer, billsec)
    if schedule is None:
        assert plan.lookup("4479", answer) is None
        return
    charge = schedule.price(billsec)
    assert schedule.cost(billsec) == charge.cost
    first = schedule.first
    if billsec <= first.free_seconds:
        assert charge.cost == 0
        return
    # every real second at the rate in force then (or the one before, when none)
    seconds: list[Rate] = []
    for k in range(billsec):
        seconds.append(plan.lookup("4479", answer + timedelta(seconds=k)) or seconds[-1])
    billed = charge.billed_seconds
    seconds.extend([seconds[-1]] * (billed - billsec))
    raw = first.connection_fee + sum((r.rate_per_minute for r in seconds), D(0)) / 60
    expected = max(raw, first.minimum_charge).quantize(D("0.0001"), rounding="ROUND_HALF_UP")
    assert charge.cost == expected
    assert sum(s.seconds for s in charge.spans) == billed


@given(_rates, st.integers(0, 7 * 24 * 3600), st.integers(1, 600))
def test_without_a_change_a_schedule_prices_as_call_cost(specs, offset, billsec) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(specs)
    answer = utc(2026, 3, 5, 6) + timedelta(seconds=offset)
    first = plan.lookup("4479", answer)
    if first is not None:
        assert Schedule(answer, first).price(billsec).cost == call_cost(first, billsec)


@given(_rates, st.integers(0, 3 * 24 * 3600), st.sampled_from(["0", "0.05", "0.3", "1", "2.5"]))
def test_max_duration_is_the_last_second_before_the_first_unaffordable_one(
    specs, offset, amount
) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(specs)
    answer = utc(2026, 3, 5, 19) + timedelta(seconds=offset)
    cap = 900
    schedule = build_schedule(plan.candidates("4479"), answer, cap)
    if schedule is None:
        return
    got = schedule.max_duration(D(amount), cap)
    costs = [schedule.cost(b) for b in range(1, cap + 1)]
    too_much = next((b for b, c in enumerate(costs, 1) if c > D(amount)), None)
    assert got == (cap if too_much is None else too_much - 1)
    assert schedule.max_cost(cap) == max(costs)
