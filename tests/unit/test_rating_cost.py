from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sidecar.rating import Rate, billed_seconds, call_cost, max_duration_for


def rate(rpm: str, first: int, step: int, fee: str = "0") -> Rate:
    return Rate(
        id=1,
        prefix="51",
        name="x",
        rate_per_minute=Decimal(rpm),
        connection_fee=Decimal(fee),
        initial_increment=first,
        increment=step,
        effective_start=datetime(2020, 1, 1, tzinfo=UTC),
        effective_end=None,
    )


@pytest.mark.parametrize(
    ("billsec", "first", "step", "expected"),
    [
        (0, 30, 6, 0),
        (1, 30, 6, 30),
        (30, 30, 6, 30),
        (31, 30, 6, 36),
        (36, 30, 6, 36),
        (37, 30, 6, 42),
        (1, 60, 60, 60),
        (60, 60, 60, 60),
        (61, 60, 60, 120),
        (125, 60, 60, 180),
        (1, 1, 1, 1),
        (59, 1, 1, 59),
        (3601, 1, 1, 3601),
    ],
)
def test_billed_seconds(billsec: int, first: int, step: int, expected: int) -> None:
    assert billed_seconds(billsec, first, step) == expected


def test_cost_30_6() -> None:
    # 0.60/min = 0.01/s: 31 s bills 36 s -> 0.36
    assert call_cost(rate("0.60", 30, 6), 31) == Decimal("0.3600")
    assert call_cost(rate("0.60", 30, 6), 5) == Decimal("0.3000")


def test_cost_60_60() -> None:
    assert call_cost(rate("0.05", 60, 60), 61) == Decimal("0.1000")
    assert call_cost(rate("0.05", 60, 60), 60) == Decimal("0.0500")


def test_cost_1_1_rounds_half_up_to_4_decimals() -> None:
    # 0.0100/min for 7 s = 0.0011666.. -> 0.0012 ; 3 s = 0.0005 exactly
    assert call_cost(rate("0.0100", 1, 1), 7) == Decimal("0.0012")
    assert call_cost(rate("0.0100", 1, 1), 3) == Decimal("0.0005")
    # 0.00003/min * 5 s / 60 = 0.0000025 -> half-up at 4 decimals gives 0.0000
    assert call_cost(rate("0.00003", 1, 1), 5) == Decimal("0.0000")
    # exactly half: 0.0003/min * 1 s = 0.000005 -> 0.0000 ; 0.003 * 1/60 = 0.00005 -> 0.0001
    assert call_cost(rate("0.003", 1, 1), 1) == Decimal("0.0001")


def test_connection_fee_only_on_answered_calls() -> None:
    r = rate("0.60", 60, 60, fee="0.0500")
    assert call_cost(r, 0) == Decimal("0.0000")
    assert call_cost(r, 1) == Decimal("0.6500")
    assert call_cost(r, 61) == Decimal("1.2500")


def test_cost_is_decimal_never_float() -> None:
    value = call_cost(rate("0.1", 1, 1), 3)
    assert isinstance(value, Decimal)
    assert value == Decimal("0.0050")


@pytest.mark.parametrize(
    ("rpm", "first", "step", "fee", "amount", "cap", "expected"),
    [
        ("0.60", 60, 60, "0", "0.60", 3600, 60),
        ("0.60", 60, 60, "0", "0.59", 3600, 0),
        ("0.60", 60, 60, "0", "1.19", 3600, 60),
        ("0.60", 60, 60, "0", "1.20", 3600, 120),
        ("0.60", 30, 6, "0", "0.36", 3600, 36),
        ("0.60", 30, 6, "0", "0.41", 3600, 36),
        ("0.60", 1, 1, "0", "0.0500", 3600, 5),
        ("0.60", 60, 60, "0.10", "0.70", 3600, 60),
        ("0.60", 60, 60, "0.10", "0.69", 3600, 0),
        ("0", 60, 60, "0", "0", 3600, 3600),
        ("0.60", 60, 60, "0", "1000", 3600, 3600),
        ("0.0100", 1, 1, "0", "0.0012", 3600, 7),
    ],
)
def test_max_duration_for(rpm, first, step, fee, amount, cap, expected) -> None:  # type: ignore[no-untyped-def]
    r = rate(rpm, first, step, fee)
    got = max_duration_for(r, Decimal(amount), cap)
    assert got == expected
    if got:
        assert call_cost(r, got) <= Decimal(amount)
    if 0 < got < cap:
        assert call_cost(r, got + 1) > Decimal(amount)
