"""CDR intake: store every CDR once; price and charge it only the first time it is seen.

Which CDR is charged: the one whose call uuid holds a reservation (made at authorize
time). A CDR without one (internal call, hook disabled, fail-open) is charged only when it is
the inbound A leg of a call none of whose linked legs holds a reservation, and the identity
rule (sidecar/identity.py, the same as at authorization) names an account from the facts in
its variables; otherwise it is stored unrated / not billed.

Numbers are normalized by the switch's rules, then the plan's (the destination of a
reserved call is the one authorization rated); the call is priced in spans across rate
changes (``sidecar.services.pricing``), stored with the CDR in the same statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

from sidecar.freeswitch.xml_cdr import CdrRecord
from sidecar.identity import UNIDENTIFIED, Trunk
from sidecar.rating import NumberRule, apply_rules
from sidecar.repo import cdrs as cdrs_repo
from sidecar.repo import reservations as reservations_repo
from sidecar.services import pricing
from sidecar.services.alerts import check_low_balance, crossed
from sidecar.services.caller_identity import load_trunks, who_pays
from sidecar.services.numbering import FREESWITCH, caller_forms
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


class _Trunks:
    """The declared trunks, loaded at most once per batch, and only if a CDR needs them."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self._loaded: tuple[Trunk, ...] | None = None

    def get(self) -> tuple[Trunk, ...]:
        if self._loaded is None:
            self._loaded = load_trunks(self._conn)
        return self._loaded


def _who_pays(
    conn: psycopg.Connection[Any],
    record: CdrRecord,
    reservation: dict[str, Any] | None,
    holder: dict[str, Any] | None,
    trunks: _Trunks,
    caller_rules: tuple[NumberRule, ...] = (),
) -> tuple[dict[str, Any] | None, str, str]:
    """(account that pays or None, status when nobody pays, note). ``holder`` is the
    account holding ``reservation``."""
    if reservation is not None:
        return holder, "", ""
    if record.leg != "a" or record.direction != "inbound":
        return (
            None,
            "not_billed",
            f"{record.leg}-leg {record.direction}: billed on the call's A leg",
        )
    linked = reservations_repo.any_for_calls(conn, list(record.linked_uuids))
    if linked is not None:
        return None, "not_billed", f"leg of reserved call {linked}"
    facts = record.facts
    forms = caller_forms(facts.caller_id, caller_rules)[1:]
    who = who_pays(conn, facts, trunks=trunks.get() if facts.network_ip else (), caller_forms=forms)
    if who.account is None or who.candidate is None:
        if who.reason == UNIDENTIFIED:
            return None, "unrated", "unidentified caller: no accountcode, mapped SIP user or trunk"
        named = ", ".join(c.describe() for c in who.candidates)
        return None, "unrated", f"no account matches the caller ({named})"
    by = who.candidate.describe()
    return who.account, "", f"not authorized by Apolo; rated after the fact ({by})"


def ingest(
    conn: psycopg.Connection[Any],
    catalog: RateCatalog,
    record: CdrRecord,
    raw_xml: str | None,
    source: str = "freeswitch",
) -> IngestResult:
    return ingest_many(conn, catalog, [(record, raw_xml)], source)[0]


def ingest_many(
    conn: psycopg.Connection[Any],
    catalog: RateCatalog,
    arrivals: Sequence[tuple[CdrRecord, str | None]],
    source: str = "freeswitch",
    actor: str = "freeswitch",
) -> list[IngestResult]:
    """Ingest CDRs (with their raw documents), one result each, in order.

    Decides from one unlocked read of every CDR's context, then stores and settles them all
    in one statement that takes the locks (``apolo_settle_cdrs``): two round trips for a
    reserved call's CDR or for a batch of them, one for a retry. What the decision reads
    does not change under it: a reservation's account and callee are fixed, and a
    concurrent twin of a CDR is caught by the insert. The caller commits.
    """
    contexts = cdrs_repo.intake_contexts(conn, [(r.uuid, r.leg) for r, _ in arrivals])
    trunks = _Trunks(conn)
    results: list[IngestResult | None] = [None] * len(arrivals)
    rows: list[dict[str, Any]] = []
    slots: list[int] = []
    for n, ((record, raw_xml), context) in enumerate(zip(arrivals, contexts, strict=True)):
        if context.stored is not None:  # a retry or a replay: what the first arrival decided
            results[n] = _duplicate(context.stored, record.uuid)
        else:
            rows.append(_decide(conn, catalog, record, raw_xml, context, source, trunks))
            slots.append(n)
    settled_rows = cdrs_repo.settle(conn, rows, actor) if rows else []
    twins: list[int] = []
    for n, row, settled in zip(slots, rows, settled_rows, strict=True):
        if settled is None:  # stored first by a concurrent twin or an earlier row of the batch
            twins.append(n)
            continue
        status = str(row["billing_status"])
        before, after = settled["balance_before"], settled["balance_after"]
        if status == "charged" and crossed(settled["low_balance_threshold"], before, after):
            check_low_balance(conn, int(row["account_id"]), Decimal(before), Decimal(after))
        cost = ZERO if row["cost"] is None else Decimal(row["cost"])
        results[n] = IngestResult(int(settled["cdr_id"]), False, status, cost,
                                  settled["account"], arrivals[n][0].uuid)  # fmt: skip
    if twins:  # a new statement: it sees what a concurrent twin committed meanwhile
        legs = [(arrivals[n][0].uuid, arrivals[n][0].leg) for n in twins]
        for n, context in zip(twins, cdrs_repo.intake_contexts(conn, legs), strict=True):
            assert context.stored is not None, "a CDR neither stored nor already there"
            results[n] = _duplicate(context.stored, arrivals[n][0].uuid)
    return [r for r in results if r is not None]


