"""CUCM files, their full CDR rows and their CMRs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def file_seen(conn: psycopg.Connection[Any], name: str, sha256: str) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT id, name, kind, row_count, new_rows, summary, received_at FROM cucm_files"
        " WHERE name = %s AND content_sha256 = %s",
        (name, sha256),
    ).fetchone()


def insert_file(
    conn: psycopg.Connection[Any],
    *,
    name: str,
    kind: str,
    cluster: str,
    node: int,
    file_time: datetime,
    seq: int,
    sha256: str,
    size_bytes: int,
    row_count: int,
    actor: str,
) -> int | None:
    """The new file id, or None when this name + content is already recorded."""
    row = conn.execute(
        "INSERT INTO cucm_files (name, kind, cluster, node, file_time, seq, content_sha256,"
        " size_bytes, row_count, new_rows, actor) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " 0, %s) ON CONFLICT (name, content_sha256) DO NOTHING RETURNING id",
        (name, kind, cluster, node, file_time, seq, sha256, size_bytes, row_count, actor),
    ).fetchone()
    return None if row is None else int(row["id"])


def finish_file(
    conn: psycopg.Connection[Any], file_id: int, new_rows: int, summary: dict[str, Any]
) -> None:
    conn.execute(
        "UPDATE cucm_files SET new_rows = %s, summary = %s WHERE id = %s",
        (new_rows, Jsonb(summary), file_id),
    )


def stored_cdr_pkids(conn: psycopg.Connection[Any], pkids: list[str]) -> set[str]:
    rows = conn.execute(
        "SELECT pkid::text AS pkid FROM cucm_cdrs WHERE pkid = ANY(%s::uuid[])", (pkids,)
    ).fetchall()
    return {r["pkid"] for r in rows}


def insert_cdr_row(conn: psycopg.Connection[Any], row: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO cucm_cdrs (pkid, file_id, cdr_id, callmanager_id, call_id, orig_leg,"
        " dest_leg, cluster, fac_hmac, fac_description, fac_from_pkid, row)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            row["pkid"],
            row["file_id"],
            row["cdr_id"],
            row["callmanager_id"],
            row["call_id"],
            row["orig_leg"],
            row["dest_leg"],
            row["cluster"],
            row["fac_hmac"],
            row["fac_description"],
            row["fac_from_pkid"],
            Jsonb(row["row"]),
        ),
    )


def stored_facs(
    conn: psycopg.Connection[Any], calls: list[tuple[int, int]], legs: list[int]
) -> list[dict[str, Any]]:
    """Stored rows with a FAC that share a global call id or a leg id with the ones given."""
    return conn.execute(
        "SELECT pkid::text AS pkid, callmanager_id, call_id, orig_leg, dest_leg, fac_hmac,"
        " fac_description FROM cucm_cdrs"
        " WHERE (fac_hmac IS NOT NULL OR fac_description IS NOT NULL) AND ("
        " (callmanager_id, call_id) IN (SELECT * FROM unnest(%s::bigint[], %s::bigint[]))"
        " OR orig_leg = ANY(%s::bigint[]) OR dest_leg = ANY(%s::bigint[]))"
        " ORDER BY (row->>'dateTimeOrigination')::bigint NULLS LAST",
        ([c[0] for c in calls], [c[1] for c in calls], legs, legs),
    ).fetchall()


def insert_cmr(conn: psycopg.Connection[Any], row: dict[str, Any]) -> bool:
    """False when this pkid is already stored."""
    found = conn.execute(
        "INSERT INTO cucm_cmrs (pkid, file_id, callmanager_id, call_id, cluster, row)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (pkid) DO NOTHING RETURNING pkid",
        (
            row["pkid"],
            row["file_id"],
            row["callmanager_id"],
            row["call_id"],
            row["cluster"],
            Jsonb(row["row"]),
        ),
    ).fetchone()
    return found is not None


def cmrs_for_call(
    conn: psycopg.Connection[Any], callmanager_id: int, call_id: int
) -> list[dict[str, Any]]:
    return conn.execute(
        "SELECT pkid::text AS pkid, cluster, row FROM cucm_cmrs"
        " WHERE callmanager_id = %s AND call_id = %s ORDER BY pkid",
        (callmanager_id, call_id),
    ).fetchall()


def row_of_cdr(conn: psycopg.Connection[Any], pkid: str) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT pkid::text AS pkid, file_id, cdr_id, callmanager_id, call_id, fac_hmac,"
        " fac_description, fac_from_pkid::text AS fac_from_pkid, row FROM cucm_cdrs"
        " WHERE pkid = %s::uuid",
        (pkid,),
    ).fetchone()


def destination_devices(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """destDeviceName of every stored end-of-call record, with its count and last call."""
    return conn.execute(
        "SELECT coalesce(k.row->>'destDeviceName', '') AS device, count(*) AS calls,"
        " max(c.start_at) AS last_call"
        " FROM cucm_cdrs k JOIN cdrs c ON c.id = k.cdr_id"
        " WHERE k.row->>'cdrRecordType' = '1' GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()
