"""``apolo cdr replay --direct``: an err-log-dir backlog straight into PostgreSQL, in batches.

For the morning after an outage (the sidecar was down, FreeSWITCH spooled every CDR): a pool
of processes reads and parses the files, and each batch is decided and settled by the code
the HTTP intake runs (``ingest_many``: one read of every CDR's context, one
``apolo_settle_cdrs`` that stores and charges the batch set-based) in one transaction. A
batch's files are deleted only after its commit; a file that is not a valid CDR moves to
``rejected/`` with a ``.reason``, as with the HTTP replay. Replaying twice charges once: the
CDRs are unique per (call uuid, leg) and a CDR moves money at most once.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import redis as redis_lib

from sidecar.cli.cdr_cmd import reject
from sidecar.config import Settings
from sidecar.db import connect_cli
from sidecar.freeswitch.xml_cdr import CdrRecord, decode_spooled_file, parse_post
from sidecar.redis_store import new_client
from sidecar.services import live_calls
from sidecar.services.cdr_ingest import ingest_many
from sidecar.services.rate_catalog import RateCatalog

log = logging.getLogger(__name__)
ACTOR = "replay"


@dataclass(frozen=True)
class Loaded:
    path: str
    record: CdrRecord | None
    raw_xml: str | None
    error: str = ""


@dataclass
class BulkStats:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    batches: int = 0

    def summary(self) -> str:
        return (
            f"accepted {self.accepted}, duplicates {self.duplicate}, rejected {self.rejected}, "
            f"failed 0 ({self.batches} batch(es) committed)"
        )


def load_file(path: str, max_bytes: int, keep_raw: bool) -> Loaded:
    """Read and parse one spool file (runs in a pool process)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return Loaded(path, None, None, "gone")
    try:
        post = decode_spooled_file(os.path.basename(path), data)
        record = parse_post(post, max_bytes=max_bytes)
    except ValueError as exc:  # not a CDR spool file, hostile or invalid XML, bad values
        return Loaded(path, None, None, f"not a valid mod_xml_cdr spool file: {exc}")
    # every channel variable stays in raw_xml; the record crosses to the parent without them
    record = dataclasses.replace(record, variables={})
    return Loaded(path, record, post.xml.decode("utf-8") if keep_raw else None)


def _load_chunk(args: tuple[list[str], int, bool]) -> list[Loaded]:
    paths, max_bytes, keep_raw = args
    return [load_file(p, max_bytes, keep_raw) for p in paths]


def _chunks(paths: Iterator[Path], size: int) -> Iterator[list[str]]:
    while chunk := [str(p) for p in islice(paths, size)]:
        yield chunk


def replay_direct(
    files: Iterator[Path],
    settings: Settings,
    batch_size: int = 2000,
    jobs: int | None = None,
    keep: bool = False,
) -> BulkStats:
    """Replay ``files`` batch by batch; raises when PostgreSQL fails, leaving the files of
    the uncommitted batch where they are. The pool parses ahead while a batch settles."""
    stats = BulkStats()
    jobs = jobs or os.cpu_count() or 1
    chunk = max(1, batch_size // (2 * jobs))
    work = ((paths, settings.max_document_bytes, settings.keep_raw_cdr)
            for paths in _chunks(files, chunk))  # fmt: skip
    catalog = RateCatalog(lambda: connect_cli(settings.database_url), settings.rate_poll_seconds)
    spawn = multiprocessing.get_context("spawn")  # no fork of a process holding connections
    try:
        with (
            ProcessPoolExecutor(jobs, mp_context=spawn) as pool,
            connect_cli(settings.database_url) as conn,
        ):
            batch: list[Loaded] = []
            for loaded in pool.map(_load_chunk, work):
                batch.extend(loaded)
                if len(batch) >= batch_size:
                    _commit_batch(conn, catalog, settings, batch, stats, keep)
                    batch = []
            if batch:
                _commit_batch(conn, catalog, settings, batch, stats, keep)
    finally:
        catalog.stop()
    return stats


def _commit_batch(
    conn: Any,
    catalog: RateCatalog,
    settings: Settings,
    batch: list[Loaded],
    stats: BulkStats,
    keep: bool,
) -> None:
    good = [item for item in batch if item.record is not None]
    for item in batch:
        if item.record is None and item.error != "gone":
            reject(Path(item.path), item.error)
            stats.rejected += 1
    if not good:
        return
    arrivals = [(item.record, item.raw_xml) for item in good if item.record is not None]
    results = ingest_many(conn, catalog, arrivals, source="freeswitch", actor=ACTOR)
    conn.commit()
    stats.batches += 1
    fresh = [r.uuid for r in results if not r.duplicate]
    stats.accepted += len(fresh)
    stats.duplicate += len(results) - len(fresh)
    if not keep:
        for item in good:
            Path(item.path).unlink(missing_ok=True)
    _forget_live_calls(settings, fresh)


def _forget_live_calls(settings: Settings, uuids: list[str]) -> None:
    """After the commit, as the HTTP intake does; Redis is only the live view."""
    if not uuids:
        return
    client = new_client(settings, socket_timeout=2)
    try:
        live_calls.remove_many(client, uuids)
    except redis_lib.RedisError as exc:
        log.warning("live call table not updated (%s); PostgreSQL stays the record", exc)
    finally:
        client.close()
