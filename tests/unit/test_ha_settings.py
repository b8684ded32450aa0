"""HA settings: Sentinel addresses, the reports database, and the clients made from them."""

from __future__ import annotations

import pytest
from redis.sentinel import SentinelConnectionPool

from sidecar.config import load_settings, parse_sentinels, reports_url
from sidecar.redis_store import new_client, redis_for


def test_sentinels_are_parsed_from_the_environment() -> None:
    settings = load_settings({"APOLO_REDIS_SENTINELS": " 10.0.0.31:26379, [fd00::7]:26380,h:1",
                              "APOLO_REDIS_MASTER": "billing"})  # fmt: skip
    assert settings.redis_sentinels == (("10.0.0.31", 26379), ("fd00::7", 26380), ("h", 1))
    assert settings.redis_master == "billing"
    assert load_settings({}).redis_sentinels == ()
    assert load_settings({}).redis_master == "apolo"


@pytest.mark.parametrize("raw", ["10.0.0.31", "h:0", "h:65536", ":26379", "h:port", "[::1]"])
def test_a_bad_sentinel_address_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="APOLO_REDIS_SENTINELS"):
        parse_sentinels(raw)


def test_sentinels_need_a_master_name() -> None:
    with pytest.raises(ValueError, match="APOLO_REDIS_MASTER"):
        load_settings(redis_sentinels=(("h", 26379),), redis_master="")


def test_reports_read_the_primary_unless_told_otherwise() -> None:
    primary = "postgresql://apolo@pg1,pg2/apolo?target_session_attrs=read-write"
    replica = "postgresql://apolo@pg2,pg1/apolo?target_session_attrs=prefer-standby"
    assert reports_url(load_settings({"DATABASE_URL": primary})) == primary
    both = load_settings({"DATABASE_URL": primary, "APOLO_REPORTS_DATABASE_URL": replica})
    assert (both.database_url, reports_url(both)) == (primary, replica)


def test_with_sentinels_the_client_asks_them_and_keeps_the_url_credentials() -> None:
    settings = load_settings({
        "REDIS_URL": "redis://apolo:s3cret@ignored:6379/4",
        "APOLO_REDIS_SENTINELS": "10.0.0.31:26379,10.0.0.32:26379",
        "APOLO_REDIS_MASTER": "billing", "APOLO_REDIS_SENTINEL_PASSWORD": "sentinel-pw",
    })  # fmt: skip
    client = new_client(settings)  # nothing is connected yet
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "billing"
    kwargs = pool.connection_kwargs
    assert (kwargs["db"], kwargs["username"], kwargs["password"]) == (4, "apolo", "s3cret")
    assert kwargs["retry"].get_retries() == 1  # a failover's dead connection, then give up
    sentinels = pool.sentinel_manager.sentinels
    assert [(s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs[
        "port"]) for s in sentinels] == [("10.0.0.31", 26379), ("10.0.0.32", 26379)]  # fmt: skip
    assert all(s.connection_pool.connection_kwargs["password"] == "sentinel-pw" for s in sentinels)


def test_without_sentinels_the_client_is_the_url_and_shared_per_process() -> None:
    settings = load_settings({"REDIS_URL": "redis://127.0.0.1:6390/2"})
    client = redis_for(settings)
    assert not isinstance(client.connection_pool, SentinelConnectionPool)
    assert client.connection_pool.connection_kwargs["port"] == 6390
    assert redis_for(settings) is client
    assert redis_for(load_settings({"REDIS_URL": "redis://127.0.0.1:6390/3"})) is not client