def _decide(
    conn: psycopg.Connection[Any],
    catalog: RateCatalog,
    record: CdrRecord,
    raw_xml: str | None,
    context: cdrs_repo.IntakeContext,
    source: str,
    trunks: _Trunks,
) -> dict[str, Any]:
    """The CDR's row as it will be stored: who pays, at what rate, for how much."""
    reservation = context.reservation
    callee_rules, caller_rules = catalog.source_rules(FREESWITCH, record.switchname)
    account, unpaid_status, note = _who_pays(
        conn, record, reservation, context.account, trunks, caller_rules
    )
    rating = None if account is None else catalog.rating(int(account["plan_id"]))
    if rating is not None:
        callee_rules += rating.callee_rules
        caller_rules += rating.caller_rules
    if reservation and reservation["callee"]:
        destination = str(reservation["callee"])  # as authorization normalized and rated it
    else:
        destination = apply_rules(record.callee, callee_rules)

    notes = [note] if note else []
    priced = None
    cost = ZERO
    if rating is None:
        status = unpaid_status
    elif record.billsec == 0 or record.answer_at is None:
        status = "unanswered"
    else:
        priced = pricing.price(rating, destination, record.answer_at, record.billsec)
        if priced is None:
            status = "unrated"
            notes.append("no rate for the destination at answer time")
        else:
            status = "charged"
            cost = priced.charge.cost
            notes.extend(pricing.notes(priced))
    notes.extend(_cross_check(record, reservation))
    if record.flagged:  # stored and settled all the same: refusing would poison the spool
        notes.append(f"NUL byte in {', '.join(record.flagged)}: not used (raw_xml keeps it)")
    if reservation and status == "charged" and cost > Decimal(reservation["amount"]):
        notes.append(f"cost exceeds the reservation of {reservation['amount']}")

    return {
        "source": source,
        "call_uuid": record.uuid,
        "leg": record.leg,
        "core_uuid": record.core_uuid,
        "switchname": record.switchname,
        "direction": record.direction,
        "caller": record.caller,
        "callee": record.callee,
        "caller_normalized": apply_rules(record.caller, caller_rules) if record.caller else None,
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
        **pricing.cdr_fields(priced),
        "cost": cost if status == "charged" else None,
        "billing_status": status,
        "billing_note": "; ".join(notes) or None,
        "linked_uuids": record.linked_uuids,
        "apolo_vars": record.apolo_vars,
        "raw_xml": raw_xml,
    }  # charged at 0.0000 still gets its ledger row: one row per charge


def _duplicate(known: dict[str, Any], uuid: str) -> IngestResult:
    cost = ZERO if known["cost"] is None else Decimal(known["cost"])
    return IngestResult(
        int(known["id"]), True, known["billing_status"], cost, known["account"], uuid
    )


def _cross_check(record: CdrRecord, reservation: dict[str, Any] | None) -> list[str]:
    claimed = record.apolo_vars.get("apolo_reservation_id")
    if reservation is None:
        if record.apolo_vars.get("apolo_result") == "authorized":
            return ["channel says authorized but no reservation holds its uuid"]
        return []
    if claimed and claimed != str(reservation["id"]):
        return [f"channel names reservation {claimed}, uuid holds {reservation['id']}"]
    return []
