"""Channel variables -> CallerFacts: only the listed variables count, each as FreeSWITCH sets it."""

from __future__ import annotations

from sidecar.freeswitch.caller_facts import IDENTITY_VARIABLES, caller_facts
from sidecar.identity import CallerFacts

DIGEST_USER = {
    "sip_authorized": "true",
    "sip_auth_username": "1001",
    "sip_auth_realm": "realm.example",
    "domain_name": "pbx.example",
    "accountcode": "100001",
    "sip_network_ip": "192.0.2.10",
    "sip_received_ip": "192.0.2.10",
}


def test_a_digest_authenticated_user() -> None:
    assert caller_facts(DIGEST_USER, " 1001 ") == CallerFacts(
        caller_id="1001",
        accountcode="100001",
        authenticated=True,
        sip_user="1001",
        sip_domain="pbx.example",
        network_ip="192.0.2.10",
    )


def test_fallbacks() -> None:
    variables = {**DIGEST_USER, "sip_network_ip": "", "sip_received_ip": "192.0.2.11"}
    del variables["domain_name"]
    facts = caller_facts(variables, "1001")
    assert (facts.network_ip, facts.sip_domain) == ("192.0.2.11", "realm.example")


def test_only_sip_authorized_true_authenticates() -> None:
    for value in ("false", "yes", "1", "", " "):
        assert caller_facts({**DIGEST_USER, "sip_authorized": value}, "1").authenticated is False
    assert caller_facts({**DIGEST_USER, "sip_authorized": "TRUE"}, "1").authenticated is True


def test_headers_and_look_alikes_are_not_identity() -> None:
    variables = {
        "sip_h_X-Billing-Account": "100002",
        "sip_h_X-Accountcode": "100003",
        "billing_account": "100004",
        "sip_from_user": "100005",
        "sip_h_X-AUTH-IP": "203.0.113.1",
        "variable_accountcode": "100006",
    }
    assert caller_facts(variables, "100001") == CallerFacts(
        caller_id="100001", billing_header="100002"
    )


def test_the_list_names_every_variable_read() -> None:
    everything = {name: f"v-{name}" for name in IDENTITY_VARIABLES}
    facts = caller_facts({**everything, "sip_authorized": "true"}, "c")
    read = {facts.accountcode, facts.sip_user, facts.sip_domain, facts.network_ip,
            facts.billing_header}  # fmt: skip
    assert read == {"v-accountcode", "v-sip_auth_username", "v-domain_name",
                    "v-sip_network_ip", "v-sip_h_X-Billing-Account"}  # fmt: skip
