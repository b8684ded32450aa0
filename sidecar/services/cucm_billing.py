"""Billing of one CUCM CDR row: account (FAC, else ANI), rate, charge, low-balance flag.

CUCM calls are rated after the fact: nothing was reserved, so the charge is taken whatever
the balance and may take a prepaid account negative. That is flagged in the CDR's
billing_note, and an ``account.low_balance`` audit entry is raised when the charge takes
the balance below the account's low_balance_threshold (0 when unset).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

from sidecar.cucm.billing import Fac, billable, rated_number
from sidecar.cucm.fac_code import code_hmac, last_digits
from sidecar.cucm.records import CdrRecord
from sidecar.rating import NumberRule, apply_rules
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import audit
from sidecar.repo import cdrs as cdrs_repo
from sidecar.repo import fac as fac_repo
from sidecar.services import pricing
from sidecar.services.alerts import check_low_balance
from sidecar.services.cucm_settings import CucmSettings
from sidecar.services.numbering import CUCM, caller_forms
from sidecar.services.rate_catalog import RateCatalog

ZERO = Decimal("0.0000")
ACTOR = "cucm"


@dataclass(frozen=True)
class RowOutcome:
    cdr_id: int | None  # None: the row was already stored (nothing done)
    status: str
    cost: Decimal
    account: str | None
    fac_hmac: str | None
    went_negative: bool = False


def fac_hmac_of(fac: Fac | None, settings: CucmSettings) -> str | None:
    if fac is None:
        return None
    if fac.code_hmac:
        return fac.code_hmac
    return code_hmac(settings.fac_key_bytes(), fac.code) if fac.code else None


def _account(
    conn: psycopg.Connection[Any],
    record: CdrRecord,
    fac: Fac | None,
    fac_hmac: str | None,
    caller_rules: tuple[NumberRule, ...] = (),
) -> tuple[dict[str, Any] | None, list[str]]:
    notes: list[str] = []
    if fac is not None:
        found = fac_repo.account_for(conn, fac_hmac, fac.description)
        if found is not None:
            carried = "" if fac.from_pkid == record.pkid else f" carried over from {fac.from_pkid}"
            notes.append(f"FAC {found['fac_name']!r}{carried}")
            return found, notes
        shown = f"…{last_digits(fac.code)}" if fac.code else repr(fac.description)
        notes.append(f"FAC {shown} is not registered; account looked up by the caller")
    found = None
    for caller in caller_forms(record.calling, caller_rules):  # as sent, then E.164 forms
        found = accounts_repo.find_for_call(conn, None, caller)
        if found is not None:
            break
    return found, notes


def bill_row(
    conn: psycopg.Connection[Any],
    catalog: RateCatalog,
    settings: CucmSettings,
    record: CdrRecord,
    fac: Fac | None,
    extra_vars: dict[str, Any],
) -> RowOutcome:
    fac_hmac = fac_hmac_of(fac, settings)
    ok, why_not = billable(record, settings.billable_devices)
    callee_rules, caller_rules = catalog.source_rules(CUCM, record.cluster)
    account: dict[str, Any] | None = None
    priced: pricing.Priced | None = None
    cost = ZERO
    notes: list[str] = []
    if not ok:
        status = "not_billed"
        notes.append(why_not)
    else:
        account, notes = _account(conn, record, fac, fac_hmac, caller_rules)
        if account is None:
            status = "unrated"
            notes.append("no account matches the FAC or the calling number")
    rating = None if account is None else catalog.rating(int(account["plan_id"]))
    if rating is not None:
        callee_rules += rating.callee_rules
        caller_rules += rating.caller_rules
    destination = rated_number(record, callee_rules)
    if rating is not None:
        if not record.answered:
            status = "unanswered"
        else:
            assert record.connect is not None
            priced = pricing.price(rating, destination, record.connect, record.duration)
            if priced is None:
                status = "unrated"
                notes.append("no rate for the destination at connect time")
            else:
                status = "charged"
                cost = priced.charge.cost
                notes.extend(pricing.notes(priced))

    balance_before: Decimal | None = None
    threshold = ZERO
    went_negative = False
    if account is not None and status == "charged" and cost > 0:
        locked = accounts_repo.get(conn, str(account["number"]), lock=True)
        assert locked is not None
        balance_before = Decimal(locked["balance"])
        if locked["low_balance_threshold"] is not None:
            threshold = Decimal(locked["low_balance_threshold"])
        after = balance_before - cost
        credit = Decimal(locked["credit_limit"]) if locked["type"] == "postpaid" else ZERO
        if after + credit < 0:
            went_negative = True
            notes.append(
                f"rated after the fact: balance {after} is below zero"
                + (f" (credit limit {credit})" if credit else "")
            )

    cause = record.orig_cause or record.dest_cause
    cdr_id = cdrs_repo.insert_new(
        conn,
        {
            "source": "cucm",
            "call_uuid": f"cucm:{record.pkid}",
            "leg": "a",
            "switchname": record.cluster or None,
            "caller": record.calling,
            "caller_normalized": apply_rules(record.calling, caller_rules)
            if record.calling
            else None,
            "callee": record.final_called,
            "destination": destination,
            "account_id": None if account is None else int(account["id"]),
            "start_at": record.origination,
            "answer_at": record.connect,
            "end_at": record.disconnect,
            "billusec": record.duration * 1_000_000,
            "billsec": record.duration,
            "hangup_cause": None if cause is None else str(cause),
            "hangup_cause_q850": cause if cause is not None and 0 < cause < 128 else None,
            **pricing.cdr_fields(priced),
            "cost": cost if status == "charged" else None,
            "billing_status": status,
            "billing_note": "; ".join(n for n in notes if n) or None,
            "apolo_vars": extra_vars,
        },
    )
    number = None if account is None else str(account["number"])
    if cdr_id is None:
        return RowOutcome(None, status, ZERO, number, fac_hmac)
    if balance_before is not None and account is not None:
        after = accounts_repo.move_balance(
            conn,
            int(account["id"]),
            -cost,
            kind="call_charge",
            actor=ACTOR,
            note=f"CUCM call {record.pkid}",
            cdr_id=cdr_id,
        )
        check_low_balance(conn, int(account["id"]), balance_before, after)
        if after < threshold <= balance_before:
            audit.record(
                conn,
                ACTOR,
                "account.low_balance",
                f"account:{number}",
                {"balance": balance_before},
                {"balance": after, "threshold": threshold, "cdr_id": cdr_id},
            )
    return RowOutcome(cdr_id, status, cost, number, fac_hmac, went_negative)
