"""CDR intake: store every CDR once; price and charge it only the first time it is seen.

Which CDR is charged: the one whose call uuid holds a reservation (made at authorize
time). A CDR without one (internal call, hook disabled) is charged only when it is the
inbound A leg of a call none of whose linked legs holds a reservation, and its caller
(or account code) matches an account; otherwise it is stored unrated / not billed.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

from sidecar.freeswitch.xml_cdr import CdrRecord
from sidecar.rating import Rate, billed_seconds, call_cost, normalize_number
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import cdrs as cdrs_repo
from sidecar.repo import reservations as reservations_repo
from sidecar.services.alerts import check_low_balance
from sidecar.services.rate_catalog import RateCatalog

ZERO = Decimal("0.0000")


@dataclass(frozen=True)
class IngestResult:
    cdr_id: int | None
    duplicate: bool
    billing_status: str
    cost: Decimal
    account: str | None
    uuid: str


def _who_pays(
    conn: psycopg.Connection[Any], record: CdrRecord, reservation: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, str, str]:
    """(account that pays or None, status when nobody pays, note)."""
    if reservation is not None:
        return accounts_repo.get_by_id(conn, int(reservation["account_id"])), "", ""
    if record.leg != "a" or record.direction != "inbound":
        return (
            None,
            "not_billed",
            f"{record.leg}-leg {record.direction}: billed on the call's A leg",
        )
    linked = reservations_repo.any_for_calls(conn, list(record.linked_uuids))
    if linked is not None:
        return None, "not_billed", f"leg of reserved call {linked}"
    account = None
    if record.account_code:
        account = accounts_repo.find_for_call(conn, record.account_code, "")
    if account is None:
        account = accounts_repo.find_for_call(conn, None, record.caller)
    if account is None:
        return None, "unrated", "no account matches the caller"
    return account, "", "not authorized by Apolo; rated after the fact"


def ingest(
    conn: psycopg.Connection[Any],
    catalog: RateCatalog,
    record: CdrRecord,
    raw_xml: str | None,
    source: str = "freeswitch",
) -> IngestResult:
    known = cdrs_repo.stored(conn, record.uuid, record.leg)
    if known is not None:  # a retry or a replay: answer what the first arrival decided
        return _duplicate(known, record.uuid)
    reservation = reservations_repo.for_call(conn, record.uuid)
    account, unpaid_status, note = _who_pays(conn, record, reservation)
    if account is not None:
        accounts_repo.lock(conn, int(account["id"]))  # account first, then its reservation
        if reservation is not None:
            reservation = reservations_repo.for_call(conn, record.uuid, lock=True)

    destination = normalize_number(
        reservation["callee"] if reservation and reservation["callee"] else record.callee
    )
    notes = [note] if note else []
    rate = None
    cost = ZERO
    if account is None:
        status = unpaid_status
    elif record.billsec == 0 or record.answer_at is None:
        status = "unanswered"
    else:
        rate = catalog.index(int(account["plan_id"])).lookup(destination, record.answer_at)
        if rate is None:
            status = "unrated"
            notes.append("no rate for the destination at answer time")
        else:
            status = "charged"
            cost = call_cost(rate, record.billsec)
    notes.extend(_cross_check(record, reservation))
    if reservation and status == "charged" and cost > Decimal(reservation["amount"]):
        notes.append(f"cost exceeds the reservation of {reservation['amount']}")

    cdr_id = cdrs_repo.insert_new(
        conn,
        {
            "source": source,
            "call_uuid": record.uuid,
            "leg": record.leg,
            "core_uuid": record.core_uuid,
            "switchname": record.switchname,
            "direction": record.direction,
            "caller": record.caller,
            "callee": record.callee,
            "destination": destination,
            "account_id": None if account is None else int(account["id"]),
            "reservation_id": None if reservation is None else int(reservation["id"]),
            "start_at": record.start_at,
            "answer_at": record.answer_at,
            "end_at": record.end_at,
            "billusec": record.billusec,
            "billsec": record.billsec,
            "fs_billsec": record.fs_billsec,
            "hangup_cause": record.hangup_cause,
            "hangup_cause_q850": record.hangup_cause_q850,
            "rate_id": None if rate is None else rate.id,
            "rate_prefix": None if rate is None else rate.prefix,
            "rate_per_minute": None if rate is None else rate.rate_per_minute,
            "connection_fee": None if rate is None else rate.connection_fee,
            "billed_seconds": None if rate is None else _billed(rate, record.billsec),
            "cost": cost if status == "charged" else None,
            "billing_status": status,
            "billing_note": "; ".join(notes) or None,
            "linked_uuids": record.linked_uuids,
            "apolo_vars": record.apolo_vars,
            "raw_xml": raw_xml,
        },
    )
    if cdr_id is None:  # a concurrent arrival of the same CDR committed first
        known = cdrs_repo.stored(conn, record.uuid, record.leg)
        assert known is not None
        return _duplicate(known, record.uuid)
    number = None if account is None else str(account["number"])

    _settle(conn, account, reservation, status, cost, cdr_id)
    return IngestResult(cdr_id, False, status, cost, number, record.uuid)


def _duplicate(known: dict[str, Any], uuid: str) -> IngestResult:
    cost = ZERO if known["cost"] is None else Decimal(known["cost"])
    return IngestResult(
        int(known["id"]), True, known["billing_status"], cost, known["account"], uuid
    )


def _settle(
    conn: psycopg.Connection[Any],
    account: dict[str, Any] | None,
    reservation: dict[str, Any] | None,
    status: str,
    cost: Decimal,
    cdr_id: int,
) -> None:
    if account is None:
        return
    account_id = int(account["id"])
    is_open = reservation is not None and reservation["status"] == "open"
    held = Decimal(reservation["amount"]) if is_open and reservation else ZERO
    calls = 1 if is_open else 0
    reservation_id = None if reservation is None else int(reservation["id"])
    if status == "charged":  # a 0.0000 charge still gets its ledger row: one row per charge
        after = accounts_repo.move_balance(
            conn,
            account_id,
            -cost,
            kind="call_charge",
            actor="freeswitch",
            note=f"call {reservation['call_uuid'] if reservation else ''}".strip(),
            cdr_id=cdr_id,
            reservation_id=reservation_id,
            release_reserved=held,
            release_calls=calls,
        )
        check_low_balance(conn, account_id, after + cost, after)
    elif is_open:
        accounts_repo.release(conn, account_id, held, calls)
    if is_open and reservation_id is not None:
        closed = "charged" if status == "charged" else "released"
        reservations_repo.close(conn, reservation_id, closed, f"CDR {cdr_id} {status}")


def _billed(rate: Rate, billsec: int) -> int:
    return billed_seconds(billsec, rate.initial_increment, rate.increment)


def _cross_check(record: CdrRecord, reservation: dict[str, Any] | None) -> list[str]:
    claimed = record.apolo_vars.get("apolo_reservation_id")
    if reservation is None:
        if record.apolo_vars.get("apolo_result") == "authorized":
            return ["channel says authorized but no reservation holds its uuid"]
        return []
    if claimed and claimed != str(reservation["id"]):
        return [f"channel names reservation {claimed}, uuid holds {reservation['id']}"]
    return []
