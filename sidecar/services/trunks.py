"""Trunk administration shared by the admin API and the CLI (validated, audited)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import psycopg

from sidecar.errors import ApiError
from sidecar.repo import accounts as accounts_repo
from sidecar.repo import audit
from sidecar.repo import trunks as trunks_repo

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_CIDRS = 256


def _bad(message: str, **details: Any) -> ApiError:
    return ApiError(400, "invalid_request", message, details)


def summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "cidrs": list(row["cidrs"]),
        "account": row["account"],
        "trust_caller_id": bool(row["trust_caller_id"]),
        "trust_billing_header": bool(row["trust_billing_header"]),
        "created_at": row["created_at"],
    }


def parse_cidrs(values: list[str]) -> list[str]:
    """Networks in canonical form; host bits, /0, repeats and overlaps among them refused."""
    if not values:
        raise _bad("a trunk needs at least one CIDR (--cidr)")
    if len(values) > MAX_CIDRS:
        raise _bad(f"a trunk takes at most {MAX_CIDRS} CIDRs")
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for value in values:
        text = value.strip() if isinstance(value, str) else ""
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError as exc:
            if "host bits set" in str(exc):
                loose = ipaddress.ip_network(text, strict=False)
                raise _bad(f"{text} has host bits set: did you mean {loose}?", cidr=text) from None
            raise _bad(f"{str(value)[:64]!r} is not a CIDR (e.g. 203.0.113.0/24)") from None
        if network.prefixlen == 0:
            raise _bad(f"{network} would make every address this trunk's", cidr=str(network))
        for other in networks:
            if network.version == other.version and network.overlaps(other):
                raise _bad(f"{network} overlaps {other}", cidr=str(network))
        networks.append(network)
    return [str(n) for n in networks]


def list_trunks(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    return [summary(r) for r in trunks_repo.list_all(conn)]


def create_trunk(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    name: str,
    cidrs: list[str],
    account: str | None = None,
    trust_caller_id: bool = False,
    trust_billing_header: bool = False,
) -> dict[str, Any]:
    if not isinstance(name, str) or NAME_RE.fullmatch(name) is None:
        raise _bad("name must be 1-64 letters, digits, '.', '_' or '-' (starting alphanumeric)")
    networks = parse_cidrs(cidrs)
    account = (account or "").strip() or None
    if account is None and not (trust_caller_id or trust_billing_header):
        raise _bad(
            "a trunk must bill someone: give it an account (--account), or trust its caller ID"
            " (--trust-caller-id) or its billing header (--trust-billing-header)"
        )
    account_id = None
    if account is not None:
        found = accounts_repo.get(conn, account)
        if found is None:
            raise ApiError(404, "account_not_found", f"no account {account}")
        account_id = int(found["id"])
    if trunks_repo.get(conn, name) is not None:
        raise ApiError(409, "trunk_exists", f"trunk {name} already exists")
    clash = trunks_repo.overlapping(conn, networks)
    if clash:
        first = clash[0]
        raise ApiError(
            409,
            "trunk_overlap",
            f"{first['cidr']} overlaps {first['overlaps']} of trunk {first['trunk']}:"
            " an address can belong to one trunk only",
            {"overlaps": clash},
        )
    try:
        with conn.transaction():  # a savepoint: a concurrent twin is refused, not a 500
            trunks_repo.create(
                conn,
                name=name,
                account_id=account_id,
                trust_caller_id=bool(trust_caller_id),
                trust_billing_header=bool(trust_billing_header),
                cidrs=networks,
            )
    except psycopg.errors.ExclusionViolation:
        raise ApiError(
            409, "trunk_overlap", "a CIDR of this trunk overlaps one declared meanwhile"
        ) from None
    except psycopg.errors.UniqueViolation:
        raise ApiError(409, "trunk_exists", f"trunk {name} already exists") from None
    created = trunks_repo.get(conn, name)
    assert created is not None
    result = summary(created)
    audit.record(conn, actor, "trunk.create", f"trunk:{name}", None, result)
    return result


def delete_trunk(conn: psycopg.Connection[Any], *, actor: str, name: str) -> dict[str, Any]:
    found = trunks_repo.get(conn, name, lock=True)
    if found is None:
        raise ApiError(404, "trunk_not_found", f"no trunk {name}")
    before = summary(found)
    trunks_repo.delete(conn, int(found["id"]))
    audit.record(conn, actor, "trunk.delete", f"trunk:{name}", before, None)
    return before
