"""Parsing money from the outside world: Decimal only, never float."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

BALANCE_QUANTUM = Decimal("0.0001")
# balances are NUMERIC(18,4): at most 14 digits before the point
MAX_DIGITS_BEFORE_POINT = 14


def parse_money(value: object, field: str, *, allow_negative: bool = False) -> Decimal:
    """A finite Decimal with at most 4 decimals, from a string, int or Decimal."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(f'{field}: expected a decimal string such as "10.00"')
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError(f"{field}: {value!r} is not a decimal number") from None
    if not amount.is_finite():
        raise ValueError(f"{field}: must be finite")
    if amount.adjusted() >= MAX_DIGITS_BEFORE_POINT:
        raise ValueError(f"{field}: too large (at most {'9' * MAX_DIGITS_BEFORE_POINT}.9999)")
    if amount != amount.quantize(BALANCE_QUANTUM):
        raise ValueError(f"{field}: at most 4 decimals")
    if amount < 0 and not allow_negative:
        raise ValueError(f"{field}: must not be negative")
    return amount
