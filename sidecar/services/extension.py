"""Extend a live call's reservation by one block if its account can pay (one transaction).

The caller commits; this module never does. Money stays Decimal end to end; the new paid
time is the longest billsec the grown reservation pays for (``max_duration_for``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg

from sidecar.control.decide import Policy, plan_extension
from sidecar.rating import max_duration_for
from sidecar.repo import control as control_repo


@dataclass(frozen=True)
class Extension:
    extended: bool
    reason: str
    paid_seconds: int
    amount: Decimal
    added: Decimal = Decimal(0)


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
    rate = None if res["rate_id"] is None else control_repo.rate_by_id(conn, int(res["rate_id"]))
    if rate is None:
        return Extension(False, "no_rate", paid_seconds, amount)
    plan = plan_extension(
        rate, paid_seconds, policy, control_repo.call_cap(conn, int(res["account_id"]))
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
    paid = max(paid_seconds, max_duration_for(rate, total, plan.target_seconds))
    control_repo.set_max_duration(conn, int(row["reservation_id"]), paid)
    return Extension(paid > paid_seconds, "extended", paid, total, Decimal(row["added"]))


def paid_seconds(
    conn: psycopg.Connection[Any], reservation: dict[str, Any], block_seconds: int
) -> int | None:
    """Store and return the talk time ``reservation`` pays for (its rate, its amount)."""
    rate_id = reservation["rate_id"]
    rate = control_repo.rate_by_id(conn, int(rate_id)) if rate_id else None
    if rate is None:
        return None
    seconds = max_duration_for(rate, Decimal(reservation["amount"]), block_seconds)
    control_repo.set_max_duration(conn, int(reservation["id"]), seconds)
    return seconds
