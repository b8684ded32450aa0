"""Rate plans and rates: CRUD, search, CSV import/export, warnings, legacy zone import.

Reads: admin, operator, viewer. Writes: admin, each audited. CSV import streams the
request body (``text/csv``; up to ``APOLO_RATE_IMPORT_MAX_BYTES``, default 512 MiB)
through the same validator and staging table as ``apolo rates import``: all or nothing,
errors by line (422). Export streams from its own connection through a server-side cursor.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from flask import Blueprint, Response, g, jsonify, request

from sidecar.api import _params as params
from sidecar.api._request import json_body, settings
from sidecar.auth import require
from sidecar.db import get_conn
from sidecar.errors import ApiError
from sidecar.imports import rates_csv
from sidecar.imports.legacy_zones import convert as convert_legacy
from sidecar.imports.rates_csv import ErrorLog, RateRow, RowError
from sidecar.repo import audit, rate_import
from sidecar.repo import rate_admin as repo
from sidecar.repo import timings as timings_repo
from sidecar.request_guard import body_limit
from sidecar.services import plans
from sidecar.services.rate_warnings import plan_warnings

bp = Blueprint("rates", __name__, url_prefix="/v1")
READERS = ("admin", "operator", "viewer")
ERROR_LIMIT = 100
WARNING_LIMIT = 100
DEFAULT_IMPORT_MAX_BYTES = 512 * 1024 * 1024
_MONEY = ("rate_per_minute", "connection_fee", "minimum_charge")
_FIELD_PARSERS: dict[str, Any] = {
    "prefix": rates_csv.parse_prefix,
    "name": rates_csv.check_name,
    "rate_per_minute": rates_csv.parse_money,
    "connection_fee": rates_csv.parse_money,
    "initial_increment": rates_csv.parse_increment,
    "increment": rates_csv.parse_increment,
    "effective_start": rates_csv.parse_timestamp,
    "effective_end": rates_csv.parse_timestamp,
    "priority": rates_csv.parse_priority,
    "enabled": rates_csv.parse_enabled,
    "timing": rates_csv.parse_timing_name,  # a timing of the rate's plan, by name (null: none)
    "minimum_charge": rates_csv.parse_money,
    "free_seconds": rates_csv.parse_seconds,
}


_STRING = {"type": "string"}
_MONEY_SCHEMA = {"type": "string", "pattern": r"^[0-9]*\.?[0-9]{0,6}$", "examples": ["0.015"]}
# the request shape of a rate (OpenAPI): one property per parser above
RATE_FIELDS: dict[str, Any] = {
    "prefix": {"type": "string", "pattern": "^[+]?[0-9]{1,32}$"},
    "name": _STRING,
    "rate_per_minute": _MONEY_SCHEMA,
    "connection_fee": _MONEY_SCHEMA,
    "initial_increment": {"type": ["integer", "string"], "minimum": 1},
    "increment": {"type": ["integer", "string"], "minimum": 1},
    "effective_start": {"type": "string", "format": "date-time"},
    "effective_end": {"type": ["string", "null"], "format": "date-time"},
    "priority": {"type": ["integer", "string"]},
    "enabled": {"type": ["boolean", "string"]},
    "timing": {"type": ["string", "null"], "description": "a timing of the plan; null: any time"},
    "minimum_charge": _MONEY_SCHEMA,
    "free_seconds": {"type": ["integer", "string"], "minimum": 0},
}
assert set(RATE_FIELDS) == set(_FIELD_PARSERS)
RATE_BODY = {"type": "object", "required": ["prefix", "rate_per_minute"],
             "properties": RATE_FIELDS, "additionalProperties": False}  # fmt: skip
RATE_UPDATE = {"type": "object", "minProperties": 1, "properties": RATE_FIELDS,
               "additionalProperties": False}  # fmt: skip


def import_max_bytes() -> int:
    return int(os.environ.get("APOLO_RATE_IMPORT_MAX_BYTES") or DEFAULT_IMPORT_MAX_BYTES)


def _public_rate(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if k in _MONEY else v) for k, v in row.items() if k != "timing_id"}


def _public_plan(row: dict[str, Any]) -> dict[str, Any]:
    return plans.public_plan(row)


def _plan(name: str) -> dict[str, Any]:
    return plans.plan_or_404(get_conn(), name)


def _rate(rate_id: int, lock: bool = False) -> dict[str, Any]:
    rate = repo.get_rate(get_conn(), rate_id, lock)
    if rate is None:
        raise ApiError(404, "rate_not_found", f"no rate {rate_id}")
    return rate


# --------------------------------------------------------------------------- plans


@bp.get("/rate-plans")
@require(*READERS)
def list_plans():  # type: ignore[no-untyped-def]
    return jsonify({"plans": [_public_plan(p) for p in repo.list_plans(get_conn())]})


@bp.get("/rate-plans/<name>")
@require(*READERS)
def get_plan(name: str):  # type: ignore[no-untyped-def]
    return jsonify(_public_plan(_plan(name)))


PLAN_FIELDS = {
    "timezone": {"type": "string", "default": "UTC", "examples": ["America/Mexico_City"],
                 "description": "IANA name: timings are local times of this zone"},
    "parent": {"type": ["string", "null"], "description": "the plan whose rates price what "
               "none of this plan's rates does (cycles are refused)"},
}  # fmt: skip
PLAN_BODY = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "currency": {"type": "string"}, **PLAN_FIELDS},
    "additionalProperties": False,
}
PLAN_UPDATE = {"type": "object", "minProperties": 1, "properties": PLAN_FIELDS,
               "additionalProperties": False}  # fmt: skip
assert set(PLAN_FIELDS) == plans.PLAN_KEYS


@bp.post("/rate-plans")
@require("admin")
def create_plan():  # type: ignore[no-untyped-def]
    body = json_body()
    unknown = sorted(set(body) - set(PLAN_BODY["properties"]))  # type: ignore[call-overload]
    if unknown:
        raise params.bad(f"unknown field(s): {', '.join(unknown)}", fields=unknown)
    created = plans.create_plan(
        get_conn(), g.actor, body.get("name"), body.get("currency", "USD"),
        body.get("timezone", "UTC"), body.get("parent"),
    )  # fmt: skip
    return jsonify(created), 201


@bp.patch("/rate-plans/<name>")
@require("admin")
def update_plan(name: str):  # type: ignore[no-untyped-def]
    return jsonify(plans.update_plan(get_conn(), g.actor, name, json_body()))


@bp.delete("/rate-plans/<name>")
@require("admin")
def delete_plan(name: str):  # type: ignore[no-untyped-def]
    plan = _plan(name)
    if plan["accounts"]:
        raise ApiError(409, "plan_in_use", f"{plan['accounts']} account(s) use plan {name!r}")
    if plan["children"]:
        raise ApiError(409, "plan_in_use", f"{plan['children']} plan(s) fall back to {name!r}")
    conn = get_conn()
    repo.delete_plan(conn, int(plan["id"]))
    audit.record(conn, g.actor, "rate_plan.delete", f"rate_plan:{name}", plan, None)
    return "", 204


# --------------------------------------------------------------------------- rates


@bp.get("/rate-plans/<name>/rates")
@require(*READERS)
def search_rates(name: str):  # type: ignore[no-untyped-def]
    """``prefix`` (starts with), ``match`` (a number: the prefixes it starts with),
    ``name`` (substring, any case); keyset pages by id (``cursor`` = ``next_cursor``)."""
    plan = _plan(name)
    limit = params.integer("limit", 100, 1, 1000)
    assert limit is not None
    rows = repo.search_rates(
        get_conn(),
        int(plan["id"]),
        prefix=params.digits("prefix"),
        matching=params.digits("match"),
        name=params.text("name"),
        after_id=params.integer("cursor", None, 0, 2**63 - 1),
        limit=limit,
    )
    next_cursor = int(rows[-1]["id"]) if len(rows) == limit else None
    return jsonify({"rates": [_public_rate(r) for r in rows], "next_cursor": next_cursor})


def _rate_values(body: dict[str, Any], plan_id: int, *, partial: bool) -> dict[str, Any]:
    unknown = sorted(set(body) - set(_FIELD_PARSERS))
    if unknown:
        raise params.bad(f"unknown field(s): {', '.join(unknown)}", fields=unknown)
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, parse in _FIELD_PARSERS.items():
        if field not in body:
            continue
        raw = body[field]
        if raw is None and field in ("effective_end", "timing"):
            values[field] = None
            continue
        if isinstance(raw, float) or raw is None or isinstance(raw, dict | list):
            errors[field] = "must be a string (money as a decimal string)"
            continue
        text = ("true" if raw else "false") if isinstance(raw, bool) else str(raw)
        try:
            values[field] = parse(text if field == "name" else text.strip())
        except ValueError as exc:
            errors[field] = str(exc)
    if not partial:
        for field in ("prefix", "rate_per_minute"):
            if field not in body:
                errors[field] = "is required"
    if values.get("timing") is not None:
        timing_id = timings_repo.id_by_name(get_conn(), plan_id, values["timing"])
        if timing_id is None:
            errors["timing"] = f"the rate's plan has no timing named {values['timing']!r}"
    if errors:
        raise params.bad("invalid rate", fields=errors)
    if "timing" in values:
        name = values.pop("timing")
        values["timing_id"] = None if name is None else timing_id
    return values


def _check_window(values: dict[str, Any], current: dict[str, Any] | None) -> None:
    merged = {**(current or {}), **values}
    start, end = merged.get("effective_start"), merged.get("effective_end")
    if start is not None and end is not None and end <= start:
        raise params.bad("effective_end must be later than effective_start")


@bp.post("/rate-plans/<name>/rates")
@require("admin")
def create_rate(name: str):  # type: ignore[no-untyped-def]
    plan = _plan(name)
    values = _rate_values(json_body(), int(plan["id"]), partial=False)
    increment = values.setdefault("increment", rates_csv.DEFAULT_INCREMENT)
    values.setdefault("initial_increment", increment)
    values.setdefault("effective_start", datetime.now(UTC))
    _check_window(values, None)
    conn = get_conn()
    rate_id = repo.insert_rate(conn, int(plan["id"]), values)
    created = _rate(rate_id)
    audit.record(conn, g.actor, "rate.create", f"rate:{rate_id}", None, created)
    return jsonify(_public_rate(created)), 201


@bp.get("/rates/<int:rate_id>")
@require(*READERS)
def get_rate(rate_id: int):  # type: ignore[no-untyped-def]
    return jsonify(_public_rate(_rate(rate_id)))


@bp.patch("/rates/<int:rate_id>")
@require("admin")
def update_rate(rate_id: int):  # type: ignore[no-untyped-def]
    before = _rate(rate_id, lock=True)
    values = _rate_values(json_body(), int(before["plan_id"]), partial=True)
    if not values:
        raise params.bad("nothing to change")
    _check_window(values, before)
    conn = get_conn()
    repo.update_rate(conn, rate_id, values)
    after = _rate(rate_id)
    audit.record(conn, g.actor, "rate.update", f"rate:{rate_id}", before, after)
    return jsonify(_public_rate(after))


@bp.delete("/rates/<int:rate_id>")
@require("admin")
def delete_rate(rate_id: int):  # type: ignore[no-untyped-def]
    before = _rate(rate_id, lock=True)
    conn = get_conn()
    repo.delete_rate(conn, rate_id)
    audit.record(conn, g.actor, "rate.delete", f"rate:{rate_id}", before, None)
    return "", 204


@bp.get("/rate-plans/<name>/warnings")
@require(*READERS)
def warnings(name: str):  # type: ignore[no-untyped-def]
    plan = _plan(name)
    found, count = plan_warnings(repo.plan_rates(get_conn(), int(plan["id"])), WARNING_LIMIT)
    return jsonify({"warnings": [w.as_dict() for w in found], "count": count})


# --------------------------------------------------------------------------- CSV


def _accepted(items: Iterable[RateRow | RowError], errors: ErrorLog) -> Iterator[RateRow]:
    for item in items:
        if isinstance(item, RowError):
            errors.add(item)
        else:
            yield item


def _errors_response(errors: ErrorLog) -> ApiError:
    listed = [
        {"line": e.line, "field": e.field, "message": e.message}
        for e in sorted(errors.shown, key=lambda e: e.line)
    ]
    return ApiError(
        422,
        "invalid_rates",
        f"{errors.count} error(s); nothing was imported",
        {"errors": listed, "count": errors.count, "omitted": errors.omitted},
    )


def _finish_import(
    conn: psycopg.Connection[Any], name: str, replace: bool, errors: ErrorLog, source: str
) -> tuple[Any, int]:
    duplicates, total = rate_import.staged_errors(conn, name, ERROR_LIMIT - len(errors.shown))
    errors.extend(duplicates, total)
    if errors:
        raise _errors_response(errors)
    count = rate_import.apply_staged(conn, name, replace=replace)
    plan = _plan(name)
    found, warning_count = plan_warnings(repo.plan_rates(conn, int(plan["id"])), WARNING_LIMIT)
    after = {"source": source, "rates": count, "replace": replace}
    audit.record(conn, g.actor, "rates.import", f"rate_plan:{name}", None, after)
    body = {"plan": name, "imported": count, "replace": replace,
            "warnings": [w.as_dict() for w in found], "warning_count": warning_count}  # fmt: skip
    return jsonify(body), 201


@bp.post("/rate-plans/<name>/import")
@require("admin")
@body_limit(import_max_bytes)
def import_csv(name: str):  # type: ignore[no-untyped-def]
    """The body is the CSV file (``Content-Type: text/csv``); ``?replace=true`` first
    deletes the plan's rates. The plan is created when missing."""
    replace = bool(params.boolean("replace"))
    errors = ErrorLog(ERROR_LIMIT)
    text = io.TextIOWrapper(
        request.stream, encoding="utf-8-sig", errors="surrogateescape", newline=""
    )
    conn = get_conn()
    rows = rates_csv.iter_rate_rows(text, datetime.now(UTC))
    rate_import.stage_rates(conn, _accepted(rows, errors))
    return _finish_import(conn, name, replace, errors, "csv upload")


