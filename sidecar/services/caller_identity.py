"""Who pays for a call: the identity rule (sidecar/identity.py) applied to the database.

Shared by authorization (hook and xml_curl routes) and by after-the-fact CDR rating, so that
every route decides the same way. With an :class:`AccountDirectory` whose watcher listens,
trunks and known keys come from the worker's cache and cost no round trip.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from sidecar.identity import UNIDENTIFIED, CallerFacts, Candidate, Trunk, identify, refusal
from sidecar.repo import caller_identity as identity_repo
from sidecar.repo import trunks as trunks_repo

if TYPE_CHECKING:
    from sidecar.services.account_directory import AccountDirectory


@dataclass(frozen=True)
class Identification:
    """The account that pays (None when refused), the candidate that named it, and when
    nobody pays, why (``unidentified_caller`` or ``account_not_found``, see
    ``identity.refusal``)."""

    account: dict[str, Any] | None
    candidate: Candidate | None
    reason: str = ""
    candidates: tuple[Candidate, ...] = ()


def load_trunks(conn: psycopg.Connection[Any]) -> tuple[Trunk, ...]:
    return tuple(
        Trunk(
            name=row["name"],
            networks=tuple(ipaddress.ip_network(c) for c in row["cidrs"]),
            account=row["account"],
            trust_caller_id=bool(row["trust_caller_id"]),
            trust_billing_header=bool(row["trust_billing_header"]),
        )
        for row in trunks_repo.for_identity(conn)
    )


def first_account(
    conn: psycopg.Connection[Any], candidates: Sequence[Candidate]
) -> tuple[dict[str, Any], Candidate] | None:
    """The first candidate that names an existing account, looked up in one round trip."""
    found = identity_repo.find_accounts(conn, [(c.kind, c.key) for c in candidates])
    for candidate in candidates:
        row = found.get((candidate.kind, candidate.key))
        if row is not None:
            return row, candidate
    return None


def who_pays(
    conn: psycopg.Connection[Any],
    facts: CallerFacts,
    directory: AccountDirectory | None = None,
    *,
    trusted: bool = False,
    trunks: Sequence[Trunk] | None = None,
    caller_forms: Sequence[str] = (),
) -> Identification:
    """Apply the identity rule. ``trusted``: the directory's cache may be used (its watcher is
    listening); ``trunks``: already loaded (CDR intake loads them once per batch);
    ``caller_forms``: the caller ID's other forms under the source's number rules."""
    if trunks is None:
        if not facts.network_ip:
            trunks = ()  # the trunk rule needs the source address: no need to load them
        elif directory is not None:
            trunks = directory.trunks(conn, trusted=trusted)
        else:
            trunks = load_trunks(conn)
    candidates = identify(facts, trunks, caller_forms)
    if not candidates:
        return Identification(None, None, UNIDENTIFIED)
    if directory is not None:
        hit = directory.find_first(conn, candidates, trusted=trusted)
    else:
        hit = first_account(conn, candidates)
    if hit is None:
        return Identification(None, None, refusal(candidates), candidates)
    return Identification(hit[0], hit[1], "", candidates)
