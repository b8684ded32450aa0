"""Consistency counts after a bench run, straight from PostgreSQL (the record).

Every figure here must be exact: they prove no CDR was lost or stored twice, no call was
charged twice, and every balance is what its ledger says.
"""

from __future__ import annotations

from typing import Any

import psycopg


def consistency(url: str, posted_uuids: set[str], expected_charges: int) -> dict[str, Any]:
    with psycopg.connect(url) as conn:

        def one(query: str, *params: Any) -> int:
            row = conn.execute(query, params).fetchone()
            return int(row[0]) if row and row[0] is not None else 0

        uuids = sorted(posted_uuids)
        stored = one("SELECT count(*) FROM cdrs WHERE call_uuid = ANY(%s)", uuids)
        distinct = one(
            "SELECT count(DISTINCT (call_uuid, leg)) FROM cdrs WHERE call_uuid = ANY(%s)", uuids
        )
        charged = one(
            "SELECT count(*) FROM cdrs WHERE call_uuid = ANY(%s) AND billing_status = 'charged'",
            uuids,
        )
        charged_zero = one(
            "SELECT count(*) FROM cdrs WHERE call_uuid = ANY(%s) AND billing_status = 'charged'"
            " AND cost = 0",
            uuids,
        )
        charges = one(
            "SELECT count(*) FROM ledger l JOIN cdrs c ON c.id = l.cdr_id"
            " WHERE l.kind = 'call_charge' AND c.call_uuid = ANY(%s)",
            uuids,
        )
        # a charged CDR without its ledger row, or a ledger charge on a CDR not charged
        unpaired = one(
            "SELECT count(*) FROM cdrs c WHERE c.call_uuid = ANY(%s) AND"
            " (c.billing_status = 'charged') <> EXISTS (SELECT 1 FROM ledger l"
            "  WHERE l.cdr_id = c.id AND l.kind = 'call_charge')",
            uuids,
        )
        charge_per_cdr_max = one(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM ledger WHERE kind = 'call_charge'"
            " GROUP BY cdr_id) t"
        )
        wrong_cost = one(
            "SELECT count(*) FROM cdrs c JOIN ledger l"
            " ON l.cdr_id = c.id AND l.kind = 'call_charge' WHERE c.call_uuid = ANY(%s)"
            " AND (l.amount <> -c.cost OR c.cost <> round("
            "  ceil(c.billusec / 1e6) * c.rate_per_minute / 60 + c.connection_fee, 4))",
            uuids,
        )
        balance_mismatch = one(
            "SELECT count(*) FROM accounts a LEFT JOIN"
            " (SELECT account_id, sum(amount) AS s FROM ledger GROUP BY account_id) l"
            " ON l.account_id = a.id WHERE a.balance <> coalesce(l.s, 0)"
        )
        reserved_mismatch = one(
            "SELECT count(*) FROM accounts a LEFT JOIN"
            " (SELECT account_id, sum(amount) AS s FROM reservations WHERE status = 'open'"
            "  GROUP BY account_id) r ON r.account_id = a.id WHERE a.reserved <> coalesce(r.s, 0)"
        )
    return {
        "cdrs_posted_unique": len(posted_uuids),
        "cdrs_stored": stored,
        "cdrs_stored_distinct": distinct,
        "cdrs_lost": len(posted_uuids) - distinct,
        "cdrs_duplicated": stored - distinct,
        "charges_expected": expected_charges,
        "cdrs_charged": charged,
        # cost rounds to 0.0000: still charged, still one (0.0000) ledger row; information only
        "cdrs_charged_zero_cost": charged_zero,
        "ledger_charges": charges,
        "charged_ne_ledger_row": unpaired,
        "max_charges_per_cdr": charge_per_cdr_max,
        "charges_wrong_amount": wrong_cost,
        "accounts_balance_ne_ledger": balance_mismatch,
        "accounts_reserved_ne_open": reserved_mismatch,
    }


def export_rows(export: dict[str, Any]) -> dict[str, int]:
    """Row counts of the CDR export (``bench.cdr_export.run``): every CDR of the table once,
    through the sidecar and through COPY."""
    return {
        "export_cdrs_in_table": export["rows_expected"],
        "export_rows": export["export"]["rows"],
        "export_copy_rows": export["floor_copy"]["rows"],
    }


def lpm_agreement(lpm: dict[str, Any]) -> dict[str, int]:
    """The LPM check (``bench.lpm.run``): every lookup the index answered, compared with SQL."""
    return {
        "lpm_lookups": lpm["lookups"],
        "lpm_compared": lpm["compared"],
        "lpm_mismatches": lpm["mismatches"],
    }


def is_exact(counts: dict[str, Any]) -> bool:
    if "lpm_lookups" in counts and not (
        counts["lpm_compared"] == counts["lpm_lookups"] and counts["lpm_mismatches"] == 0
    ):
        return False
    in_table = counts.get("export_cdrs_in_table")
    if in_table is not None and not (
        counts["export_rows"] == in_table == counts["export_copy_rows"]
    ):
        return False
    return bool(
        counts["cdrs_lost"] == 0
        and counts["cdrs_duplicated"] == 0
        and counts["cdrs_stored"] == counts["cdrs_posted_unique"]
        and counts["cdrs_charged"] == counts["charges_expected"]
        and counts["ledger_charges"] == counts["cdrs_charged"]
        and counts["charged_ne_ledger_row"] == 0
        and counts["max_charges_per_cdr"] <= 1
        and counts["charges_wrong_amount"] == 0
        and counts["accounts_balance_ne_ledger"] == 0
        and counts["accounts_reserved_ne_open"] == 0
    )
