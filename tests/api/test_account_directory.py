"""The per-worker account directory: one round trip per authorization, and never stale for
long: ANI moves, plan changes and suspensions reach it through NOTIFY."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from conftest import FS_AUTH, TEST_PBX_IP, call_body
from psycopg.rows import dict_row

from sidecar.config import load_settings
from sidecar.identity import CallerFacts, Candidate
from sidecar.services.authorize import AuthorizeRequest, authorize


class CountingConnection:
    """A real connection that counts the statements sent through it."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self._conn = conn
        self.statements = 0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.statements += 1
        return self._conn.execute(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _wait_listening(app) -> None:  # type: ignore[no-untyped-def]
    catalog = app.extensions["apolo_rates"]
    deadline = time.monotonic() + 5
    while not catalog.listening:
        assert time.monotonic() < deadline, "the rate watcher never started listening"
        time.sleep(0.05)


def _request(uuid: str, caller: str) -> AuthorizeRequest:
    """A call from the test PBX, whose trunk bills the account of the caller ID (ANI)."""
    facts = CallerFacts(caller_id=caller, network_ip=TEST_PBX_IP)
    return AuthorizeRequest(uuid, caller, "51987654321", facts)


def _auth(client, uuid: str, caller: str = "5550001") -> dict:  # type: ignore[no-untyped-def]
    body = call_body(uuid, caller)
    return client.post("/v1/authorize", json=body, auth=FS_AUTH).get_json()


def _eventually(check, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 2
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_known_caller_costs_one_statement(app, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("300001", anis=["5550001"], balance="100.00")
    catalog, directory = app.extensions["apolo_rates"], app.extensions["apolo_accounts"]
    settings = load_settings(database_url=db_url)
    with psycopg.connect(db_url, row_factory=dict_row, autocommit=True) as raw:
        catalog.index(seed.plans[-1])  # starts the watcher
        _wait_listening(app)
        counted = CountingConnection(raw)
        now = datetime.now(UTC)
        first = authorize(counted, catalog, settings, _request("d-1", "5550001"), now, directory)  # type: ignore[arg-type]
        assert first.authorized and counted.statements == 3  # trunks + lookup + apolo_reserve()
        second = authorize(counted, catalog, settings, _request("d-2", "5550001"), now, directory)  # type: ignore[arg-type]
        assert second.authorized and counted.statements == 4  # apolo_reserve() only
        unknown = authorize(counted, catalog, settings, _request("d-3", "999"), now, directory)  # type: ignore[arg-type]
        assert unknown.reason == "account_not_found" and counted.statements == 5  # lookup only
        again = authorize(counted, catalog, settings, _request("d-4", "999"), now, directory)  # type: ignore[arg-type]
        assert again.reason == "account_not_found" and counted.statements == 5  # known unknown


def test_balance_movements_keep_the_cache(client, app, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("300001", anis=["5550001"], balance="100.00")
    assert _auth(client, "b-0")["authorized"]
    _wait_listening(app)
    assert _auth(client, "b-1")["authorized"]
    directory = app.extensions["apolo_accounts"]
    assert len(directory) == 1
    with psycopg.connect(db_url) as c:  # a recharge-like move: no identity fact changes
        c.execute("UPDATE accounts SET balance = balance + 1, reserved = reserved")
    time.sleep(0.5)
    assert len(directory) == 1


def test_an_ani_moved_to_another_account_is_seen_at_once(client, app, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("300001", anis=["5550001"], balance="100.00")
    seed.account("300002", anis=["5550002"], balance="100.00")
    assert _auth(client, "m-0")["account"] == "300001"
    _wait_listening(app)
    assert _auth(client, "m-1")["account"] == "300001"  # now from the cache
    with psycopg.connect(db_url) as c:
        c.execute(
            "UPDATE account_anis SET account_id = (SELECT id FROM accounts WHERE number = "
            "'300002') WHERE ani = '5550001'"
        )
    counter = iter(range(1000))
    _eventually(
        lambda: _auth(client, f"m-x{next(counter)}")["account"] == "300002",
        "the moved ANI still bills the old account",
    )


def test_plan_change_and_suspension_reach_the_cache(client, app, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    seed.account("300001", anis=["5550001"], balance="100.00", rates=[("51", "0.60")])
    dearer = seed.plan([("51", "1.20")])
    assert _auth(client, "p-0")["rate"]["rate_per_minute"] == "0.600000"
    _wait_listening(app)
    assert _auth(client, "p-1")["rate"]["rate_per_minute"] == "0.600000"
    with psycopg.connect(db_url) as c:
        c.execute(
            "UPDATE accounts SET plan_id = (SELECT id FROM rate_plans WHERE name = %s)"
            " WHERE number = '300001'",
            (dearer,),
        )
    counter = iter(range(1000))
    _eventually(
        lambda: _auth(client, f"p-x{next(counter)}")["rate"]["rate_per_minute"] == "1.200000",
        "the account's new plan is not used",
    )
    with psycopg.connect(db_url) as c:
        c.execute("UPDATE accounts SET status = 'suspended' WHERE number = '300001'")
    assert _auth(client, "p-s")["reason"] == "account_suspended"  # apolo_reserve() re-checks


def test_a_cached_account_gone_is_looked_up_again(app, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    """The account was deleted and recreated (new id, same ANI) and this worker has not yet
    heard the NOTIFY: the cached id makes apolo_reserve() answer account_not_found; the
    worker must not refuse the call for that, but forget the cache and look again."""
    seed.account("300009", anis=["5550009"], balance="100.00")
    catalog, directory = app.extensions["apolo_rates"], app.extensions["apolo_accounts"]
    settings = load_settings(database_url=db_url)
    with psycopg.connect(db_url, row_factory=dict_row, autocommit=True) as conn:
        catalog.index(seed.plans[-1])
        _wait_listening(app)
        now = datetime.now(UTC)
        first = authorize(conn, catalog, settings, _request("call-1", "5550009"), now, directory)
        assert first.authorized
        by_ani = Candidate("trunk_caller_id", "ani", "5550009", "test-pbx")
        cached, _ = directory.find_first(conn, [by_ani], trusted=True)
        stale = {**cached, "id": int(cached["id"]) + 1_000_000}  # an id no account has
        directory._entries[("ani", "5550009")] = stale  # as if the NOTIFY had not arrived

        again = authorize(conn, catalog, settings, _request("call-2", "5550009"), now, directory)

    assert again.authorized, again.reason
    assert again.account == "300009"
    assert ("ani", "5550009") not in directory._entries  # the stale entry is gone
