"""Numbers: digits only, or turned into E.164 digits by ordered normalization rules.

A rule is a prefix to strip, a prefix to add and a length range. It applies to a number
whose digit count is within ``min_length..max_length`` and that starts with ``strip``;
``strip`` may begin with ``+``, which then must begin the number as received (``+1`` does
not match ``15034401001``, ``1`` does not match ``+15034401001``). The first rule that
applies turns the number into ``add`` + what follows ``strip``; none applies: the digits
are kept as they are. The result is always digits only (a leading ``+`` is dropped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_NUMBER_DIGITS = 32


def normalize_number(number: str) -> str:
    """Digits only: a leading ``+`` and every other non-digit are dropped.

    Only ASCII digits count: FreeSWITCH hands over bytes, and a Unicode digit
    (e.g. Arabic-Indic) must not silently match a prefix.
    """
    return "".join(ch for ch in number if "0" <= ch <= "9")


def _plain(number: str) -> str:
    """The number as rules see it: its digits, after a ``+`` when it started with one."""
    digits = normalize_number(number)
    return "+" + digits if number.lstrip().startswith("+") else digits


@dataclass(frozen=True, slots=True)
class NumberRule:
    strip: str = ""  # "" or ASCII digits, optionally after one leading "+"
    add: str = ""  # "" or ASCII digits
    min_length: int = 1
    max_length: int = MAX_NUMBER_DIGITS

    def __post_init__(self) -> None:
        body = self.strip.removeprefix("+")
        if body and not (body.isascii() and body.isdigit()):
            raise ValueError(f"strip {self.strip!r}: digits only, after an optional leading +")
        if self.add and not (self.add.isascii() and self.add.isdigit()):
            raise ValueError(f"add {self.add!r}: digits only")
        if not 1 <= self.min_length <= self.max_length <= MAX_NUMBER_DIGITS:
            raise ValueError(
                f"lengths {self.min_length}-{self.max_length}: need"
                f" 1 <= min_length <= max_length <= {MAX_NUMBER_DIGITS}"
            )

    def applies(self, plain: str) -> bool:
        """``plain`` as ``_plain`` gives it."""
        size = len(plain) - plain.startswith("+")
        return self.min_length <= size <= self.max_length and plain.startswith(self.strip)

    def rewrite(self, plain: str) -> str:
        return self.add + plain[len(self.strip) :].removeprefix("+")

    def as_dict(self) -> dict[str, str | int]:
        return {
            "strip": self.strip,
            "add": self.add,
            "min_length": self.min_length,
            "max_length": self.max_length,
        }


Rules = Sequence[NumberRule]


def apply_rules(number: str, rules: Rules) -> str:
    """``number`` in E.164 digits by the first rule of ``rules`` that applies (digits only
    when none does)."""
    if not rules:
        return normalize_number(number)
    plain = _plain(number)
    for rule in rules:
        if rule.applies(plain):
            return rule.rewrite(plain)
    return plain.removeprefix("+")


def received_forms(e164: str, rules: Rules) -> list[str]:
    """Every number as a switch could send it (digits, optionally after ``+``) that
    ``rules`` turn into ``e164``: ``e164`` itself first, then one per rule that can
    produce it. Account matching compares these with the numbers an account holds, so
    an account holding ``5034401001`` is found for ``+15034401001`` when a rule adds the
    ``1`` to ten-digit numbers."""
    found = [e164] if apply_rules(e164, rules) == e164 else []
    for rule in rules:
        if not e164.startswith(rule.add):
            continue
        tail = e164[len(rule.add) :]
        tails = [tail, "+" + tail] if not rule.strip else [tail]
        for candidate in (rule.strip + t for t in tails):
            if candidate not in found and apply_rules(candidate, rules) == e164:
                found.append(candidate)
    plus = "+" + e164
    if plus not in found and apply_rules(plus, rules) == e164:
        found.append(plus)
    return found
