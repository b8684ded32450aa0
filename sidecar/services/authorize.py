"""Authorization: find who pays (sidecar/identity.py), rate the destination, reserve money
atomically."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from sidecar.config import Settings
from sidecar.freeswitch.commands import sched_hangup_seconds
from sidecar.identity import UNIDENTIFIED, CallerFacts, Candidate
from sidecar.rating import Rate, call_cost, max_duration_for, normalize_number
from sidecar.repo import accounts as accounts_repo
from sidecar.services.account_directory import AccountDirectory
from sidecar.services.caller_identity import who_pays
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
    # cached while the watcher listens: no round trip
    who = who_pays(conn, req.caller_facts, directory, trusted=catalog.listening)
    account, by = who.account, who.candidate
    if account is None:
        return AuthorizeResult(False, who.reason, req.uuid)
    number = account["number"]
    if account["status"] != "active":
        return AuthorizeResult(False, "account_suspended", req.uuid, number)
    rate = catalog.index(int(account["plan_id"])).lookup(normalize_number(req.callee), now)
    if rate is None:
        return AuthorizeResult(False, "no_rate", req.uuid, number)

    seconds = settings.reservation_seconds
    want, minimum = call_cost(rate, seconds), call_cost(rate, 1)
    # per-call spending cap (max_call_cost of the account or its plan): the reservation, and so
    # the scheduled hangup, never pays for more than the cap; extensions respect it too
    cap = account["call_cap"]
    if cap is not None:
        if cap < minimum:
            return AuthorizeResult(False, "call_cost_cap", req.uuid, number, rate=rate)
        want = min(want, cap)
    reserved = accounts_repo.reserve(
        conn,
        account_id=int(account["id"]),
        call_uuid=req.uuid,
        want=want,
        minimum=minimum,
        seconds=seconds,
        grace=timedelta(seconds=settings.reservation_grace_seconds),
        rate_id=rate.id,
        caller=req.caller,
        callee=normalize_number(req.callee),
    )
    reason = reserved["reason"]
    if reason == "account_not_found" and directory is not None:
        # the cache named an account deleted (and maybe recreated) before the announcement
        # reached this worker: forget it and ask the database
        directory.invalidate()
        return authorize(conn, catalog, settings, req, now)
    if reason == "duplicate_call":  # the uuid already holds another account's reservation
        return AuthorizeResult(False, "duplicate_call", req.uuid, number, rate=rate)
    if reason != "authorized":
        return AuthorizeResult(False, reason, req.uuid, number, rate=rate)
    amount = Decimal(reserved["amount"])
    max_duration = max_duration_for(rate, amount, seconds)
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
    )
