"""Reconciliation: release reservations whose call no switch has any more.

A reservation is released only when every configured switch has answered ``show channels``
recently (never on partial knowledge), its channel is on none of them, and it has been
missing for the whole grace (time for mod_xml_cdr to post, retry or spool the CDR, which
closes the reservation itself). Each release is flagged in ``control_audit``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import psycopg

from sidecar.repo import control as control_repo

log = logging.getLogger(__name__)
DbConnect = Callable[[], AbstractContextManager[psycopg.Connection[Any]]]


def channel_uuids(show_channels_json: str) -> set[str]:
    """The uuids in the output of ``show channels as json`` (``{"row_count": 0}`` when idle)."""
    try:
        data = json.loads(show_channels_json)
    except ValueError:
        raise ValueError(f"show channels gave no JSON: {show_channels_json[:80]!r}") from None
    if not isinstance(data, dict) or "row_count" not in data:
        raise ValueError("show channels JSON has no row_count")
    rows = data.get("rows") or []
    return {str(r["uuid"]) for r in rows if isinstance(r, dict) and r.get("uuid")}


def orphan_decisions(
    open_uuids: Iterable[str],
    present: set[str],
    missing_since: dict[str, float],
    now: float,
    grace: float,
) -> tuple[list[str], dict[str, float]]:
    """(uuids to release, the new missing-since map) for the open reservations given."""
    release: list[str] = []
    still_missing: dict[str, float] = {}
    for uuid in open_uuids:
        if uuid in present:
            continue
        since = missing_since.get(uuid, now)
        still_missing[uuid] = since
        if now - since >= grace:
            release.append(uuid)
    return release, still_missing


class Reconciler:
    def __init__(
        self,
        nodes: Iterable[str],
        db: DbConnect,
        grace_seconds: float,
        max_snapshot_age: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._nodes = tuple(nodes)
        self._db = db
        self._grace = grace_seconds
        self._max_age = max_snapshot_age
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshots: dict[str, tuple[set[str], float]] = {}
        self._missing: dict[str, float] = {}

    def snapshot(self, node: str, uuids: set[str]) -> None:
        with self._lock:
            self._snapshots[node] = (set(uuids), self._clock())

    def forget(self, node: str) -> None:
        """The node's connection is gone: its old snapshot must not count any more."""
        with self._lock:
            self._snapshots.pop(node, None)

    def note_hangup(self, uuid: str) -> None:
        with self._lock:
            self._missing.setdefault(uuid, self._clock())

    def run(self) -> list[dict[str, Any]]:
        with self._lock:
            now = self._clock()
            present: set[str] = set()
            for node in self._nodes:
                snap = self._snapshots.get(node)
                if snap is None or now - snap[1] > self._max_age:
                    log.info("reconciliation skipped: no recent channel list from %s", node)
                    return []
                present |= snap[0]
            released: list[dict[str, Any]] = []
            with self._db() as conn:
                rows = control_repo.open_older_than(conn, timedelta(seconds=self._grace))
                by_uuid = {str(r["call_uuid"]): r for r in rows}
                release, self._missing = orphan_decisions(
                    by_uuid, present, self._missing, now, self._grace
                )
                for uuid in release:
                    missing_for = now - self._missing.pop(uuid, now)
                    reason = (
                        f"no channel on any switch for {missing_for:.0f}s"
                        f" (grace {self._grace:.0f}s) and no CDR"
                    )
                    row = control_repo.release_orphan(conn, int(by_uuid[uuid]["id"]), reason)
                    if row is not None:
                        released.append(row)
                        log.warning("released orphaned reservation of %s: %s", uuid, reason)
            return released
