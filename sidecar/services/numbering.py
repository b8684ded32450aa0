"""Which normalization rules apply to a call, and the caller's forms for account matching.

A call's rules are its source's (the FreeSWITCH switch, the CUCM cluster), then its plan's:
one ordered list, the first rule that applies wins (``sidecar.rating.numbers``). Before
the account is known only the source's rules can apply, so account matching by caller
uses them alone; the plan's caller rules shape the normalized caller a CDR keeps.
"""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.rating import NumberRule, apply_rules, normalize_number, received_forms

FREESWITCH, CUCM = "freeswitch", "cucm"


def caller_forms(caller: str, rules: Sequence[NumberRule]) -> list[str]:
    """The caller as received first (as accounts were matched before rules existed), then
    every number the source's rules turn into the same E.164 digits: the forms an
    account's ANI may hold for this caller. Without rules: as received, then its digits
    (one lookup for a caller sent as digits, as before rules existed)."""
    if not caller:
        return []
    forms = [caller]
    if not rules:
        digits = normalize_number(caller)
        return forms if digits in ("", caller) else [caller, digits]
    for form in received_forms(apply_rules(caller, rules), rules):
        if form not in forms:
            forms.append(form)
    return forms
