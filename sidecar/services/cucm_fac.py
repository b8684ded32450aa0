"""Forced Authorization Code management, shared by the admin API and the CLI (audited).

The clear code is seen only here, once, to compute its HMAC; it is never stored, logged
or echoed back: records and audit entries carry the last digits only.
"""

from __future__ import annotations

from typing import Any

import psycopg

from sidecar.cucm.fac_code import FacKeyMissing, code_hmac, last_digits, valid_code
from sidecar.errors import ApiError
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import audit
from sidecar.repo import fac as fac_repo
from sidecar.services.cucm_settings import CucmSettings

MAX_NAME = 50  # CUCM's authCodeDescription is VARCHAR(50)


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "level": row["level"],
        "account": row["account"],
        "code": "*" * (row["code_length"] - len(row["last_digits"])) + row["last_digits"],
        "last_digits": row["last_digits"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _check_fields(name: object, level: object) -> tuple[str, int]:
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ApiError(400, "invalid_request", f"name is required (1 to {MAX_NAME} characters)")
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 255:
        raise ApiError(400, "invalid_request", "level must be an integer from 0 to 255")
    return name.strip(), level


def _account_id(conn: psycopg.Connection[Any], account: object) -> int:
    if not isinstance(account, str) or not account:
        raise ApiError(400, "invalid_request", "account is required (an account number)")
    found = accounts_repo.find_for_call(conn, account, "")
    if found is None:
        raise ApiError(404, "account_not_found", f"no account {account}")
    return int(found["id"])


def create(
    conn: psycopg.Connection[Any],
    settings: CucmSettings,
    *,
    actor: str,
    code: object,
    name: object,
    level: object = 0,
    account: object = None,
) -> dict[str, Any]:
    try:
        key = settings.fac_key_bytes()
    except FacKeyMissing as exc:
        raise ApiError(503, "fac_key_missing", str(exc)) from None
    if not isinstance(code, str) or not valid_code(code):
        raise ApiError(400, "invalid_request", "code must be 1 to 16 digits")
    clean_name, clean_level = _check_fields(name, level)
    account_id = _account_id(conn, account)
    if fac_repo.name_taken(conn, clean_name):
        raise ApiError(409, "fac_exists", f"a FAC named {clean_name!r} exists")
    fac_id = fac_repo.create(
        conn,
        code_hmac=code_hmac(key, code),
        last_digits=last_digits(code),
        code_length=len(code),
        name=clean_name,
        level=clean_level,
        account_id=account_id,
    )
    if fac_id is None:
        raise ApiError(409, "fac_exists", "this code (or name) is already registered")
    row = fac_repo.get(conn, fac_id)
    assert row is not None
    audit.record(conn, actor, "fac.create", f"fac:{fac_id}", None, public(row))
    return public(row)


def update(
    conn: psycopg.Connection[Any], *, actor: str, fac_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    if "code" in changes:
        raise ApiError(400, "invalid_request", "a code cannot change: delete it and create one")
    before = fac_repo.get(conn, fac_id, lock=True)
    if before is None:
        raise ApiError(404, "fac_not_found", f"no FAC {fac_id}")
    name, level = _check_fields(
        changes.get("name", before["name"]), changes.get("level", before["level"])
    )
    account_id = _account_id(conn, changes.get("account", before["account"]))
    if fac_repo.name_taken(conn, name, other_than=fac_id):
        raise ApiError(409, "fac_exists", f"a FAC named {name!r} exists")
    fac_repo.update(conn, fac_id, name=name, level=level, account_id=account_id)
    after = fac_repo.get(conn, fac_id)
    assert after is not None
    audit.record(conn, actor, "fac.update", f"fac:{fac_id}", public(before), public(after))
    return public(after)


def delete(conn: psycopg.Connection[Any], *, actor: str, fac_id: int) -> dict[str, Any]:
    before = fac_repo.get(conn, fac_id, lock=True)
    if before is None:
        raise ApiError(404, "fac_not_found", f"no FAC {fac_id}")
    fac_repo.delete(conn, fac_id)
    audit.record(conn, actor, "fac.delete", f"fac:{fac_id}", public(before), None)
    return public(before)


def get(conn: psycopg.Connection[Any], fac_id: int) -> dict[str, Any]:
    row = fac_repo.get(conn, fac_id)
    if row is None:
        raise ApiError(404, "fac_not_found", f"no FAC {fac_id}")
    return public(row)


def list_codes(conn: psycopg.Connection[Any], account: str | None = None) -> list[dict[str, Any]]:
    account_id = None if account is None else _account_id(conn, account)
    return [public(r) for r in fac_repo.list_all(conn, account_id)]
