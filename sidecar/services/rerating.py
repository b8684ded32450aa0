"""Rerating: re-price charged CDRs with the rates now in effect at each CDR's answer time.

Scope: CDRs with ``billing_status = 'charged'`` answered in ``[from, to)``, optionally
of one account or of the accounts on one plan; each is priced with its account's
**current** plan and its fallback chain (timings, time zone, minimum charge, free
seconds included), read in the run's own transaction (not the per-worker cache, so a fix
committed a moment ago is seen), and split again at the rate boundaries now in force. The
destination is the one stored (normalized when the call was rated). A CDR for which no
rate is in effect any more is listed as ``no_rate`` and left as it is.

Applying writes **one ledger ``adjustment`` row per changed CDR** (``cdr_id`` set, amount =
old cost - new cost, so a price cut credits the account), updates the CDR's cost and rate
fields, and stores the run with every item's old and new cost; all in the caller's
transaction, after locking the accounts of the range in id order. It is idempotent: a
second run with the same rates finds every cost already equal and changes nothing.
Balance drops it causes go through the low-balance check like a call charge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from sidecar.jsonfmt import rfc3339
from sidecar.rating import PlanMeta, Rate, RateIndex, Rating
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import audit
from sidecar.repo import rates as rates_repo
from sidecar.repo import rerating as rerating_repo
from sidecar.services import pricing
from sidecar.services.alerts import check_low_balance

ZERO = Decimal("0.0000")
PREVIEW_ITEMS = 1000


@dataclass(frozen=True, slots=True)
class Change:
    cdr_id: int
    call_uuid: str
    account_id: int
    account: str
    old_cost: Decimal
    new_cost: Decimal
    old_rate_id: int | None
    priced: pricing.Priced | None  # None: no rate in effect any more (left unchanged)
    billsec: int

    @property
    def rate(self) -> Rate | None:
        return None if self.priced is None else self.priced.rate

    @property
    def delta(self) -> Decimal:
        """What the account is charged in addition (negative: credited back)."""
        return ZERO if self.rate is None else self.new_cost - self.old_cost

    def as_dict(self) -> dict[str, object]:
        return {
            "cdr_id": self.cdr_id,
            "call_uuid": self.call_uuid,
            "account": self.account,
            "old_cost": str(self.old_cost),
            "new_cost": None if self.rate is None else str(self.new_cost),
            "delta": str(self.delta),
            "old_rate_id": self.old_rate_id,
            "new_rate_id": None if self.rate is None else self.rate.id,
            "status": "no_rate" if self.rate is None else "changed",
        }


def changes(cdrs: Iterable[Mapping[str, Any]], rating_for: Callable[[int], Rating]) -> list[Change]:
    """The CDRs whose price, rate or spans differ now, plus those with no rate any more."""
    found: list[Change] = []
    for cdr in cdrs:
        old = Decimal(cdr["cost"] or 0)
        priced = pricing.price(
            rating_for(int(cdr["plan_id"])), cdr["destination"] or "", cdr["answer_at"],
            int(cdr["billsec"]),
        )  # fmt: skip
        new = old if priced is None else priced.charge.cost
        old_rate = None if cdr["rate_id"] is None else int(cdr["rate_id"])
        if priced is not None and new == old and priced.rate.id == old_rate:
            # a CDR stored before spans were kept is compared on cost and rate only
            if cdr["spans"] is None or pricing.spans_json(priced.charge) == cdr["spans"]:
                continue
        found.append(
            Change(
                int(cdr["id"]),
                str(cdr["call_uuid"]),
                int(cdr["account_id"]),
                str(cdr["account"]),
                old,
                new,
                old_rate,
                priced,
                int(cdr["billsec"]),
            )
        )
    return found


def account_totals(found: Iterable[Change]) -> dict[str, dict[str, object]]:
    sums: dict[str, tuple[int, Decimal, Decimal, Decimal]] = {}
    for change in found:
        if change.rate is None:
            continue
        n, old, new, delta = sums.get(change.account, (0, ZERO, ZERO, ZERO))
        sums[change.account] = (
            n + 1, old + change.old_cost, new + change.new_cost, delta + change.delta,
        )  # fmt: skip
    return {
        account: {"cdrs": n, "old_cost": str(o), "new_cost": str(w), "delta": str(d)}
        for account, (n, o, w, d) in sorted(sums.items())
    }


@dataclass(frozen=True)
class Scope:
    start: datetime
    end: datetime
    plan_id: int | None = None
    account_id: int | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "from": rfc3339(self.start),
            "to": rfc3339(self.end),
            "plan_id": self.plan_id,
            "account_id": self.account_id,
        }


def _compute(conn: psycopg.Connection[Any], scope: Scope) -> list[Change]:
    indexes: dict[int, RateIndex] = {}
    ratings: dict[int, Rating] = {}

    def index_for(plan_id: int) -> RateIndex:
        if plan_id not in indexes:
            meta = PlanMeta.from_json(rates_repo.plan_meta(conn, plan_id))
            rows = rerating_repo.plan_rate_rows(conn, plan_id)
            indexes[plan_id] = RateIndex.from_rows(rows, meta=meta)
        return indexes[plan_id]

    def rating_for(plan_id: int) -> Rating:
        if plan_id not in ratings:
            chain = rates_repo.plan_chain(conn, plan_id) or [plan_id]
            ratings[plan_id] = Rating([index_for(p) for p in chain])
        return ratings[plan_id]

    cdrs = rerating_repo.charged_cdrs(conn, scope.start, scope.end, scope.plan_id, scope.account_id)
    return changes(cdrs, rating_for)


def _summary(found: list[Change], items: int) -> dict[str, object]:
    priced = [c for c in found if c.rate is not None]
    return {
        "changed": len(priced),
        "no_rate": len(found) - len(priced),
        "total_delta": str(sum((c.delta for c in priced), ZERO)),
        "accounts": account_totals(found),
        "items": [c.as_dict() for c in found[:items]],
        "items_omitted": max(len(found) - items, 0),
    }


def preview(
    conn: psycopg.Connection[Any], scope: Scope, items: int = PREVIEW_ITEMS
) -> dict[str, object]:
    """What applying would do; changes nothing."""
    return {"scope": scope.as_dict(), "applied": False, **_summary(_compute(conn, scope), items)}


def apply(
    conn: psycopg.Connection[Any], scope: Scope, actor: str, items: int = PREVIEW_ITEMS
) -> dict[str, object]:
    """Re-price and adjust balances in the caller's transaction (the caller commits)."""
    rerating_repo.lock_accounts_in_scope(
        conn, scope.start, scope.end, scope.plan_id, scope.account_id
    )
    found = _compute(conn, scope)
    priced = [c for c in found if c.rate is not None]
    run_id = None
    if priced:
        total = sum((c.delta for c in priced), ZERO)
        run_id = rerating_repo.create_run(
            conn, actor=actor, start=scope.start, end=scope.end, plan_id=scope.plan_id,
            account_id=scope.account_id, cdrs=len(priced), total_delta=total,
        )  # fmt: skip
        for change in priced:
            _apply_one(conn, run_id, change, actor)
    result = {"scope": scope.as_dict(), "applied": True, "run_id": run_id, **_summary(found, items)}
    audit.record(
        conn, actor, "rerate.apply", f"rerate_run:{run_id}", scope.as_dict(),
        {k: v for k, v in result.items() if k not in ("items", "scope")},
    )  # fmt: skip
    return result


def _apply_one(conn: psycopg.Connection[Any], run_id: int, change: Change, actor: str) -> None:
    priced = change.priced
    assert priced is not None
    rate = priced.rate
    note = f"rerate run {run_id}: {change.old_cost} -> {change.new_cost}"
    rerating_repo.reprice_cdr(
        conn, change.cdr_id, cost=change.new_cost, rate_id=rate.id, rate_prefix=rate.prefix,
        rate_per_minute=rate.rate_per_minute, connection_fee=rate.connection_fee,
        billed_seconds=priced.charge.billed_seconds, spans=pricing.spans_json(priced.charge),
        note=note,
    )  # fmt: skip
    rerating_repo.record_item(
        conn, run_id, change.cdr_id, change.old_cost, change.new_cost, change.old_rate_id, rate.id
    )
    if change.delta == 0:  # only the rate changed (same price): nothing to move
        return
    after = accounts_repo.move_balance(
        conn, change.account_id, -change.delta, kind="adjustment", actor=actor,
        note=note, cdr_id=change.cdr_id,
    )  # fmt: skip
    check_low_balance(conn, change.account_id, after + change.delta, after)
