"""Billing of one CUCM CDR row: account (FAC, else ANI), rate, charge, low-balance flag.

A row with a Forced Authorization Code is charged to that code's account only; an
unregistered code is flagged (``unrated``, ``fac_unknown``) and alerted (``unknown_fac``),
never charged by its authCodeDescription nor by the caller.

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
from sidecar.cucm.fac_code import code_hmac, masked
from sidecar.cucm.records import CdrRecord
from sidecar.rating import NumberRule, apply_rules
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import audit
from sidecar.repo import cdrs as cdrs_repo
from sidecar.repo import fac as fac_repo
from sidecar.repo import fraud as fraud_repo
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


@dataclass(frozen=True)
class Payer:
    account: dict[str, Any] | None
    notes: list[str]
    unknown_fac: bool = False  # the row used a FAC no registered code (or name) matches


def _fac_shown(fac: Fac) -> str:
    if fac.code:
        return masked(fac.code)
    return repr(fac.description) if fac.description else "(code only, carried over)"


def _payer(
    conn: psycopg.Connection[Any],
    record: CdrRecord,
    fac: Fac | None,
    fac_hmac: str | None,
    caller_rules: tuple[NumberRule, ...] = (),
) -> Payer:
    """A FAC call is charged to its code's account, never to anyone else: an unknown code is
    flagged (not charged, alerted), not charged by the caller or by authCodeDescription.
    The FAC name is used only when the row carries no code at all."""
    if fac is None:
        for caller in caller_forms(record.calling, caller_rules):  # as sent, then E.164 forms
            found = accounts_repo.find_for_call(conn, None, caller)
            if found is not None:
                return Payer(found, [])
        return Payer(None, [])
    found = fac_repo.account_for(conn, fac_hmac, fac.description)
    if found is None:
        return Payer(None, [f"FAC {_fac_shown(fac)} is not registered: not charged, alerted"
                            " (register it with `apolo cucm fac create`)"], True)  # fmt: skip
    carried = "" if fac.from_pkid == record.pkid else f" carried over from {fac.from_pkid}"
    how = "" if fac_hmac else " by name (the row carries no code)"
    return Payer(found, [f"FAC {found['fac_name']!r}{how}{carried}"])


def _alert_unknown_fac(
    conn: psycopg.Connection[Any], record: CdrRecord, fac: Fac, fac_hmac: str | None, cdr_id: int
) -> None:
    subject = fac_hmac or f"name:{fac.description}"
    shown = masked(fac.code) if fac.code else None
    fraud_repo.raise_event(
        conn,
        "unknown_fac",
        account_id=None,
        subject=subject,
        target=f"fac:{shown or fac.description or subject[:12]}",
        actor=ACTOR,
        detail={
            "pkid": record.pkid,
            "cdr_id": cdr_id,
            "fac": shown,
            "description": fac.description or None,
            "calling": record.calling,
            "called": record.final_called,
            "dest_device": record.dest_device,
            "duration": record.duration,
        },
    )


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
    unknown_fac = False
    if not ok:
        status = "not_billed"
        notes.append(why_not)
    else:
        payer = _payer(conn, record, fac, fac_hmac, caller_rules)
        account, notes, unknown_fac = payer.account, payer.notes, payer.unknown_fac
        if account is None:
            status = "unrated"
            if not unknown_fac:
                notes.append("no account matches the calling number")
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
            "apolo_vars": {**extra_vars, "fac_unknown": True} if unknown_fac else extra_vars,
        },
    )
    number = None if account is None else str(account["number"])
    if cdr_id is None:
        return RowOutcome(None, status, ZERO, number, fac_hmac)
    if unknown_fac and fac is not None:
        _alert_unknown_fac(conn, record, fac, fac_hmac, cdr_id)
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
