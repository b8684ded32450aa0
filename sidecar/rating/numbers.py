"""Destination normalisation."""

from __future__ import annotations


def normalize_number(number: str) -> str:
    """Digits only: a leading ``+`` and every other non-digit are dropped.

    Only ASCII digits count: FreeSWITCH hands over bytes, and a Unicode digit
    (e.g. Arabic-Indic) must not silently match a prefix.
    """
    return "".join(ch for ch in number if "0" <= ch <= "9")
