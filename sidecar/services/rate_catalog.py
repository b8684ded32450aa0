"""LPM indexes of the rate plans, kept in step with PostgreSQL and shared by the workers
of a host.

An index lives in one file per (plan, version) in a directory per host and database
(``APOLO_INDEX_DIR``); every worker maps the file read-only, so a million-rate index
costs the host its page cache once instead of each worker its heap. The first worker
that needs a version builds the file under an exclusive lock on the plan, in a
short-lived child process (``python -m sidecar.services.rate_catalog``): the build's
transient memory (a few hundred MB for a million rates) and its CPU stay out of the
long-lived worker, whose lookups go on at full speed meanwhile. A plan of fewer than
``CHILD_MIN_RATES`` rates is built in the worker itself: that takes milliseconds, while
starting the child's interpreter takes 0.2 s on an idle host and over a second on a busy
one, long enough for the calls waiting on a new plan's first index to run out of the
hook's time budget (the end-to-end tier saw a burst of calls on a new plan fail closed).
The others wait on the lock and map the result; a restarted worker maps it in
milliseconds. Files of versions older than the one just mapped are deleted (a worker
still mapping one keeps its pages).

A watcher thread per worker LISTENs on ``apolo_rates`` (sent by the rates triggers) and
also polls ``rate_plans.version`` every ``poll_seconds``, so a missed notification
(reconnect, another sidecar host) still reaches every worker within about a second. A
changed plan is loaded off to the side and swapped in whole; lookups keep using the old
index until then.

A plan that names a parent is rated through its ``Rating``: its own index, then its
parent's (each file holds its plan's parent id, so the chain follows the versions the
worker holds). The normalization rules of sources (FreeSWITCH switches, CUCM clusters)
are held the same way, reloaded when ``number_rules_version`` moves.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from sidecar.rating import NumberRule, PlanMeta, RateIndex, Rating
from sidecar.repo import rates as rates_repo

log = logging.getLogger(__name__)
Connect = Callable[[], psycopg.Connection[Any]]
BUILD_TIMEOUT = 600.0  # seconds a child may take to build one plan
CHILD_MIN_RATES = 20_000  # smaller plans are built in the worker (milliseconds)
STALE_TEMP = 600.0  # an unfinished file older than this is a crashed build's
STALE_DATABASE = 7 * 86400.0  # another cluster's directory unused this long is deleted
TOUCH_EVERY = 3600.0  # a directory in use is touched this often (the watcher polls)
MAX_CHAIN = 16  # plans in a fallback chain (cycles are refused by the database anyway)
SOURCES = ("freeswitch", "cucm")
NO_RULES: tuple[tuple[NumberRule, ...], tuple[NumberRule, ...]] = ((), ())
SourceRules = tuple[tuple[NumberRule, ...], tuple[NumberRule, ...]]  # (callee, caller)


def default_index_dir() -> str:
    """Under the system temp dir, one per user (``$TMPDIR/apolo-rates-<uid>``); the files
    themselves go one level down, per database (see ``RateCatalog``)."""
    return str(Path(tempfile.gettempdir()) / f"apolo-rates-{os.getuid()}")


class RateCatalog:
    def __init__(
        self,
        connect: Connect,
        poll_seconds: float = 0.5,
        on_accounts_changed: Callable[[], None] | None = None,
        *,
        database_url: str = "",
        index_dir: str = "",
        child_min_rates: int = CHILD_MIN_RATES,
    ) -> None:
        """``database_url`` is what a build child connects to; without it the worker
        builds in its own process, as it does plans of fewer than ``child_min_rates``
        rates. ``index_dir`` defaults to ``default_index_dir()``."""
        self._connect = connect
        self._poll = poll_seconds
        # the watcher's connection also hears ``apolo_accounts`` for the account directory
        self._on_accounts_changed = on_accounts_changed or (lambda: None)
        self._database_url = database_url
        self._child_min_rates = child_min_rates
        self._base_dir = Path(index_dir or default_index_dir())
        self._dir: Path | None = None
        self._listening = False
        self._indexes: dict[int, RateIndex] = {}
        self._ratings: dict[int, Rating] = {}  # dropped whenever an index is replaced
        self._sources: dict[tuple[str, str], SourceRules] = {}
        self._sources_version = -1
        self._lock = threading.Lock()
        self._pid = 0
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self.last_refresh = 0.0

    def index(self, plan_id: int) -> RateIndex:
        self._ensure_watcher()
        found = self._indexes.get(plan_id)
        if found is not None:
            return found
        with self._lock:
            found = self._indexes.get(plan_id)
            if found is None:
                with self._connect() as conn:
                    conn.autocommit = True  # no transaction held open while a child builds
                    found = self._load(conn, plan_id)
                self._indexes[plan_id] = found
                self._ratings.clear()
        return found

    def rating(self, plan_id: int) -> Rating:
        """The plan's rates and its parents' (nearest first), as this worker holds them."""
        found = self._ratings.get(plan_id)
        if found is not None:
            return found
        chain = [self.index(plan_id)]
        seen = {plan_id}
        parent = chain[0].meta.parent_id
        while parent is not None and parent not in seen and len(chain) < MAX_CHAIN:
            seen.add(parent)
            chain.append(self.index(parent))
            parent = chain[-1].meta.parent_id
        found = Rating(chain)
        self._ratings[plan_id] = found
        return found

    def source_rules(self, source: str, name: str | None) -> SourceRules:
        """(callee rules, caller rules) of a FreeSWITCH switch or CUCM cluster; none when
        it has none (or no name is known)."""
        if not name:
            return NO_RULES
        self._ensure_watcher()
        if self._sources_version < 0 or not self.listening:
            with self._connect() as conn:
                conn.autocommit = True
                self._load_sources(conn)
        return self._sources.get((source, name), NO_RULES)

    def _load_sources(self, conn: psycopg.Connection[Any]) -> None:
        version = rates_repo.number_rules_version(conn)
        if version == self._sources_version:
            return
        loaded: dict[tuple[str, str], tuple[list[NumberRule], list[NumberRule]]] = {}
        for row in rates_repo.source_rules(conn):
            callee, caller = loaded.setdefault((row["source"], row["source_name"]), ([], []))
            rule = NumberRule(
                row["strip_prefix"], row["add_prefix"], row["min_length"], row["max_length"]
            )
            (callee if row["direction"] == "callee" else caller).append(rule)
        self._sources = {key: (tuple(a), tuple(b)) for key, (a, b) in loaded.items()}
        self._sources_version = version

    def refresh(self, conn: psycopg.Connection[Any]) -> list[int]:
        """Reload every held plan whose version moved; the ids reloaded."""
        versions = rates_repo.plan_versions(conn)
        self._touch()
        reloaded = []
        for plan_id, index in list(self._indexes.items()):
            if versions.get(plan_id, 0) != index.version:
                new_index = self._load(conn, plan_id)
                with self._lock:
                    self._indexes[plan_id] = new_index
                    self._ratings.clear()
                reloaded.append(plan_id)
        self._load_sources(conn)
        self.last_refresh = time.monotonic()
        return reloaded

    @property
    def listening(self) -> bool:
        """The watcher holds its LISTEN connection and looked at it moments ago: anything
        announced on ``apolo_rates`` / ``apolo_accounts`` reaches this process promptly."""
        return self._listening and time.monotonic() - self.last_refresh < 2 * self._poll + 1

    @property
    def healthy(self) -> bool:
        return self._watcher is None or time.monotonic() - self.last_refresh < 10 + self._poll

    def stop(self) -> None:
        self._stop.set()

    def directory(self, conn: psycopg.Connection[Any]) -> Path:
        """This database's index directory on this host (created on first use), beside
        those of other databases: the ones of databases since dropped from this cluster
        are deleted then, and those of other clusters nobody used for a week."""
        if self._dir is None:
            _private_dir(self._base_dir)
            cluster, oid = rates_repo.database_identity(conn)
            found = self._base_dir / f"db-{cluster}-{oid}"
            _private_dir(found)
            _sweep(self._base_dir, found, f"db-{cluster}-", rates_repo.database_oids(conn))
            self._dir = found
        elif not self._dir.is_dir():  # a temp cleaner took it: files are rebuilt as needed
            _private_dir(self._base_dir)
            _private_dir(self._dir)
        return self._dir

    def _touch(self) -> None:
        """Mark the directory in use now and then (see ``_sweep``)."""
        with suppress(OSError):
            if self._dir is not None and time.time() - self._dir.stat().st_mtime > TOUCH_EVERY:
                os.utime(self._dir)

    def _load(self, conn: psycopg.Connection[Any], plan_id: int) -> RateIndex:
        """The current version's index: mapped from its file, built first if need be."""
        started = time.perf_counter()
        version = rates_repo.plan_version(conn, plan_id)
        if version == 0:  # no such plan: nothing to share
            return RateIndex(version=0, meta=PlanMeta(plan_id=plan_id))
        directory = self.directory(conn)
        index, how = _try_load(directory / _file_name(plan_id, version)), "mapped"
        if index is None:
            with _exclusive(directory / f"plan-{plan_id}.lock"):
                # whoever held the lock may have built it; the plan may have moved on
                version = rates_repo.plan_version(conn, plan_id)
                index = _try_load(directory / _file_name(plan_id, version))
                if index is None:
                    path, how = self._build(conn, plan_id, directory)
                    index = RateIndex.load(path)
                _remove_older(directory, plan_id, index.version)
        log.info(
            "rate plan %s v%s: %d rates %s in %.3fs",
            plan_id, index.version, len(index), how, time.perf_counter() - started,
        )  # fmt: skip
        return index

    def _build(
        self, conn: psycopg.Connection[Any], plan_id: int, directory: Path
    ) -> tuple[Path, str]:
        """The new file, and how it was built."""
        if (
            not self._database_url
            or not sys.executable
            or not rates_repo.plan_has_rates(conn, plan_id, self._child_min_rates)
        ):
            return build_file(conn, plan_id, directory), "built"
        proc = subprocess.run(
            [sys.executable, "-m", __name__, str(plan_id), str(directory)],
            env={**os.environ, "APOLO_BUILD_DATABASE_URL": self._database_url},
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"building rate plan {plan_id} failed: {proc.stderr[-2000:]}")
        return Path(json.loads(proc.stdout.splitlines()[-1])["path"]), "built in a child"

    def _ensure_watcher(self) -> None:
        if self._pid == os.getpid() and self._watcher is not None:
            return
        with self._lock:
            if self._pid == os.getpid() and self._watcher is not None:
                return
            if self._pid != os.getpid():  # forked: the parent's indexes may be stale
                self._indexes.clear()
                self._ratings.clear()
                self._sources_version = -1
            self._pid = os.getpid()
            self.last_refresh = time.monotonic()
            self._watcher = threading.Thread(target=self._watch, name="apolo-rates", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                with self._connect() as conn:
                    conn.autocommit = True
                    conn.execute("LISTEN apolo_rates")
                    conn.execute("LISTEN apolo_accounts")
                    self._on_accounts_changed()  # whatever was announced while not listening
                    self.refresh(conn)
                    self._listening = True
                    backoff = 0.5
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=self._poll, stop_after=1):
                            if notify.channel == "apolo_accounts":
                                self._on_accounts_changed()
                        if not self._stop.is_set():
                            self.refresh(conn)
            except Exception as exc:  # keep watching whatever happens
                self._listening = False
                log.warning("rate watcher lost its connection (%s); retrying", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)


