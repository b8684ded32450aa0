"""What an end-to-end case works with: callers, calls, and the money as the API shows it.

A caller is what a real install bills (issue #11): a FreeSWITCH directory user whose
``accountcode`` is the account number, calling with SIP digest authentication. Its caller id
is the directory user, deliberately not an ANI of the account, so only the authenticated
user's ``accountcode`` can name who pays.
"""

from __future__ import annotations

import itertools
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import psycopg
import requests
from conftest import Seed
from lxml import etree
from psycopg.rows import dict_row

from e2e.fs_switch import FreeSwitch
from e2e.sipp import UacRun, Uas, place_calls

_numbers = itertools.count(int(time.time()) % 100_000 * 100)


def unique(prefix: str, digits: int = 9) -> str:
    return prefix + str(next(_numbers)).zfill(digits - len(prefix))[-(digits - len(prefix)) :]


@dataclass(frozen=True)
class Rate:
    prefix: str = "51"
    per_minute: str = "0.60"
    connection_fee: str = "0"
    initial: int = 1
    increment: int = 1

    def cost(self, billusec: int) -> Decimal:
        """The price of a call FreeSWITCH measured at ``billusec``, worked out here from the
        README's rule (not with the sidecar's code): whole seconds rounded up; nothing when
        unanswered; the initial increment, then whole increments; one half-up rounding to 4
        decimals."""
        seconds = -(-billusec // 1_000_000)
        if seconds == 0:
            return Decimal("0.0000")
        billed = self.initial
        if seconds > self.initial:
            billed += math.ceil((seconds - self.initial) / self.increment) * self.increment
        exact = Decimal(self.connection_fee) + billed * Decimal(self.per_minute) / 60
        return exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Caller:
    user: str  # directory user id, also its caller id number
    password: str
    account: str  # the account number, the user's accountcode
    rate: Rate


@dataclass(frozen=True)
class Cdr:
    """A stored CDR as the API shows it, plus FreeSWITCH's own variables from its raw XML."""

    api: dict[str, Any]
    variables: dict[str, str]

    @property
    def billusec(self) -> int:
        return int(self.variables["billusec"])

    @property
    def cost(self) -> Decimal:
        return Decimal(self.api["cost"])


def cdr_variables(raw_xml: str | bytes) -> dict[str, str]:
    from urllib.parse import unquote

    root = etree.fromstring(raw_xml.encode() if isinstance(raw_xml, str) else raw_xml,
                            etree.XMLParser(resolve_entities=False, no_network=True))  # fmt: skip
    variables = root.find("variables")
    assert variables is not None
    return {child.tag: unquote(child.text or "") for child in variables}


@dataclass
class Harness:
    switch: FreeSwitch
    uas: Uas
    sidecar_url: str
    db_url: str
    seed: Seed
    work: Path
    token: str = ""

    def __post_init__(self) -> None:
        self.token = self.seed.token("admin", "e2e")

    # ---------------------------------------------------------------- callers (issue #11)
    def caller(
        self,
        balance: str | None = "1.00",
        rate: Rate | None = None,
        context: str = "default",
        **account: Any,
    ) -> Caller:
        """A directory user with ``accountcode`` = a new account (none when ``balance`` is
        None: an unknown account), authenticating with digest."""
        rate = rate or Rate()
        number = unique("7")
        if balance is not None:
            plan = self.seed.plan(
                [(rate.prefix, rate.per_minute)],
                initial_increment=rate.initial,
                increment=rate.increment,
                connection_fee=rate.connection_fee,
            )
            self.seed.account(number, balance=balance, plan=plan, anis=[unique("8")], **account)
        user, password = unique("6", 7), secrets.token_hex(6)
        self.switch.add_user(user, password, number, context)
        return Caller(user, password, number, rate)

    # ---------------------------------------------------------------- calls
    def call(self, caller: Caller, callee: str, **kw: Any) -> UacRun:
        return place_calls(
            self.work, self.switch.ports.sip, caller.user, caller.password, callee, **kw
        )

    # ---------------------------------------------------------------- the API
    def get(self, path: str, **params: Any) -> Any:
        resp = requests.get(
            self.sidecar_url + path, params=params, timeout=10,
            headers={"Authorization": f"Bearer {self.token}"},
        )  # fmt: skip
        assert resp.status_code == 200, f"GET {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def account(self, number: str) -> dict[str, Any]:
        return self.get(f"/v1/accounts/{number}")  # type: ignore[no-any-return]

    def cdrs(self, **filters: Any) -> list[dict[str, Any]]:
        return self.get("/v1/cdrs", limit=1000, **filters)["cdrs"]  # type: ignore[no-any-return]

    def billed_cdrs(self, caller: Caller, count: int, timeout: float = 20) -> list[Cdr]:
        """Wait until ``count`` CDRs are stored for the caller's account; with their raw XML."""
        rows = wait_for(
            lambda: (r := self.cdrs(account=caller.account)) and len(r) >= count and r,
            timeout, f"{count} CDR(s) of account {caller.account}",
        )  # fmt: skip
        assert len(rows) == count, rows
        return [Cdr(r, self.raw_variables(r["call_uuid"], r["leg"])) for r in rows]

    def cdrs_for(self, callee: str, count: int, timeout: float = 20) -> list[Cdr]:
        """Wait until ``count`` CDRs of calls to ``callee`` are stored (any account, or none)."""
        rows = wait_for(
            lambda: (r := self.cdrs(callee=callee)) and len(r) >= count and r,
            timeout, f"{count} CDR(s) of calls to {callee}",
        )  # fmt: skip
        assert len(rows) == count, rows
        return [Cdr(r, self.raw_variables(r["call_uuid"], r["leg"])) for r in rows]

    def raw_xml(self, call_uuid: str, leg: str) -> str:
        with psycopg.connect(self.db_url, row_factory=dict_row) as c:
            row = c.execute(
                "SELECT raw_xml FROM cdrs WHERE call_uuid = %s AND leg = %s", (call_uuid, leg)
            ).fetchone()
        assert row is not None and row["raw_xml"], f"no raw CDR for {call_uuid}/{leg}"
        return str(row["raw_xml"])

    def raw_variables(self, call_uuid: str, leg: str) -> dict[str, str]:
        return cdr_variables(self.raw_xml(call_uuid, leg))

    def ledger_charges(self, number: str) -> list[dict[str, Any]]:
        return [e for e in self.account(number)["ledger"] if e["kind"] == "call_charge"]

    def idle(self, timeout: float = 15) -> None:
        """Wait until the switch has no channel left (every CDR of the case posted)."""
        wait_for(lambda: self.switch.channels() == 0, timeout, "no channels on the switch")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
