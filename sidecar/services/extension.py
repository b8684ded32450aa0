"""Extend a live call's reservation by one block if its account can pay (one transaction).

The caller commits; this module never does. Money stays Decimal end to end; the paid time
is the longest billsec the reservation pays for, across the rate changes the call meets
from its answer on (the call's schedule, built from its plan's chain and the rates that
can price its destination, read from the database).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg

from sidecar.control.decide import Policy, plan_extension
from sidecar.rating import PlanMeta, RateIndex, Rating, Schedule
from sidecar.repo import control as control_repo
from sidecar.repo import rates as rates_repo


@dataclass(frozen=True)
class Extension:
    extended: bool
    reason: str
    paid_seconds: int
    amount: Decimal
    added: Decimal = Decimal(0)


@dataclass(frozen=True)
class PaidTime:
    seconds: int
    # a rate may change between authorization and the end of the paid time: the paid time
    # computed at answer may differ from the one the switch was given at authorization
    moved: bool


def call_rating(conn: psycopg.Connection[Any], plan_id: int, number: str) -> Rating:
    """The plan's chain, each plan reduced to the rates that can price ``number``."""
    indexes = []
    for plan in rates_repo.plan_chain(conn, plan_id) or [plan_id]:
        meta = PlanMeta.from_json(rates_repo.plan_meta(conn, plan))
        indexes.append(
            RateIndex.from_rows(rates_repo.candidate_rows(conn, plan, number), meta=meta)
        )
    return Rating(indexes)


def _schedule(
    conn: psycopg.Connection[Any], res: dict[str, Any], answered: datetime, seconds: int
) -> tuple[Schedule | None, Rating | None]:
    callee, plan_id = res.get("callee"), res.get("plan_id")
    if plan_id is None:
        plan_id = control_repo.plan_of_account(conn, int(res["account_id"]))
    rating = None
    if callee and plan_id is not None:
        rating = call_rating(conn, int(plan_id), str(callee))
        schedule = rating.schedule(str(callee), answered, seconds)
        if schedule is not None:
            return schedule, rating
    # no rate applies any more (or no destination kept): the reservation's rate from answer
    rate = None if res["rate_id"] is None else control_repo.rate_by_id(conn, int(res["rate_id"]))
    return (None if rate is None else Schedule(answered, rate)), rating


def _answered(res: dict[str, Any]) -> datetime:
    return res.get("answered_at") or datetime.now(UTC)


def extend_call(
    conn: psycopg.Connection[Any],
    call_uuid: str,
    paid_seconds: int,
    policy: Policy,
    grace: timedelta,
) -> Extension:
    res = control_repo.reservation_for_control(conn, call_uuid)
    if res is None:
        return Extension(False, "reservation_not_found", paid_seconds, Decimal(0))
    amount = Decimal(res["amount"])
    if res["status"] != "open":
        return Extension(False, "reservation_closed", paid_seconds, amount)
    schedule, _ = _schedule(conn, res, _answered(res), policy.max_call_seconds)
    if schedule is None:
        return Extension(False, "no_rate", paid_seconds, amount)
    plan = plan_extension(
        schedule, paid_seconds, policy, control_repo.call_cap(conn, int(res["account_id"]))
    )
    if plan is None:
        reason = "max_call_seconds" if paid_seconds >= policy.max_call_seconds else "call_cost_cap"
        return Extension(False, reason, paid_seconds, amount)
    row = control_repo.extend(
        conn,
        call_uuid,
        want_total=plan.want_total,
        min_total=plan.min_total,
        seconds=plan.target_seconds,
        grace=grace,
    )
    total = Decimal(row["amount"]) if row["amount"] is not None else amount
    if row["reason"] != "extended":
        return Extension(False, str(row["reason"]), paid_seconds, total)
    paid = max(paid_seconds, schedule.max_duration(total, plan.target_seconds))
    control_repo.set_max_duration(conn, int(row["reservation_id"]), paid)
    return Extension(paid > paid_seconds, "extended", paid, total, Decimal(row["added"]))


def paid_time(
    conn: psycopg.Connection[Any],
    reservation: dict[str, Any],
    block_seconds: int,
    answered_at: datetime | None = None,
) -> PaidTime | None:
    """Store and return the talk time ``reservation`` pays for from ``answered_at`` (its
    stored answer time, else now), across the rate changes the call meets."""
    answered = answered_at or _answered(reservation)
    schedule, rating = _schedule(conn, reservation, answered, block_seconds)
    if schedule is None:
        return None
    seconds = schedule.max_duration(Decimal(reservation["amount"]), block_seconds)
    control_repo.set_max_duration(conn, int(reservation["id"]), seconds)
    authorized = reservation.get("created_at") or answered
    moved = rating is not None and not rating.steady(
        min(authorized, answered), answered + timedelta(seconds=block_seconds)
    )
    return PaidTime(seconds, moved)


def paid_seconds(
    conn: psycopg.Connection[Any], reservation: dict[str, Any], block_seconds: int
) -> int | None:
    """Store and return the talk time ``reservation`` pays for (``paid_time``)."""
    found = paid_time(conn, reservation, block_seconds)
    return None if found is None else found.seconds
