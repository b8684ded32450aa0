"""``apolo demo load``: a small rate plan and accounts to try Apolo with."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import click

from sidecar.db import connect_cli

DEMO_PLAN = "demo"
# prefix, name, rate per minute, connection fee, initial increment, increment
DEMO_RATES = [
    ("1", "USA/Canada", "0.0100", "0", 6, 6),
    ("44", "United Kingdom", "0.0200", "0", 60, 60),
    ("447", "United Kingdom mobile", "0.0800", "0", 60, 60),
    ("51", "Peru", "0.0400", "0", 60, 60),
    ("519", "Peru mobile", "0.1200", "0", 30, 6),
    ("5255", "Mexico City", "0.0150", "0", 1, 1),
    ("52", "Mexico", "0.0250", "0.0500", 60, 60),
    ("34", "Spain", "0.0300", "0", 60, 60),
]
# The PBX `apolo simulate` plays: its calls come from this trunk, which bills each one to the
# account whose ANI is its caller ID (what Apolo did for every call before issue #11).
DEMO_TRUNK = "demo-pbx"
DEMO_TRUNK_CIDR = "192.0.2.0/24"  # TEST-NET-1: no real address
DEMO_PBX_ADDRESS = "192.0.2.10"
# number, type, balance, credit limit, ANIs, max calls, status
DEMO_ACCOUNTS = [
    ("100001", "prepaid", "10.00", "0", ["100001"], None, "active"),
    ("100002", "prepaid", "0.50", "0", ["100002"], 2, "active"),
    ("100003", "postpaid", "0", "50.00", ["100003", "100013"], None, "active"),
    ("100004", "prepaid", "25.00", "0", ["100004"], None, "suspended"),
]


@click.group()
def demo() -> None:
    """Demo data."""


@demo.command("load")
def load() -> None:
    """Create the demo plan and accounts (skips what already exists)."""
    from sidecar.repo import rates as rates_repo
    from sidecar.repo import trunks as trunks_repo
    from sidecar.services.accounts import create_account
    from sidecar.services.trunks import create_trunk

    since = datetime(2020, 1, 1, tzinfo=UTC)
    with connect_cli() as conn:
        plan_id = rates_repo.plan_id_by_name(conn, DEMO_PLAN)
        if plan_id is None:
            plan_id = rates_repo.ensure_plan(conn, DEMO_PLAN)
            for prefix, name, rpm, fee, first, step in DEMO_RATES:
                rates_repo.add_rate(
                    conn,
                    plan_id,
                    prefix=prefix,
                    name=name,
                    rate_per_minute=Decimal(rpm),
                    connection_fee=Decimal(fee),
                    initial_increment=first,
                    increment=step,
                    effective_start=since,
                )
        created = []
        for number, type_, balance, credit, anis, max_calls, status in DEMO_ACCOUNTS:
            if conn.execute("SELECT 1 FROM accounts WHERE number = %s", (number,)).fetchone():
                continue
            create_account(
                conn,
                actor="demo",
                number=number,
                plan=DEMO_PLAN,
                type_=type_,
                balance=Decimal(balance),
                credit_limit=Decimal(credit),
                anis=anis,
                max_calls=max_calls,
                name=f"Demo {number}",
            )
            if status != "active":
                conn.execute("UPDATE accounts SET status = %s WHERE number = %s", (status, number))
            created.append(number)
        if trunks_repo.get(conn, DEMO_TRUNK) is None:
            create_trunk(conn, actor="demo", name=DEMO_TRUNK, cidrs=[DEMO_TRUNK_CIDR],
                         trust_caller_id=True)  # fmt: skip
            created.append(f"trunk {DEMO_TRUNK} ({DEMO_TRUNK_CIDR}, trusts caller IDs)")
        conn.commit()
    click.echo(f"demo plan {DEMO_PLAN!r} ready; created: {', '.join(created) or 'nothing'}")
