"""PostgreSQL connections: one lazy pool per worker process, one transaction per request.

The pool is created on first use in the process that uses it (never at import, never
in the gunicorn master), so every forked worker gets its own sockets.
A request's transaction is committed by the app's ``after_request`` hook (see
``sidecar.app``), before the response leaves, so a 2xx is only ever sent after the
commit; callables queued with ``after_commit`` (Redis side effects) run after it.

``DATABASE_URL`` may name several hosts (``postgresql://apolo@pg1,pg2/apolo?
target_session_attrs=read-write``): libpq tries them in turn and keeps the one that takes
writes, so after a Patroni failover every new connection finds the new primary, and a pooled
connection to the old one fails its check and is replaced. A pool gives up reconnecting
after ``RECONNECT_SECONDS`` and starts again at the next request, so it never sits out
psycopg_pool's doubling back-off (1, 2, 4, 8 s...) after the primary is back.
Reads that may lag (reports, CDR search and export, dashboard charts) take
``get_reports_conn()``: a connection to ``APOLO_REPORTS_DATABASE_URL`` (a replica) when set.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable
from typing import Any

import psycopg
from flask import current_app, g
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from sidecar.config import Settings, reports_url

log = logging.getLogger(__name__)

_lock = threading.Lock()
_pools: dict[tuple[int, str], ConnectionPool] = {}
RECONNECT_SECONDS = 2.0


def pool_for(url: str, size: int, timeout: float = 2.0) -> ConnectionPool:
    key = (os.getpid(), url)
    pool = _pools.get(key)
    if pool is None:
        with _lock:
            pool = _pools.get(key)
            if pool is None:
                pool = ConnectionPool(
                    url,
                    min_size=1,
                    max_size=size,
                    kwargs={"row_factory": dict_row, "autocommit": False},
                    open=True,
                    timeout=timeout,
                    reconnect_timeout=RECONNECT_SECONDS,
                    check=_alive,
                    name=f"apolo-{os.getpid()}",
                )
                _pools[key] = pool
    return pool


def _alive(conn: psycopg.Connection[Any]) -> None:
    """The pool's check before lending a connection, free in the common case.

    An idle connection has nothing to read; when its socket is readable the server has
    closed it (a PostgreSQL restart) or sent something, and only then does a round trip
    tell; it raises for a dead connection, which the pool then replaces.
    """
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
    if poller.poll(0):
        ConnectionPool.check_connection(conn)


def settings_pool(settings: Settings) -> ConnectionPool:
    return pool_for(settings.database_url, settings.db_pool_size, settings.db_timeout)


def reports_pool(settings: Settings) -> ConnectionPool | None:
    """The pool of the reports database; None when reports read the primary."""
    url = reports_url(settings)
    if url == settings.database_url:
        return None
    return pool_for(url, settings.db_pool_size, settings.db_timeout)


def close_pools() -> None:
    with _lock:
        for key, pool in list(_pools.items()):
            if key[0] == os.getpid():
                pool.close()
            del _pools[key]


def get_conn() -> psycopg.Connection[Any]:
    """The current request's connection; its transaction starts with the first statement."""
    conn = g.get("_db_conn")
    if conn is None:
        conn = settings_pool(current_app.config["SETTINGS"]).getconn()
        if g.get("_db_autocommit"):
            conn.autocommit = True
        g._db_conn = conn
    return conn  # type: ignore[no-any-return]


def get_reports_conn() -> psycopg.Connection[Any]:
    """The request's connection for reads that may lag behind the primary (reports, CDR
    search, dashboard charts): never for a balance, a reservation or anything written back.
    The request's own connection when no reports database is set."""
    pool = reports_pool(current_app.config["SETTINGS"])
    if pool is None:
        return get_conn()
    conn = g.get("_reports_conn")
    if conn is None:
        conn = pool.getconn()
        g._reports_conn = conn
    return conn  # type: ignore[no-any-return]


def _release_reports_conn() -> None:
    """Roll back (it only read) and return the request's reports connection, if any."""
    conn = g.pop("_reports_conn", None)
    if conn is None:
        return
    try:
        conn.rollback()
    except Exception:  # noqa: S110 - a broken connection; the pool discards it
        pass
    pool = reports_pool(current_app.config["SETTINGS"])
    if pool is not None:
        pool.putconn(conn)


def statements_are_atomic() -> None:
    """Run this request in autocommit: for requests whose only write is one self-contained
    statement (authorization: a read, then ``apolo_reserve()``), which saves the BEGIN and
    COMMIT round trips. Without effect once the request has used its connection."""
    g._db_autocommit = True


def _give_back(conn: psycopg.Connection[Any]) -> None:
    pool = settings_pool(current_app.config["SETTINGS"])
    if conn.autocommit:
        try:
            conn.autocommit = False
        except Exception:  # noqa: S110 - a broken connection; the pool discards it
            pass
    pool.putconn(conn)


def after_commit(fn: Callable[[], None]) -> None:
    """Run ``fn`` once the request's transaction has committed (never if it rolls back)."""
    g.setdefault("_after_commit", []).append(fn)


def finish_request(commit: bool) -> None:
    """Commit or roll back the request's transaction; raises if the commit fails."""
    _release_reports_conn()
    conn = g.pop("_db_conn", None)
    hooks = g.pop("_after_commit", [])
    if conn is None:
        if commit:
            _run_hooks(hooks)
        return
    if not commit:  # the response is already an error: a failed rollback changes nothing
        try:
            conn.rollback()
        except Exception:  # noqa: S110 - the connection is broken; the pool discards it
            pass
        _give_back(conn)
        return
    try:
        conn.commit()
    except Exception:
        try:
            conn.rollback()
        except Exception:  # noqa: S110 - the connection is broken; the pool discards it
            pass
        _give_back(conn)
        raise
    _give_back(conn)
    if commit:
        _run_hooks(hooks)


def discard_request() -> None:
    """Teardown safety net: roll back and return a connection left by an aborted request."""
    _release_reports_conn()
    conn = g.pop("_db_conn", None)
    g.pop("_after_commit", None)
    if conn is None:
        return
    try:
        conn.rollback()
    except Exception:  # noqa: S110
        pass
    _give_back(conn)


def _run_hooks(hooks: list[Callable[[], None]]) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception:
            log.exception("after-commit side effect failed (PostgreSQL stays the record)")


def connect_cli(url: str | None = None) -> psycopg.Connection[Any]:
    """A plain connection for CLI commands (autocommit off; the command commits)."""
    from sidecar.config import load_settings

    dsn = url or load_settings().database_url
    return psycopg.connect(dsn, row_factory=dict_row, autocommit=False)
