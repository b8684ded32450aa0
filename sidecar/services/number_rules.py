"""Number normalization rules: managed by the API, the CLI and the dashboard (audited).

A rule belongs to a rate plan (``plan``) or to a source: a FreeSWITCH switch (``switch``,
the name its CDRs carry as ``switchname``) or a CUCM cluster (``cucm_cluster``, its
``globalCallId_ClusterID``). Each owner has an ordered list per direction (``callee``,
``caller``); a new rule goes last unless given a ``position``.
"""

from __future__ import annotations

from typing import Any

import psycopg

from sidecar.errors import ApiError
from sidecar.rating import NumberRule, apply_rules
from sidecar.rating.numbers import MAX_NUMBER_DIGITS
from sidecar.repo import audit
from sidecar.repo import number_rules as repo
from sidecar.services.numbering import CUCM, FREESWITCH, caller_forms
from sidecar.services.plans import bad, plan_or_404

DIRECTIONS = ("callee", "caller")
OWNERS = {"plan": None, "switch": FREESWITCH, "cucm_cluster": CUCM}
FIELDS = frozenset({*OWNERS, "direction", "position", "strip", "add", "min_length", "max_length"})


def public(row: dict[str, Any]) -> dict[str, Any]:
    owner: dict[str, Any] = {"plan": row["plan"]} if row["plan_id"] is not None else {}
    if row["source"] == FREESWITCH:
        owner = {"switch": row["source_name"]}
    elif row["source"] == CUCM:
        owner = {"cucm_cluster": row["source_name"]}
    return {
        "id": row["id"],
        **owner,
        "direction": row["direction"],
        "position": row["position"],
        "strip": row["strip_prefix"],
        "add": row["add_prefix"],
        "min_length": row["min_length"],
        "max_length": row["max_length"],
        "created_at": row["created_at"],
    }


def owner_of(
    conn: psycopg.Connection[Any], body: dict[str, Any]
) -> tuple[int | None, str | None, str | None]:
    """(plan id, source, source name) of the one owner ``body`` names."""
    named = [key for key in OWNERS if body.get(key) not in (None, "")]
    if len(named) != 1:
        raise bad("name exactly one owner: plan, switch or cucm_cluster")
    key = named[0]
    value = body[key]
    if not isinstance(value, str) or len(value) > 200:
        raise bad(f"{key} must be a name (at most 200 characters)")
    if key == "plan":
        return int(plan_or_404(conn, value)["id"]), None, None
    return None, OWNERS[key], value


def _int(body: dict[str, Any], field: str, default: int, low: int, high: int) -> int:
    value = body.get(field, default)
    if value is None:
        return default
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise bad(f"{field} must be a whole number from {low} to {high}")
    return value


def _rule(body: dict[str, Any], current: dict[str, Any] | None = None) -> NumberRule:
    base = current or {}
    try:
        return NumberRule(
            strip=str(body.get("strip", base.get("strip_prefix", "")) or ""),
            add=str(body.get("add", base.get("add_prefix", "")) or ""),
            min_length=_int(body, "min_length", base.get("min_length", 1), 1, MAX_NUMBER_DIGITS),
            max_length=_int(
                body, "max_length", base.get("max_length", MAX_NUMBER_DIGITS), 1, MAX_NUMBER_DIGITS
            ),
        )
    except ValueError as exc:
        raise bad(str(exc)) from None


