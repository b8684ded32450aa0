"""CUCM file intake: one file, all or nothing, once.

A file is recognised by name + SHA-256 of its content (CUCM resends on failure, and
several billing servers may get the same file); each CDR/CMR row is unique on its pkid,
so a file with rows already stored (other name, other content) charges them nothing
twice. The whole file is parsed and checked before anything is written; the caller
commits or rolls back the one transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg

from sidecar.cucm.billing import Fac, carry_over_facs, chain_keys
from sidecar.cucm.fac_code import masked
from sidecar.cucm.filename import FileName, parse_file_name
from sidecar.cucm.flatfile import parse_flat_file
from sidecar.cucm.records import CdrRecord, cdr_records, cmr_records
from sidecar.repo import cucm as cucm_repo
from sidecar.services.cucm_billing import bill_row
from sidecar.services.cucm_settings import CucmSettings
from sidecar.services.rate_catalog import RateCatalog


@dataclass
class FileResult:
    file_id: int
    name: str
    kind: str
    duplicate: bool
    rows: int
    new_rows: int = 0
    duplicate_rows: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    charged_total: Decimal = Decimal("0.0000")
    negative_accounts: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "file_id": self.file_id,
            "name": self.name,
            "kind": self.kind,
            "duplicate": self.duplicate,
            "rows": self.rows,
            "new_rows": self.new_rows,
            "duplicate_rows": self.duplicate_rows,
            "statuses": self.statuses,
            "charged_total": str(self.charged_total),
            "negative_accounts": self.negative_accounts,
        }


def ingest_file(
    conn: psycopg.Connection[Any],
    catalog: RateCatalog,
    settings: CucmSettings,
    *,
    name: str,
    data: bytes,
    actor: str,
) -> FileResult:
    """Store (and for CDR files bill) one CUCM file; CucmFileError / FacKeyMissing on refusal."""
    fname = parse_file_name(name)
    sha = hashlib.sha256(data).hexdigest()
    seen = cucm_repo.file_seen(conn, name, sha)
    if seen is not None:
        return _duplicate(seen)
    parsed = parse_flat_file(data, fname.kind)
    if fname.kind == "cdr":
        records = cdr_records(parsed)
        if any(r.auth_code for r in records):
            settings.fac_key_bytes()  # refuse before writing anything
    else:
        cmrs = cmr_records(parsed)
    file_id = _insert_file(conn, fname, sha, len(data), len(parsed.rows), actor)
    if file_id is None:  # the same file committed concurrently
        seen = cucm_repo.file_seen(conn, name, sha)
        assert seen is not None
        return _duplicate(seen)
    result = FileResult(file_id, name, fname.kind, False, len(parsed.rows))
    if fname.kind == "cdr":
        _bill_records(conn, catalog, settings, records, result)
    else:
        for cmr in cmrs:
            stored = cucm_repo.insert_cmr(
                conn,
                {
                    "pkid": cmr.pkid,
                    "file_id": file_id,
                    "callmanager_id": cmr.callmanager_id,
                    "call_id": cmr.call_id,
                    "cluster": cmr.cluster,
                    "row": cmr.raw,
                },
            )
            result.new_rows += stored
            result.duplicate_rows += not stored
    cucm_repo.finish_file(conn, file_id, result.new_rows, result.summary())
    return result


def _insert_file(
    conn: psycopg.Connection[Any], fname: FileName, sha: str, size: int, rows: int, actor: str
) -> int | None:
    return cucm_repo.insert_file(
        conn,
        name=fname.name,
        kind=fname.kind,
        cluster=fname.cluster,
        node=fname.node,
        file_time=fname.stamp,
        seq=fname.seq,
        sha256=sha,
        size_bytes=size,
        row_count=rows,
        actor=actor,
    )


def _known_facs(conn: psycopg.Connection[Any], records: list[CdrRecord]) -> dict[str, Fac]:
    """FACs of already stored rows of the same call chains (setup record in an earlier file)."""
    calls = sorted({(r.callmanager_id, r.call_id) for r in records})
    legs = sorted({leg for r in records for leg in (r.orig_leg, r.dest_leg) if leg})
    known: dict[str, Fac] = {}
    for row in cucm_repo.stored_facs(conn, calls, legs):
        fac = Fac("", row["fac_description"] or "", row["pkid"], row["fac_hmac"] or "")
        keys = [f"g:{row['callmanager_id']}:{row['call_id']}"]
        keys += [f"l:{leg}" for leg in (row["orig_leg"], row["dest_leg"]) if leg]
        for key in keys:
            known.setdefault(key, fac)
    return known


def _bill_records(
    conn: psycopg.Connection[Any],
    catalog: RateCatalog,
    settings: CucmSettings,
    records: list[CdrRecord],
    result: FileResult,
) -> None:
    already = cucm_repo.stored_cdr_pkids(conn, [r.pkid for r in records])
    facs = carry_over_facs(records, _known_facs(conn, records))
    for record in records:
        if record.pkid in already:
            result.duplicate_rows += 1
            continue
        fac = facs.get(record.pkid)
        extra = {"cucm_file": result.name, "global_call_id": chain_keys(record)[0][2:]}
        if fac is not None:
            extra["fac_from_pkid"] = fac.from_pkid
        outcome = bill_row(conn, catalog, settings, record, fac, extra)
        if outcome.cdr_id is None:  # stored concurrently under the same pkid
            result.duplicate_rows += 1
            continue
        raw = dict(record.raw)
        if record.auth_code:
            raw["authorizationCodeValue"] = masked(record.auth_code)
        cucm_repo.insert_cdr_row(
            conn,
            {
                "pkid": record.pkid,
                "file_id": result.file_id,
                "cdr_id": outcome.cdr_id,
                "callmanager_id": record.callmanager_id,
                "call_id": record.call_id,
                "orig_leg": record.orig_leg,
                "dest_leg": record.dest_leg,
                "cluster": record.cluster,
                "fac_hmac": outcome.fac_hmac,
                "fac_description": None if fac is None else (fac.description or None),
                "fac_from_pkid": None if fac is None else fac.from_pkid,
                "row": raw,
            },
        )
        result.new_rows += 1
        result.statuses[outcome.status] = result.statuses.get(outcome.status, 0) + 1
        result.charged_total += outcome.cost
        if outcome.went_negative and outcome.account not in result.negative_accounts:
            result.negative_accounts.append(str(outcome.account))


def _duplicate(seen: dict[str, Any]) -> FileResult:
    return FileResult(
        int(seen["id"]), seen["name"], seen["kind"], True, int(seen["row_count"]), 0, 0
    )
