"""Fraud control configuration shared by the admin API, the CLI and the dashboard (audited).

Each request shape is declared once, as a table of fields (JSON Schema for OpenAPI plus
the parser that validates it); :func:`validate` applies it, so the API, the CLI and the
dashboard forms refuse the same things with the same messages. What is enforced, and how
allow and deny combine, is in sql/009_fraud_controls.sql and the README.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg

from sidecar.errors import ApiError
from sidecar.money import parse_money
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import audit
from sidecar.repo import fraud as fraud_repo
from sidecar.repo import rates as rates_repo

Json = dict[str, Any]
MAX_RULES = 1000
MAX_NOTE = 100
MAX_CALLS_PER_MINUTE = 1000
MAX_FACTOR = Decimal("999999.99")
CONTROLS = ("destination_denied", "calls_per_minute", "daily_spend_limit", "spend_spike",
            "unknown_fac")  # fmt: skip
MONEY: Json = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,4})?$", "examples": ["50.00"]}
FACTOR: Json = {"type": "string", "pattern": r"^[0-9]+(\.[0-9]{1,2})?$", "examples": ["5"]}


@dataclass(frozen=True)
class Field:
    schema: Json
    parse: Callable[[object, str], Any]  # raises ValueError with the message to show


def _prefix(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name}: a prefix is a string of digits")
    digits = value.strip().removeprefix("+")
    if not (digits.isascii() and digits.isdigit()) or not 1 <= len(digits) <= 32:
        raise ValueError(f"{name}: {value!r} is not a prefix (1 to 32 digits)")
    return digits


def _rules(value: object, name: str) -> list[tuple[str, str]]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of prefixes")
    if len(value) > MAX_RULES:
        raise ValueError(f"{name}: at most {MAX_RULES} prefixes")
    found: dict[str, str] = {}
    for item in value:
        note: object = ""
        if isinstance(item, dict):
            unknown = set(item) - {"prefix", "note"}
            if unknown:
                raise ValueError(f"{name}: unknown fields {sorted(unknown)}")
            prefix, note = _prefix(item.get("prefix"), name), item.get("note") or ""
        else:
            prefix = _prefix(item, name)
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            raise ValueError(f"{name}: a note is a string of at most {MAX_NOTE} characters")
        if prefix in found:
            raise ValueError(f"{name}: prefix {prefix} is listed twice")
        found[prefix] = note.strip()
    return sorted(found.items())


def _optional(parse: Callable[[object, str], Any]) -> Callable[[object, str], Any]:
    return lambda value, name: None if value is None else parse(value, name)


def _count(high: int) -> Callable[[object, str], int]:
    def parse(value: object, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            raise ValueError(f"{name} must be a whole number from 1 to {high}")
        return value

    return parse


def _positive_money(value: object, name: str) -> Decimal:
    amount = parse_money(value, name)
    if amount <= 0:
        raise ValueError(f"{name} must be greater than zero")
    return amount


def _factor(value: object, name: str) -> Decimal:
    message = f"{name} must be 0 (off) or a number greater than 1, with at most 2 decimals"
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(message)
    try:
        factor = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError(message) from None
    if not factor.is_finite() or factor != factor.quantize(Decimal("0.01")):
        raise ValueError(message)
    if not (factor == 0 or 1 < factor <= MAX_FACTOR):
        raise ValueError(message)
    return factor


def _time_zone(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise ValueError(f"{name} must be a time zone name such as America/Lima")
    return value.strip()


def _window(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 86400:
        raise ValueError(f"{name} must be a whole number of seconds from 0 to 86400")
    return value


_RULES_SCHEMA: Json = {
    "type": "array",
    "maxItems": MAX_RULES,
    "items": {
        "oneOf": [
            {"type": "string", "pattern": r"^\+?[0-9]{1,32}$"},
            {
                "type": "object",
                "required": ["prefix"],
                "properties": {
                    "prefix": {"type": "string", "pattern": r"^\+?[0-9]{1,32}$"},
                    "note": {"type": "string", "maxLength": MAX_NOTE},
                },
                "additionalProperties": False,
            },
        ]
    },
    "description": "the whole list (it replaces the current one); digits as dialled after "
    "dropping non-digits, e.g. 1900 (premium rate), 00 (international), 881 (satellite)",
}
RULE_FIELDS: dict[str, Field] = {
    "allow": Field(_RULES_SCHEMA, _rules),
    "deny": Field(_RULES_SCHEMA, _rules),
}
ACCOUNT_FIELDS: dict[str, Field] = {
    **RULE_FIELDS,
    "max_calls_per_minute": Field(
        {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_CALLS_PER_MINUTE},
        _optional(_count(MAX_CALLS_PER_MINUTE)),
    ),
    "daily_spend_limit": Field(
        {"oneOf": [MONEY, {"type": "null"}], "description": "charged + reserved per local day"},
        _optional(_positive_money),
    ),
    "time_zone": Field(
        {"type": "string", "examples": ["America/Lima"], "description": "IANA name; UTC"},
        _time_zone,
    ),
    "spend_spike_factor": Field(
        {"oneOf": [FACTOR, {"type": "null"}], "description": "null: the default; 0: off"},
        _optional(_factor),
    ),
}
SETTINGS_FIELDS: dict[str, Field] = {
    "spike_factor": Field({**FACTOR, "description": "0 turns spike alerts off"}, _factor),
    "spike_min_spend": Field(MONEY, lambda v, n: parse_money(v, n)),
    "alert_window_seconds": Field({"type": "integer", "minimum": 0, "maximum": 86400}, _window),
}


def body_schema(fields: dict[str, Field]) -> Json:
    return {
        "type": "object",
        "minProperties": 1,
        "properties": {name: field.schema for name, field in fields.items()},
        "additionalProperties": False,
    }


def validate(body: dict[str, Any], fields: dict[str, Field]) -> dict[str, Any]:
    """The parsed values of ``body``; 400 naming every bad or unknown field."""
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise ApiError(400, "invalid_request", "unknown fields", {"fields": unknown})
    if not body:
        raise ApiError(400, "invalid_request", "nothing to change")
    values: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name, raw in body.items():
        try:
            values[name] = fields[name].parse(raw, name)
        except ValueError as exc:
            problems[name] = str(exc)
    if problems:
        raise ApiError(400, "invalid_request", "; ".join(problems.values()), {"fields": problems})
    return values


# ------------------------------------------------------------------ views


def _rule_lists(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, str]]]:
    lists: dict[str, list[dict[str, str]]] = {"allow": [], "deny": []}
    for r in rows:
        lists[r["verdict"]].append({"prefix": r["prefix"], "note": r["note"]})
    return lists


def _account(conn: psycopg.Connection[Any], number: str, lock: bool = False) -> dict[str, Any]:
    row = accounts_repo.get(conn, number, lock=lock)
    if row is None:
        raise ApiError(404, "account_not_found", f"no account {number}")
    return row


def _plan_id(conn: psycopg.Connection[Any], name: str) -> int:
    plan_id = rates_repo.plan_id_by_name(conn, name)
    if plan_id is None:
        raise ApiError(404, "plan_not_found", f"no rate plan named {name!r}")
    return plan_id


def _optional_text(value: Any) -> str | None:
    return None if value is None else str(value)


def account_controls(conn: psycopg.Connection[Any], number: str) -> dict[str, Any]:
    account = _account(conn, number)
    return _account_view(conn, account)


def _account_view(conn: psycopg.Connection[Any], account: dict[str, Any]) -> dict[str, Any]:
    account_id, plan_id = int(account["id"]), int(account["plan_id"])
    limits = fraud_repo.account_limits(conn, account_id)
    return {
        "account": account["number"],
        **_rule_lists(fraud_repo.rules(conn, account_id=account_id)),
        "max_calls_per_minute": limits["max_calls_per_minute"],
        "daily_spend_limit": _optional_text(limits["daily_spend_limit"]),
        "time_zone": limits["time_zone"],
        "spend_spike_factor": _optional_text(limits["spend_spike_factor"]),
        "spent_today": str(limits["spent_today"]),
        "day_started_at": limits["day_start"],
        "plan": {"name": account["plan"], **_rule_lists(fraud_repo.rules(conn, plan_id=plan_id))},
    }


def _configured(view: dict[str, Any]) -> dict[str, Any]:
    """What an admin sets (the audit's before/after): no running figures."""
    return {k: v for k, v in view.items() if k not in ("spent_today", "day_started_at", "plan")}


def plan_controls(conn: psycopg.Connection[Any], name: str) -> dict[str, Any]:
    plan_id = _plan_id(conn, name)
    return {"plan": name, **_rule_lists(fraud_repo.rules(conn, plan_id=plan_id))}


def settings(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    row = fraud_repo.settings(conn)
    return {
        "spike_factor": str(row["spike_factor"]),
        "spike_min_spend": str(row["spike_min_spend"]),
        "alert_window_seconds": row["alert_window_seconds"],
        "updated_at": row["updated_at"],
    }


# ------------------------------------------------------------------ writes


def _prefixes(entries: list[Any]) -> set[str]:
    """Prefixes of parsed entries ((prefix, note)) or of a view's ({"prefix", "note"})."""
    return {e["prefix"] if isinstance(e, dict) else e[0] for e in entries}


def _check_overlap(allow: list[Any], deny: list[Any]) -> None:
    both = sorted(_prefixes(allow) & _prefixes(deny))
    if both:
        raise ApiError(
            400,
            "invalid_request",
            f"prefix {both[0]} is both allowed and denied: a prefix has one verdict",
            {"prefixes": both},
        )


def _write_rules(
    conn: psycopg.Connection[Any],
    values: dict[str, Any],
    current: dict[str, Any],
    *,
    plan_id: int | None = None,
    account_id: int | None = None,
) -> None:
    _check_overlap(values.get("allow", current["allow"]), values.get("deny", current["deny"]))
    for verdict in ("allow", "deny"):
        if verdict in values:
            fraud_repo.replace_rules(
                conn, verdict, values[verdict], plan_id=plan_id, account_id=account_id
            )


def update_account_controls(
    conn: psycopg.Connection[Any], *, actor: str, number: str, body: dict[str, Any]
) -> dict[str, Any]:
    values = validate(body, ACCOUNT_FIELDS)
    account = _account(conn, number, lock=True)
    if "time_zone" in values and not fraud_repo.is_time_zone(conn, values["time_zone"]):
        raise ApiError(
            400,
            "invalid_request",
            f"time_zone: {values['time_zone']!r} is not a time zone name (e.g. America/Lima)",
            {"fields": {"time_zone": "unknown time zone"}},
        )
    before = _account_view(conn, account)
    _write_rules(conn, values, before, account_id=int(account["id"]))
    fraud_repo.set_account_limits(conn, int(account["id"]), values)
    after = _account_view(conn, account)
    audit.record(conn, actor, "controls.account.update", f"account:{number}",
                 _configured(before), _configured(after))  # fmt: skip
    return after


def update_plan_controls(
    conn: psycopg.Connection[Any], *, actor: str, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    values = validate(body, RULE_FIELDS)
    plan_id = _plan_id(conn, name)
    fraud_repo.lock_plan(conn, plan_id)
    before = plan_controls(conn, name)
    _write_rules(conn, values, before, plan_id=plan_id)
    after = plan_controls(conn, name)
    audit.record(conn, actor, "controls.plan.update", f"rate_plan:{name}", before, after)
    return after


def update_settings(
    conn: psycopg.Connection[Any], *, actor: str, body: dict[str, Any]
) -> dict[str, Any]:
    values = validate(body, SETTINGS_FIELDS)
    fraud_repo.settings(conn, lock=True)
    before = settings(conn)
    fraud_repo.update_settings(conn, values)
    after = settings(conn)
    audit.record(conn, actor, "controls.settings.update", "fraud_settings",
                 {k: v for k, v in before.items() if k != "updated_at"},
                 {k: v for k, v in after.items() if k != "updated_at"})  # fmt: skip
    return after


# ------------------------------------------------------------------ alerts


def alerts(
    conn: psycopg.Connection[Any],
    *,
    account: str | None = None,
    control: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    if control is not None and control not in CONTROLS:
        raise ApiError(400, "invalid_request", f"control must be one of {', '.join(CONTROLS)}")
    account_id = None if account is None else int(_account(conn, account)["id"])
    rows = fraud_repo.recent_alerts(conn, account_id=account_id, control=control, limit=limit)
    return [dict(r) for r in rows]