def add_rule(conn: psycopg.Connection[Any], actor: str, body: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise bad(f"unknown field(s): {', '.join(unknown)}", fields=unknown)
    plan_id, source, name = owner_of(conn, body)
    direction = body.get("direction")
    if direction not in DIRECTIONS:
        raise bad("direction must be callee or caller")
    rule = _rule(body)
    repo.lock_owner(conn, plan_id, source, name)
    last = repo.next_position(conn, plan_id, source, name, direction)
    position = _int(body, "position", last, 0, last)
    if position < last:
        repo.make_room(conn, plan_id, source, name, direction, position)
    rule_id = repo.insert(
        conn,
        {
            "plan_id": plan_id, "source": source, "source_name": name, "direction": direction,
            "position": position, "strip_prefix": rule.strip, "add_prefix": rule.add,
            "min_length": rule.min_length, "max_length": rule.max_length,
        },
    )  # fmt: skip
    created = public(_get(conn, rule_id))
    audit.record(conn, actor, "number_rule.create", f"number_rule:{rule_id}", None, created)
    return created


def _get(conn: psycopg.Connection[Any], rule_id: int, lock: bool = False) -> dict[str, Any]:
    found = repo.get(conn, rule_id, lock)
    if found is None:
        raise ApiError(404, "number_rule_not_found", f"no number rule {rule_id}")
    return found


def update_rule(
    conn: psycopg.Connection[Any], actor: str, rule_id: int, body: dict[str, Any]
) -> dict[str, Any]:
    unknown = sorted(set(body) - {"strip", "add", "min_length", "max_length"})
    if unknown:
        raise bad(f"only strip, add, min_length and max_length change: {', '.join(unknown)}")
    if not body:
        raise bad("nothing to change")
    before = _get(conn, rule_id, lock=True)
    rule = _rule(body, before)
    repo.update(
        conn, rule_id,
        {"strip_prefix": rule.strip, "add_prefix": rule.add, "min_length": rule.min_length,
         "max_length": rule.max_length},
    )  # fmt: skip
    after = public(_get(conn, rule_id))
    audit.record(conn, actor, "number_rule.update", f"number_rule:{rule_id}", public(before), after)
    return after


def delete_rule(conn: psycopg.Connection[Any], actor: str, rule_id: int) -> None:
    before = _get(conn, rule_id, lock=True)
    repo.delete(conn, rule_id)
    audit.record(conn, actor, "number_rule.delete", f"number_rule:{rule_id}", public(before), None)


def list_rules(conn: psycopg.Connection[Any], filters: dict[str, Any]) -> list[dict[str, Any]]:
    """Every rule, or those of the owner ``filters`` names (and of one direction)."""
    plan_id = source = name = None
    if any(filters.get(key) for key in OWNERS):
        plan_id, source, name = owner_of(conn, filters)
    direction = filters.get("direction") or None
    if direction is not None and direction not in DIRECTIONS:
        raise bad("direction must be callee or caller")
    rows = repo.search(conn, plan_id=plan_id, source=source, source_name=name, direction=direction)
    return [public(r) for r in rows]


def rules_for(
    conn: psycopg.Connection[Any], plan_id: int | None, source: str | None, name: str | None
) -> tuple[tuple[NumberRule, ...], tuple[NumberRule, ...]]:
    """(callee, caller) rules of one owner, in order, as the database holds them now."""
    found: dict[str, list[NumberRule]] = {"callee": [], "caller": []}
    for row in repo.search(conn, plan_id=plan_id, source=source, source_name=name):
        found[row["direction"]].append(
            NumberRule(row["strip_prefix"], row["add_prefix"], row["min_length"], row["max_length"])
        )
    return tuple(found["callee"]), tuple(found["caller"])


def normalize(
    conn: psycopg.Connection[Any],
    number: str,
    direction: str,
    *,
    plan: str | None = None,
    switch: str | None = None,
    cucm_cluster: str | None = None,
) -> dict[str, Any]:
    """What a number becomes with the rules a call would use: the source's, then the
    plan's (and, for callers, the account-matching forms)."""
    if direction not in DIRECTIONS:
        raise bad("direction must be callee or caller")
    if not number or len(number) > 64:
        raise bad("number is required (at most 64 characters)")
    if switch and cucm_cluster:
        raise bad("name one source: switch or cucm_cluster")
    source, name = (FREESWITCH, switch) if switch else (CUCM, cucm_cluster)
    source_rules = rules_for(conn, None, source, name) if name else ((), ())
    plan_rules = (
        rules_for(conn, int(plan_or_404(conn, plan)["id"]), None, None) if plan else ((), ())
    )
    index = DIRECTIONS.index(direction)
    rules = source_rules[index] + plan_rules[index]
    result: dict[str, Any] = {"number": number, "direction": direction,
                              "normalized": apply_rules(number, rules)}  # fmt: skip
    if direction == "caller":
        result["account_matching"] = caller_forms(number, source_rules[1])
    return result
