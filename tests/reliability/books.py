"""Checks of the record after a run: every CDR once, every call charged once, books balanced."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg

from reliability.switch import Call
from reliability.tally import TALLY


@dataclass
class Books:
    balance: Decimal
    ledger_sum: Decimal
    charges: Decimal
    open_reservations: int
    cdr_count: dict[str, int]
    cost: dict[str, Decimal]
    charge_rows: dict[str, int]


def read_books(db_url: str, number: str) -> Books:
    with psycopg.connect(db_url) as c:
        money = c.execute(
            "SELECT a.balance,"
            " (SELECT coalesce(sum(amount), 0) FROM ledger l WHERE l.account_id = a.id),"
            " (SELECT coalesce(sum(cost), 0) FROM cdrs d WHERE d.account_id = a.id)"
            " FROM accounts a WHERE a.number = %s",
            (number,),
        ).fetchone()
        assert money is not None, f"no account {number}"
        balance, ledger_sum, charges = money
        opened = c.execute("SELECT count(*) FROM reservations WHERE status = 'open'").fetchone()
        assert opened is not None
        open_count = int(opened[0])
        rows = c.execute("SELECT call_uuid, count(*), sum(cost) FROM cdrs GROUP BY call_uuid")
        counts: dict[str, int] = {}
        costs: dict[str, Decimal] = {}
        for uuid, n, cost in rows.fetchall():
            counts[uuid], costs[uuid] = n, cost if cost is not None else Decimal(0)
        charge_rows: dict[str, int] = dict(
            c.execute(
                "SELECT d.call_uuid, count(*) FROM ledger l JOIN cdrs d ON d.id = l.cdr_id"
                " WHERE l.kind = 'call_charge' GROUP BY d.call_uuid"
            ).fetchall()
        )
    return Books(balance, ledger_sum, charges, open_count, counts, costs, charge_rows)


def assert_books(db_url: str, number: str, initial: Decimal, calls: list[Call]) -> Books:
    """Every call's CDR stored once and charged once at its price; balance = initial - charges."""
    books = read_books(db_url, number)
    lost = [c.uuid for c in calls if books.cdr_count.get(c.uuid, 0) == 0]
    doubled = [c.uuid for c in calls if books.cdr_count.get(c.uuid, 0) > 1]
    doubled += [u for u, n in books.charge_rows.items() if n > 1]
    TALLY.calls += len(calls)
    TALLY.cdrs += sum(books.cdr_count.get(c.uuid, 0) for c in calls)
    TALLY.lost += len(lost)
    TALLY.double_charged += len(doubled)
    assert not lost, f"{len(lost)} CDRs lost, e.g. {lost[:3]}"
    assert not doubled, f"{len(doubled)} CDRs stored or charged twice, e.g. {doubled[:3]}"
    mispriced = {
        c.uuid: (books.cost.get(c.uuid), c.cost)
        for c in calls
        if books.cost.get(c.uuid, Decimal(0)) != c.cost
    }
    assert not mispriced, f"{len(mispriced)} calls charged other than their price: {mispriced}"
    expected_charges = sum((c.cost for c in calls), Decimal(0))
    assert books.charges == expected_charges
    assert books.balance == initial - expected_charges
    assert books.ledger_sum == books.balance  # the 'initial' row included
    assert books.balance >= 0, "a prepaid account was overspent"
    assert books.open_reservations == 0, "reservations left open after every CDR arrived"
    return books


@dataclass
class ReservationWatch:
    """Samples one account while load runs: open reservations never exceed the balance."""

    db_url: str
    number: str
    interval: float = 0.05
    samples: list[tuple[Decimal, Decimal, Decimal, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.db_url, connect_timeout=2) as c:
                    while not self._stop.wait(self.interval):
                        # one statement, one snapshot
                        row = c.execute(
                            "SELECT a.balance, a.reserved, coalesce(sum(r.amount), 0), count(r.id)"
                            " FROM accounts a LEFT JOIN reservations r"
                            "  ON r.account_id = a.id AND r.status = 'open'"
                            " WHERE a.number = %s GROUP BY a.id",
                            (self.number,),
                        ).fetchone()
                        c.rollback()
                        if row is not None:
                            self.samples.append(row)
            except psycopg.Error as exc:  # PostgreSQL restarting under a fault scenario
                self.errors.append(str(exc))
                self._stop.wait(0.2)

    def __enter__(self) -> ReservationWatch:
        self._thread = threading.Thread(target=self._run, name="watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def assert_never_overspent(self, min_samples: int = 5) -> None:
        assert len(self.samples) >= min_samples, f"only {len(self.samples)} samples"
        for balance, reserved, open_sum, _count in self.samples:
            assert open_sum <= balance, f"open reservations {open_sum} > balance {balance}"
            assert reserved == open_sum, f"accounts.reserved {reserved} != open sum {open_sum}"

    @property
    def peak_open(self) -> int:
        return max((s[3] for s in self.samples), default=0)
