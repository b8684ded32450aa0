"""Per-worker cache of who is calling: the declared trunks, and what each identity key
(account number, ANI, SIP user) names -> id, plan, status, call cap, or no account at all.

Authorization then needs no lookup before ``apolo_reserve()``: one database round trip.
Triggers (sql/006_account_notify.sql, sql/008_identity.sql) send ``apolo_accounts`` whenever
one of these facts changes (an account created or changed, an ANI, a SIP user, a trunk); the
rate watcher's connection listens and drops the whole cache. The cache is used only while
that watcher is demonstrably listening; otherwise every lookup goes to the database. The
balance is never cached: ``apolo_reserve()`` reads it under the row lock, and re-checks the
status there too.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg

from sidecar.identity import Candidate, Trunk
from sidecar.repo import caller_identity as identity_repo
from sidecar.services.caller_identity import load_trunks

MAX_ENTRIES = 200_000
_UNCACHED = object()


class AccountDirectory:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        # (kind, key) -> the account row, or None: known to name no account
        self._entries: dict[tuple[str, str], dict[str, Any] | None] = {}
        self._trunks: tuple[Trunk, ...] | None = None
        self._generation = 0
        self._lock = threading.Lock()
        self._max = max_entries

    def trunks(self, conn: psycopg.Connection[Any], *, trusted: bool) -> tuple[Trunk, ...]:
        """The declared trunks; from the cache when ``trusted`` (the watcher is listening)."""
        cached = self._trunks
        if trusted and cached is not None:
            return cached
        generation = self._generation
        loaded = load_trunks(conn)
        if trusted:
            with self._lock:
                if generation == self._generation:  # no change was announced meanwhile
                    self._trunks = loaded
        return loaded

    def find_first(
        self, conn: psycopg.Connection[Any], candidates: Sequence[Candidate], *, trusted: bool
    ) -> tuple[dict[str, Any], Candidate] | None:
        """The first candidate naming an existing account (see ``identity.identify``).

        Candidates the cache knows are answered from it; from the first one it does not know,
        the rest are looked up together in one round trip and remembered, found or not."""
        start = 0
        if trusted:
            for start, candidate in enumerate(candidates):  # noqa: B007 - used after the loop
                hit = self._entries.get((candidate.kind, candidate.key), _UNCACHED)
                if hit is _UNCACHED:
                    break
                if hit is not None:
                    return hit, candidate  # type: ignore[return-value]
            else:
                return None  # every candidate is known to name no account
        rest = candidates[start:]
        generation = self._generation
        found = identity_repo.find_accounts(conn, [(c.kind, c.key) for c in rest])
        if trusted:
            with self._lock:
                if generation == self._generation:
                    if len(self._entries) + len(rest) > self._max:
                        self._entries.clear()
                    for c in rest:
                        row = found.get((c.kind, c.key))
                        self._entries[(c.kind, c.key)] = None if row is None else dict(row)
        for candidate in rest:
            row = found.get((candidate.kind, candidate.key))
            if row is not None:
                return row, candidate
        return None

    def forget(self, candidate: Candidate) -> None:
        with self._lock:
            self._entries.pop((candidate.kind, candidate.key), None)

    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._trunks = None

    def __len__(self) -> int:
        return len(self._entries)
