"""The drill's books: read from the primary once the load is over and the spool replayed.

Each figure is a check that could fail: a CDR the switch was told was stored (2xx) and is
not, a call without its CDR, a CDR or a call charged twice, a charge other than the one
answered, a balance that is not the sum of its ledger, an account whose ``reserved`` is not
the sum of its open reservations, a reservation left open after every CDR arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg

from sidecar.simulator.runner import CallResult


@dataclass
class Books:
    calls: int = 0
    cdrs_stored: int = 0
    acknowledged: int = 0
    lost_acknowledged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    double_stored: list[str] = field(default_factory=list)
    double_charged: list[str] = field(default_factory=list)
    charged_otherwise: list[str] = field(default_factory=list)
    unbalanced: list[str] = field(default_factory=list)
    reserved_mismatch: list[str] = field(default_factory=list)
    open_reservations: int = 0
    open_details: list[str] = field(default_factory=list)
    released_late: int = 0  # reservations committed after their call's CDR (sql/013)
    accounts: int = 0
    charged_total: Decimal = Decimal(0)

    def checks(self) -> list[tuple[str, bool, str]]:
        def some(items: list[str]) -> str:
            return f"{len(items)}" + (f" (e.g. {', '.join(items[:3])})" if items else "")

        return [
            ("lost (answered 2xx, not stored)", not self.lost_acknowledged,
             some(self.lost_acknowledged)),
            ("calls without their CDR after the replay", not self.missing, some(self.missing)),
            ("double-charged (a call or a CDR charged twice)",
             not self.double_charged and not self.double_stored,
             some(self.double_charged + self.double_stored)),
            ("charged other than answered", not self.charged_otherwise,
             some(self.charged_otherwise)),
            (f"balances not equal to their ledger (of {self.accounts} accounts)",
             not self.unbalanced, some(self.unbalanced)),
            ("reserved not equal to the open reservations", not self.reserved_mismatch,
             some(self.reserved_mismatch)),
            ("reservations left open", self.open_reservations == 0, str(self.open_reservations)),
        ]  # fmt: skip

    @property
    def ok(self) -> bool:
        return all(ok for _, ok, _ in self.checks())


def _story(uuid: str, created: Any, status: str | None, received: Any,
           call: CallResult | None) -> str:  # fmt: skip
    """When the reservation and the call's CDR were written, and what the switch saw."""
    line = f"{uuid}: reserved {created:%H:%M:%S.%f}"
    line += f", CDR {status} stored {received:%H:%M:%S.%f}" if received else ", no CDR"
    if call is not None:
        answer = call.authorize_error or call.reason
        line += f"; the switch: authorization answered {call.authorized_at:.3f} ({answer[:80]})"
        line += f", CDR tries {[f'{t:.3f}' for t, _ in call.cdr_tries]}"
    return line


def read_books(url: str, results: list[CallResult], answered: dict[str, Decimal]) -> Books:
    """``answered``: call uuid -> cost the sidecar answered for its (first) accepted CDR."""
    books = Books(calls=len(results), acknowledged=len(answered))
    with psycopg.connect(url, connect_timeout=5) as c:
        stored: dict[str, tuple[int, Decimal | None]] = {}
        rows = c.execute("SELECT call_uuid, count(*), sum(cost) FROM cdrs GROUP BY call_uuid")
        for uuid, count, cost in rows.fetchall():
            stored[uuid] = (int(count), cost)
        books.cdrs_stored = sum(n for n, _ in stored.values())
        books.lost_acknowledged = [u for u in answered if u not in stored]
        books.missing = [r.uuid for r in results if r.uuid not in stored]
        books.double_stored = [
            f"{u}:{leg}"
            for u, leg in c.execute(
                "SELECT call_uuid, leg FROM cdrs GROUP BY call_uuid, leg HAVING count(*) > 1"
            ).fetchall()
        ]
        books.double_charged = [
            u
            for (u,) in c.execute(
                "SELECT d.call_uuid FROM ledger l JOIN cdrs d ON d.id = l.cdr_id"
                " WHERE l.kind = 'call_charge' GROUP BY d.call_uuid HAVING count(*) > 1"
            ).fetchall()
        ]
        books.charged_otherwise = [
            u for u, cost in answered.items() if u in stored and (stored[u][1] or 0) != cost
        ]
        books.charged_total = sum(((cost or Decimal(0)) for _, cost in stored.values()), Decimal(0))
        accounts: list[tuple[Any, ...]] = c.execute(
            "SELECT a.number, a.balance, a.reserved,"
            " (SELECT coalesce(sum(amount), 0) FROM ledger l WHERE l.account_id = a.id),"
            " (SELECT coalesce(sum(amount), 0) FROM reservations r"
            "   WHERE r.account_id = a.id AND r.status = 'open')"
            " FROM accounts a ORDER BY a.number"
        ).fetchall()
        books.accounts = len(accounts)
        books.unbalanced = [f"{n}: {bal} != {led}" for n, bal, _, led, _ in accounts if bal != led]
        books.reserved_mismatch = [f"{n}: {res} != {o}" for n, _, res, _, o in accounts if res != o]
        opened = c.execute("SELECT count(*) FROM reservations WHERE status = 'open'").fetchone()
        books.open_reservations = int(opened[0]) if opened else -1
        late = c.execute("SELECT count(*) FROM reservations WHERE status = 'released'"
                         " AND close_reason LIKE '%stored before it'").fetchone()  # fmt: skip
        books.released_late = int(late[0]) if late else 0
        by_uuid = {r.uuid: r for r in results}
        for uuid, created, status, received in c.execute(
            "SELECT r.call_uuid, r.created_at, d.billing_status, d.received_at"
            " FROM reservations r LEFT JOIN cdrs d ON d.call_uuid = r.call_uuid"
            " WHERE r.status = 'open' ORDER BY r.id LIMIT 5"
        ).fetchall():
            books.open_details.append(_story(uuid, created, status, received, by_uuid.get(uuid)))
    return books
