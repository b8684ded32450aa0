"""Pure CUCM billing rules: which rows are billable, FAC carry-over, the number rated.

FAC carry-over: CUCM often writes the Forced Authorization Code only on the zero-duration
setup record of a call; the records that carry the talk time (after a transfer, a
redirect, a forward) share the call's globalCallID or one of its leg identifiers. Rows
linked that way form a chain, and a row without a FAC takes its chain's FAC (the one
of the earliest row of the chain that has one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sidecar.cucm.records import END_CALL_RECORD, CdrRecord
from sidecar.rating import NumberRule, apply_rules


@dataclass(frozen=True)
class Fac:
    code: str  # authorizationCodeValue in clear ("" when unknown or only stored hashed)
    description: str  # authCodeDescription
    from_pkid: str  # the row it was written on
    code_hmac: str = ""  # set instead of ``code`` for a FAC read back from storage


def billable(record: CdrRecord, devices: re.Pattern[str]) -> tuple[bool, str]:
    """(billable?, reason when not)."""
    if record.record_type != END_CALL_RECORD:
        return False, f"cdrRecordType {record.record_type} is not an end-of-call record"
    if not record.dest_device:
        return False, "no destDeviceName"
    if devices.search(record.dest_device) is None:
        return False, f"destDeviceName {record.dest_device!r} is not a billable device"
    return True, ""


def called_number(record: CdrRecord) -> str:
    """The outpulsed number when CUCM sent one, else finalCalledPartyNumber."""
    return record.outpulsed_called or record.final_called


def rated_number(record: CdrRecord, rules: Sequence[NumberRule] = ()) -> str:
    """``called_number`` in E.164 digits by ``rules`` (the cluster's, then the plan's):
    access codes such as ``9011`` / ``011`` stripped, national numbers completed."""
    return apply_rules(called_number(record), rules)


def chain_keys(record: CdrRecord) -> list[str]:
    keys = [f"g:{record.callmanager_id}:{record.call_id}"]
    keys.extend(f"l:{leg}" for leg in (record.orig_leg, record.dest_leg) if leg)
    return keys


def own_fac(record: CdrRecord) -> Fac | None:
    if record.auth_code or record.auth_description:
        return Fac(record.auth_code, record.auth_description, record.pkid)
    return None


def carry_over_facs(
    records: Iterable[CdrRecord], known: dict[str, Fac] | None = None
) -> dict[str, Fac]:
    """pkid -> the FAC that applies to the row (its own, else its chain's).

    ``known`` maps chain keys to FACs seen in earlier files (setup record already stored).
    """
    rows = list(records)
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        root = key
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[key] != root:
            parent[key], key = root, parent[key]
        return root

    for record in rows:
        keys = chain_keys(record)
        for key in keys[1:]:
            parent[find(key)] = find(keys[0])
    chain_fac: dict[str, Fac] = {}
    for record in sorted(rows, key=lambda r: (r.origination is None, r.origination, r.line)):
        fac = own_fac(record)
        root = find(chain_keys(record)[0])
        if fac is not None and root not in chain_fac:
            chain_fac[root] = fac
    for key, fac in (known or {}).items():
        if key in parent:
            chain_fac.setdefault(find(key), fac)
    result = {}
    for record in rows:
        fac = own_fac(record) or chain_fac.get(find(chain_keys(record)[0]))
        if fac is not None:
            result[record.pkid] = fac
    return result
