"""Authorization: find who pays (sidecar/identity.py), rate the destination, reserve money
atomically.

The destination is normalized by the switch's and the plan's rules and rated through the
plan's fallback chain; ``max_duration`` is computed across the rate changes the next
``APOLO_RESERVATION_SECONDS`` hold (presuming the call is answered now: ``apolo control``
recomputes it at the real answer)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from sidecar.config import Settings
from sidecar.freeswitch.commands import sched_hangup_seconds
from sidecar.identity import UNIDENTIFIED, CallerFacts, Candidate
from sidecar.rating import Rate, apply_rules
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import reservations as reservations_repo
from sidecar.services.account_directory import AccountDirectory
from sidecar.services.caller_identity import who_pays
from sidecar.services.numbering import FREESWITCH, caller_forms
from sidecar.services.rate_catalog import RateCatalog

REASONS = (
    "authorized",
    UNIDENTIFIED,
    "account_not_found",
    "account_suspended",
    "no_rate",
    "insufficient_balance",
    "concurrent_limit",
    "call_cost_cap",
    "duplicate_call",
    # fraud controls, decided inside apolo_reserve() (sql/009_fraud_controls.sql)
    "destination_denied",
    "calls_per_minute",
    "daily_spend_limit",
)


@dataclass(frozen=True)
class AuthorizeRequest:
    uuid: str
    caller: str
    callee: str
    # who is calling, as FreeSWITCH saw it; None: only the caller ID (identifies nobody)
    facts: CallerFacts | None = None
    switch: str | None = None  # the FreeSWITCH switch name: whose normalization rules apply

    @property
    def caller_facts(self) -> CallerFacts:
        return self.facts if self.facts is not None else CallerFacts(caller_id=self.caller)


@dataclass(frozen=True)
class AuthorizeResult:
    authorized: bool
    reason: str
    uuid: str
    account: str | None = None
    max_duration: int = 0
    rate: Rate | None = None
    reservation_id: int | None = None
    reserved: Decimal | None = None
    identified_by: Candidate | None = None
    destination: str | None = None  # the callee as rated (E.164 digits)

    @property
    def sched_hangup_seconds(self) -> int | None:
        return sched_hangup_seconds(self.max_duration) if self.authorized else None

    def as_json(self) -> dict[str, Any]:
        return {
            "authorized": self.authorized,
            "reason": self.reason,
            "uuid": self.uuid,
            "account": self.account,
            "max_duration": self.max_duration,
            "sched_hangup_seconds": self.sched_hangup_seconds,
            "rate": self.rate.summary() if self.rate else None,
            "reservation_id": self.reservation_id,
            "reserved": None if self.reserved is None else str(self.reserved),
            "identified_by": _identified_by(self.identified_by),
            "destination": self.destination,
        }


def _identified_by(candidate: Candidate | None) -> dict[str, str | None] | None:
    if candidate is None:
        return None
    return {"rule": candidate.rule, "trunk": candidate.trunk}


def authorize(
    conn: psycopg.Connection[Any],
    catalog: RateCatalog,
    settings: Settings,
    req: AuthorizeRequest,
    now: datetime,
    directory: AccountDirectory | None = None,
) -> AuthorizeResult:
    callee_rules, caller_rules = catalog.source_rules(FREESWITCH, req.switch)
    facts = req.caller_facts
    # the caller ID's other forms count only where the caller ID does (a trusting trunk)
    forms = caller_forms(facts.caller_id, caller_rules)[1:]
    # cached while the watcher listens: no round trip
    who = who_pays(conn, facts, directory, trusted=catalog.listening, caller_forms=forms)
    account, by = who.account, who.candidate
    if account is None:
        return AuthorizeResult(False, who.reason, req.uuid)
    number = account["number"]
    if account["status"] != "active":
        return AuthorizeResult(False, "account_suspended", req.uuid, number)
    rating = catalog.rating(int(account["plan_id"]))
    callee = apply_rules(req.callee, callee_rules + rating.callee_rules)
    seconds = settings.reservation_seconds
    schedule = rating.schedule(callee, now, seconds)
    if schedule is None:
        return AuthorizeResult(False, "no_rate", req.uuid, number, destination=callee)
    rate = schedule.first

    # the dearest call the reservation may have to pay (a later, cheaper span can make a
    # longer call cheaper), and the least it must cover: the shortest call that is charged
    want, minimum = schedule.max_cost(seconds), schedule.shortest_charge()
    # per-call spending cap (max_call_cost of the account or its plan): the reservation, and so
    # the scheduled hangup, never pays for more than the cap; extensions respect it too
    cap = account["call_cap"]
    if cap is not None:
        if cap < minimum:
            return AuthorizeResult(
                False, "call_cost_cap", req.uuid, number, rate=rate, destination=callee
            )
        want = min(want, cap)
    grace = timedelta(seconds=settings.reservation_grace_seconds)
    reserved = accounts_repo.reserve(
        conn,
        account_id=int(account["id"]),
        call_uuid=req.uuid,
        want=want,
        minimum=minimum,
        seconds=seconds,
        grace=grace,
        rate_id=rate.id,
        caller=req.caller,
        callee=callee,
    )
    reason = reserved["reason"]
    if reason == "account_not_found" and directory is not None:
        # the cache named an account deleted (and maybe recreated) before the announcement
        # reached this worker: forget it and ask the database
        directory.invalidate()
        return authorize(conn, catalog, settings, req, now)
    if reason != "authorized":  # duplicate_call: the uuid holds another account's reservation
        return AuthorizeResult(False, reason, req.uuid, number, rate=rate, destination=callee)
    amount = Decimal(reserved["amount"])
    max_duration = schedule.max_duration(amount, seconds)
    if schedule.changes and 0 < amount < want and max_duration * want > seconds * amount:
        # apolo_reserve() holds a partial reservation for seconds * amount / want of talk,
        # which a cheaper later span can outlast: hold it for the talk it really pays for
        reservations_repo.hold_for(conn, int(reserved["reservation_id"]), max_duration, grace)
    return AuthorizeResult(
        True,
        "authorized",
        req.uuid,
        number,
        max_duration,
        rate,
        int(reserved["reservation_id"]),
        amount,
        identified_by=by,
        destination=callee,
    )
