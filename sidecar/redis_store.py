"""Redis clients, made lazily per process; never at import. The one place clients are made.

Either one server (``REDIS_URL``) or, with ``APOLO_REDIS_SENTINELS``, whichever server the
sentinels name master of ``APOLO_REDIS_MASTER``: redis-py's Sentinel client asks them at
every new connection and drops a connection whose server was demoted (``READONLY``), so a
Sentinel failover is followed without failover logic of ours. ``REDIS_URL`` then gives only
the credentials, the database number and TLS (``rediss://``).

A command is retried once, at once (redis-py's default is ten times with back-off: seconds of
waiting): the retry reconnects after a failover, and since Redis holds only the live view a
caller is better off carrying on without it than holding an authorization's answer while a
dead master times out again and again.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.connection import SSLConnection, parse_url
from redis.retry import Retry
from redis.sentinel import Sentinel

from sidecar.config import Settings

SOCKET_TIMEOUT = 0.5
_lock = threading.Lock()
_clients: dict[tuple[Any, ...], redis.Redis] = {}


def _retry() -> Retry:
    # a failover's first command fails on the dead connection; the retry reconnects
    return Retry(ExponentialBackoff(cap=0.1, base=0.02), 1)


def _key(settings: Settings) -> tuple[Any, ...]:
    return (
        os.getpid(),
        settings.redis_url,
        settings.redis_sentinels,
        settings.redis_master,
        settings.redis_sentinel_password,
    )


def redis_for(settings: Settings) -> redis.Redis:
    """This process's shared client for ``settings`` (thread-safe, pooled)."""
    key = _key(settings)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = new_client(settings)
                _clients[key] = client
    return client


def new_client(settings: Settings, **options: Any) -> redis.Redis:
    """A client of its own (e.g. for a pub/sub subscription held for minutes); ``options``
    override the socket timeouts and the like."""
    kwargs: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
        "decode_responses": True,
        "retry": _retry(),
        **options,
    }
    if not settings.redis_sentinels:
        return redis.Redis.from_url(settings.redis_url, **kwargs)
    url: dict[str, Any] = parse_url(settings.redis_url)  # type: ignore[no-untyped-call]
    for name in ("db", "username", "password"):
        if url.get(name) is not None:
            kwargs.setdefault(name, url[name])
    if url.get("connection_class") is SSLConnection:
        kwargs["ssl"] = True
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": kwargs["socket_connect_timeout"],
        "socket_connect_timeout": kwargs["socket_connect_timeout"],
    }
    if settings.redis_sentinel_password:
        sentinel_kwargs["password"] = settings.redis_sentinel_password
    sentinel = Sentinel(list(settings.redis_sentinels), sentinel_kwargs=sentinel_kwargs)
    master: redis.Redis = sentinel.master_for(settings.redis_master, **kwargs)
    return master


def close_clients() -> None:
    """Drop this process's clients (tests that restart Redis servers)."""
    with _lock:
        for key, client in list(_clients.items()):
            if key[0] == os.getpid():
                client.close()
            del _clients[key]