def build_file(conn: psycopg.Connection[Any], plan_id: int, directory: Path) -> Path:
    """Build the plan's current version into its file in ``directory``; the path.

    Written under a temporary name, fsynced and renamed: a reader sees the whole file or
    none. The caller holds the plan's lock."""
    with rates_repo.plan_snapshot_text(conn, plan_id) as (version, meta, blocks):
        index = RateIndex.from_text(blocks, version, PlanMeta.from_json(meta))
    path = directory / _file_name(plan_id, version)
    temporary = directory / f".{path.name}.{os.getpid()}.tmp"
    try:
        index.save(temporary)
        os.replace(temporary, path)
    finally:
        with suppress(FileNotFoundError):
            temporary.unlink()
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a crash
    finally:
        os.close(fd)
    return path


def _file_name(plan_id: int, version: int) -> str:
    return f"plan-{plan_id}-v{version}.lpm"


def _try_load(path: Path) -> RateIndex | None:
    try:
        return RateIndex.load(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # damaged: rebuilt and replaced under the lock
        log.warning("rate index %s unreadable (%s)", path, exc)
        return None


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when closed, also if this process dies
        yield
    finally:
        os.close(fd)


def _remove_older(directory: Path, plan_id: int, version: int) -> None:
    """Files of the plan's older versions, and builds that died half-way. A worker that
    still maps an old file keeps its pages until it lets go of them."""
    now, head = time.time(), f"plan-{plan_id}-v"
    for entry in directory.iterdir():
        name = entry.name
        try:
            if name.startswith("." + head) and name.endswith(".tmp"):
                if now - entry.stat().st_mtime > STALE_TEMP:
                    entry.unlink()
            elif name.startswith(head) and name.endswith(".lpm"):
                if int(name[len(head) : -len(".lpm")]) < version:
                    entry.unlink()
        except (OSError, ValueError):
            continue


def _sweep(base: Path, ours: Path, cluster: str, live_oids: set[int]) -> None:
    now = time.time()
    for entry in base.iterdir():
        name = entry.name
        if not name.startswith("db-") or entry == ours:
            continue
        try:
            age = now - entry.stat().st_mtime  # a new one may be of a database newer than
            dropped = name.startswith(cluster) and int(name[len(cluster) :]) not in live_oids
            if (dropped and age > 60) or age > STALE_DATABASE:  # ... live_oids
                shutil.rmtree(entry)
        except (OSError, ValueError):
            continue


def _private_dir(path: Path) -> None:
    """Create ``path`` (0700) or accept it only if it is ours and nobody else can write
    to it: whoever can plant a file there decides the rates."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(path)
    if (
        not stat.S_ISDIR(info.st_mode)
        or info.st_uid != os.geteuid()
        or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    ):
        raise RuntimeError(
            f"rate index directory {path} must be a directory of uid {os.geteuid()} that"
            " only its owner can write (set APOLO_INDEX_DIR)"
        )


def _main(argv: list[str]) -> int:
    """``python -m sidecar.services.rate_catalog PLAN_ID DIRECTORY``: build one plan's
    file (database from ``APOLO_BUILD_DATABASE_URL``) and print its path as JSON."""
    plan_id, directory = int(argv[0]), Path(argv[1])
    started = time.perf_counter()
    url = os.environ["APOLO_BUILD_DATABASE_URL"]
    with psycopg.connect(url, row_factory=dict_row, autocommit=True) as conn:
        path = build_file(conn, plan_id, directory)
    seconds = round(time.perf_counter() - started, 3)
    print(json.dumps({"path": str(path), "seconds": seconds}), flush=True)
    return 0


if __name__ == "__main__":
    status = _main(sys.argv[1:])
    os._exit(status)  # no teardown of the build's million objects: the kernel frees them