@bp.post("/rate-plans/<name>/import-legacy")
@require("admin")
def import_legacy(name: str):  # type: ignore[no-untyped-def]
    """JSON ``{"zones": [...], "prefixes": [...], "rate_zones": [...]}`` (objects with the
    legacy column names; money as strings), optional ``effective_start`` and ``replace``."""
    body = json_body()
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in ("zones", "prefixes", "rate_zones"):
        rows = body.get(table)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise params.bad(f"{table} must be a list of objects")
        tables[table] = rows
    start = datetime.now(UTC)
    if body.get("effective_start") is not None:
        start = params.parse_timestamp(body["effective_start"], "effective_start")
    replace = body.get("replace", False)
    if not isinstance(replace, bool):
        raise params.bad("replace must be true or false")
    converted, problems = convert_legacy(
        tables["zones"],
        tables["prefixes"],
        tables["rate_zones"],
        start,
    )
    if problems:
        listed = [
            {"table": p.table, "line": p.line, "field": p.field, "message": p.message}
            for p in problems[:ERROR_LIMIT]
        ]
        raise ApiError(
            422, "invalid_legacy_rates", f"{len(problems)} error(s); nothing was imported",
            {"errors": listed, "count": len(problems)},
        )  # fmt: skip
    conn = get_conn()
    rate_import.stage_rates(conn, converted)
    return _finish_import(conn, name, replace, ErrorLog(ERROR_LIMIT), "legacy zones")


@bp.get("/rate-plans/<name>/export.csv")
@require(*READERS)
def export_csv(name: str):  # type: ignore[no-untyped-def]
    _plan(name)
    return Response(
        _export(settings().database_url, name),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="rates-{_safe(name)}.csv"'},
    )


def _safe(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)


def _export(database_url: str, name: str) -> Iterator[str]:
    """Own connection, one snapshot, server-side cursor; names formula-escaped."""
    with psycopg.connect(database_url, autocommit=False) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield from rates_csv.format_rate_csv(rate_import.stream_plan_rates(conn, name))
        conn.rollback()
