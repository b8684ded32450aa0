"""Settings, read once from the environment. Every variable has a documented default."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/apolo"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    # PostgreSQL, the system of record
    database_url: str = DEFAULT_DATABASE_URL
    # connections per sidecar worker process
    db_pool_size: int = 4
    # seconds a request waits for a database connection before answering 503
    db_timeout: float = 2.0
    # reads that may lag behind the primary (reports, CDR search and export, dashboard
    # charts): a replica, e.g. a multi-host URL with target_session_attrs=prefer-standby;
    # empty = database_url. Money paths (authorization, CDRs, balances) never use it.
    reports_database_url: str = ""
    # Redis, live call state (losing it degrades live views only). With redis_sentinels
    # set, only its credentials, database number and scheme (rediss = TLS) are used
    redis_url: str = DEFAULT_REDIS_URL
    # Redis Sentinel: the sentinels (host, port) asked for the current master of
    # redis_master; empty = connect to redis_url directly
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_master: str = "apolo"
    # password of the sentinels themselves (their requirepass), when they have one
    redis_sentinel_password: str = ""
    # basic-auth credentials FreeSWITCH uses (xml_cdr, xml_curl, the authorize hook);
    # no default password: FreeSWITCH-facing routes refuse every request until it is set
    fs_user: str = "freeswitch"
    fs_password: str = ""
    # reservation per call at authorization, in seconds of talk time; also the longest call
    reservation_seconds: int = 3600
    # a reservation expires this long after the talk time it pays for
    reservation_grace_seconds: int = 600
    # largest CDR / xml_curl document accepted, in bytes
    max_document_bytes: int = 2_000_000
    # cause used to refuse a call in the xml_curl dialplan
    reject_cause: str = "CALL_REJECTED"
    # cause used by the scheduled hangup when the paid time is over
    allotted_cause: str = "ALLOTTED_TIMEOUT"
    # contexts whose calls the xml_curl dialplan binding rates; other contexts get "not found"
    # so FreeSWITCH falls back to its static dialplan
    dialplan_contexts: tuple[str, ...] = ("default",)
    # bridge target of an authorized call in the xml_curl dialplan; {callee} is the
    # normalised destination
    bridge_template: str = "sofia/gateway/pstn/{callee}"
    # how often each worker double-checks rate-plan versions besides LISTEN/NOTIFY
    rate_poll_seconds: float = 0.5
    # where the rate-plan LPM index files live, shared by the workers of a host (one
    # subdirectory per database); empty: $TMPDIR/apolo-rates-<uid>
    index_dir: str = ""
    # keep the decoded CDR document next to the CDR row
    keep_raw_cdr: bool = True
    log_level: str = "INFO"


_ENV = {
    "database_url": "DATABASE_URL",
    "reports_database_url": "APOLO_REPORTS_DATABASE_URL",
    "redis_url": "REDIS_URL",
    "redis_sentinels": "APOLO_REDIS_SENTINELS",
    "redis_master": "APOLO_REDIS_MASTER",
    "redis_sentinel_password": "APOLO_REDIS_SENTINEL_PASSWORD",
    "db_pool_size": "APOLO_DB_POOL_SIZE",
    "db_timeout": "APOLO_DB_TIMEOUT",
    "fs_user": "APOLO_FS_USER",
    "fs_password": "APOLO_FS_PASSWORD",
    "reservation_seconds": "APOLO_RESERVATION_SECONDS",
    "reservation_grace_seconds": "APOLO_RESERVATION_GRACE_SECONDS",
    "max_document_bytes": "APOLO_MAX_DOCUMENT_BYTES",
    "reject_cause": "APOLO_REJECT_CAUSE",
    "allotted_cause": "APOLO_ALLOTTED_CAUSE",
    "dialplan_contexts": "APOLO_DIALPLAN_CONTEXTS",
    "bridge_template": "APOLO_BRIDGE_TEMPLATE",
    "rate_poll_seconds": "APOLO_RATE_POLL_SECONDS",
    "index_dir": "APOLO_INDEX_DIR",
    "keep_raw_cdr": "APOLO_KEEP_RAW_CDR",
    "log_level": "APOLO_LOG_LEVEL",
}


def parse_sentinels(raw: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (IPv6 as ``[addr]:port``) into (host, port) pairs."""
    found = []
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]") if host.startswith("[") else host
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"APOLO_REDIS_SENTINELS: {item!r} is not host:port")
        found.append((host, int(port)))
    return tuple(found)


def reports_url(settings: Settings) -> str:
    """Where reads that may lag go: the reports database, else the primary."""
    return settings.reports_database_url or settings.database_url


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    types = {f.name: f.type for f in fields(Settings)}
    for name, var in _ENV.items():
        raw = env.get(var)
        if raw is None or raw == "":
            continue
        kind = types[name]
        if kind == "int":
            values[name] = int(raw)
        elif kind == "float":
            values[name] = float(raw)
        elif kind == "bool":
            values[name] = _bool(raw)
        elif name == "dialplan_contexts":
            values[name] = tuple(c.strip() for c in raw.split(",") if c.strip())
        elif name == "redis_sentinels":
            values[name] = parse_sentinels(raw)
        else:
            values[name] = raw
    values.update(overrides)
    settings = Settings(**values)
    if settings.reservation_seconds <= 0:
        raise ValueError("APOLO_RESERVATION_SECONDS must be positive")
    if settings.redis_sentinels and not settings.redis_master:
        raise ValueError("APOLO_REDIS_SENTINELS needs APOLO_REDIS_MASTER (the service name)")
    return settings
