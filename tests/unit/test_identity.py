"""The identity rule on its own: who may pay, from which facts, in which order."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.identity import (
    CallerFacts,
    Candidate,
    Trunk,
    identify,
    parse_address,
    parse_sip_user,
    refusal,
    trunk_of,
)


def trunk(
    name: str,
    *cidrs: str,
    account: str | None = None,
    caller_id: bool = False,
    header: bool = False,
) -> Trunk:
    networks = tuple(ipaddress.ip_network(c) for c in cidrs)
    return Trunk(name, networks, account, trust_caller_id=caller_id, trust_billing_header=header)


CARRIER = trunk("carrier", "203.0.113.0/24", account="700001")
PBX = trunk("pbx", "198.51.100.0/25", "2001:db8::/32", caller_id=True)
RESELLER = trunk("reseller", "192.0.2.64/26", account="700002", header=True, caller_id=True)
TRUNKS = (CARRIER, PBX, RESELLER)


def rules(facts: CallerFacts, trunks: tuple[Trunk, ...] = TRUNKS) -> list[tuple[str, str, str]]:
    return [(c.rule, c.kind, c.key) for c in identify(facts, trunks)]


def test_nothing_the_caller_cannot_forge_identifies_nobody() -> None:
    facts = CallerFacts(caller_id="100001", billing_header="100001", accountcode="100001")
    assert identify(facts, TRUNKS) == ()  # not authenticated, from no declared network
    assert identify(CallerFacts(), TRUNKS) == ()


def test_accountcode_counts_only_on_an_authenticated_call() -> None:
    assert rules(CallerFacts(accountcode="100001", authenticated=True)) == [
        ("accountcode", "number", "100001")
    ]
    # e.g. a gateway's inbound variables, which the caller selects with gw= in its Request-URI
    assert rules(CallerFacts(accountcode="100001")) == []


def test_sip_user_needs_digest_auth_and_a_domain() -> None:
    facts = CallerFacts(authenticated=True, sip_user="1001", sip_domain="PBX.Example")
    assert rules(facts) == [("sip_user", "sip_user", "1001@pbx.example")]
    assert rules(CallerFacts(sip_user="1001", sip_domain="pbx.example")) == []
    assert rules(CallerFacts(authenticated=True, sip_user="1001")) == []
    # ACL-authenticated calls have no digest username: nothing to map
    assert rules(CallerFacts(authenticated=True, sip_domain="pbx.example")) == []


def test_a_trunk_bills_its_own_account_and_ignores_what_it_does_not_trust() -> None:
    facts = CallerFacts(caller_id="100001", billing_header="100002", network_ip="203.0.113.9")
    got = identify(facts, TRUNKS)
    assert got == (Candidate("trunk", "number", "700001", "carrier"),)


def test_trusted_sources_come_before_the_trunk_account() -> None:
    facts = CallerFacts(caller_id="5550001", billing_header="100002", network_ip="192.0.2.100")
    assert [(c.rule, c.key, c.trunk) for c in identify(facts, TRUNKS)] == [
        ("trunk_billing_header", "100002", "reseller"),
        ("trunk_caller_id", "5550001", "reseller"),
        ("trunk", "700002", "reseller"),
    ]
    no_header = CallerFacts(caller_id="5550001", network_ip="192.0.2.100")
    assert [c.rule for c in identify(no_header, TRUNKS)] == ["trunk_caller_id", "trunk"]


def test_caller_id_trust_without_an_account() -> None:
    facts = CallerFacts(caller_id="5550001", billing_header="100002", network_ip="198.51.100.3")
    assert rules(facts) == [("trunk_caller_id", "ani", "5550001")]
    assert rules(CallerFacts(network_ip="198.51.100.3")) == []  # trusted but absent: nobody


def test_the_order_of_the_rules() -> None:
    facts = CallerFacts(
        caller_id="5550001",
        accountcode="100001",
        authenticated=True,
        sip_user="1001",
        sip_domain="pbx.example",
        network_ip="192.0.2.70",
        billing_header="100002",
    )
    assert [c.rule for c in identify(facts, TRUNKS)] == [
        "accountcode",
        "sip_user",
        "trunk_billing_header",
        "trunk_caller_id",
        "trunk",
    ]


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("203.0.113.0", "carrier"),
        ("203.0.113.255", "carrier"),
        ("203.0.114.0", None),
        ("198.51.100.127", "pbx"),
        ("198.51.100.128", None),  # outside the /25
        ("::ffff:203.0.113.7", "carrier"),  # an IPv4-mapped address is its IPv4 address
        ("2001:db8::5", "pbx"),
        ("[2001:db8::5]", "pbx"),
        ("2001:db9::5", None),
        ("203.0.113.7:5060", None),
        ("pbx.example", None),
        ("", None),
        (None, None),
    ],
)
def test_which_trunk_carries_an_address(address: str | None, expected: str | None) -> None:
    found = trunk_of(address, TRUNKS)
    assert (found.name if found else None) == expected


def test_refusal_reasons() -> None:
    user = Candidate("sip_user", "sip_user", "1001@pbx.example")
    assert refusal(()) == "unidentified_caller"
    assert refusal((user,)) == "unidentified_caller"  # an unmapped user names no payer
    assert refusal((user, Candidate("trunk", "number", "700001", "t"))) == "account_not_found"
    assert refusal((Candidate("trunk_caller_id", "ani", "555", "t"),)) == "account_not_found"


def test_parse_address() -> None:
    assert parse_address(" 192.0.2.1 ") == ipaddress.ip_address("192.0.2.1")
    assert parse_address("::ffff:192.0.2.1") == ipaddress.ip_address("192.0.2.1")
    assert parse_address("192.0.2.300") is None


def test_overlong_keys_are_not_looked_up() -> None:
    long = "1" * 129
    facts = CallerFacts(accountcode=long, authenticated=True, network_ip="192.0.2.70",
                        billing_header=long, caller_id=long)  # fmt: skip
    assert rules(facts) == [("trunk", "number", "700002")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1001@pbx.example", "1001@pbx.example"),
        (" 1001@PBX.Example ", "1001@pbx.example"),
        ("Alice@192.0.2.10", "Alice@192.0.2.10"),
        ("1001", None),
        ("1001@", None),
        ("@pbx.example", None),
        ("a@b@c", None),
        ("10 01@pbx.example", None),
        ("1001@pbx example", None),
        ("1001@pbx.example\n", "1001@pbx.example"),
        ("1001\x00@pbx.example", None),
    ],
)
def test_parse_sip_user(text: str, expected: str | None) -> None:
    assert parse_sip_user(text) == expected


numbers = st.text("0123456789+", min_size=1, max_size=20)
addresses = st.ip_addresses(v=4).map(str)


@given(caller_id=numbers, header=numbers, accountcode=numbers, address=addresses)
def test_forgeable_facts_name_a_payer_only_through_a_trunk_that_trusts_them(
    caller_id: str, header: str, accountcode: str, address: str
) -> None:
    facts = CallerFacts(caller_id=caller_id, billing_header=header, accountcode=accountcode,
                        network_ip=address)  # fmt: skip
    carrier = trunk_of(address, TRUNKS)
    for c in identify(facts, TRUNKS):
        assert c.rule.startswith("trunk") and carrier is not None and c.trunk == carrier.name
        if c.rule == "trunk_billing_header":
            assert carrier.trust_billing_header and c.key == header
        elif c.rule == "trunk_caller_id":
            assert carrier.trust_caller_id and c.key == caller_id
        else:
            assert c.key == carrier.account
