"""Who pays, on every route: the hook (/v1/authorize), xml_curl (/freeswitch/dialplan) and CDR
intake, with the captured FreeSWITCH SIP requests where there is one (an unauthenticated call
from 127.0.0.1 whose INVITE carried ``X-Billing-Account: 100001``, caller ID 100001)."""

from __future__ import annotations

import time
import uuid as uuidlib

import psycopg
from conftest import FS_AUTH, TEST_PBX
from fixtures_path import FS_FIXTURES, read_http_capture

VICTIM = "100001"  # what the captured INVITE names in its header and its From
ATTACKER = "800001"  # the one who really calls, with nothing to pay with
OUTSIDE = "203.0.113.66"  # an address no trunk covers
SIP_REQUEST = FS_FIXTURES / "xml_curl" / "dialplan_request_sip.http"
SIP_CDR = FS_FIXTURES / "xml_cdr" / "sip" / "answered_sip_inbound_1.http"


def authorize(client, caller: str, **variables: str) -> dict:  # type: ignore[no-untyped-def]
    body = {"uuid": str(uuidlib.uuid4()), "caller": caller, "callee": "51987654321",
            "variables": variables}  # fmt: skip
    resp = client.post("/v1/authorize", json=body, auth=FS_AUTH)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()  # type: ignore[no-any-return]


def eventually(check, what: str, seconds: float = 2.0):  # type: ignore[no-untyped-def]
    """The first truthy result of ``check()``: a trunk or SIP user added while the worker's
    directory cache is trusted reaches it through NOTIFY, some milliseconds later."""
    until = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < until, what
        time.sleep(0.05)
    return result


def reserved(seed, number: str) -> str:  # type: ignore[no-untyped-def]
    return seed.balance(number)["reserved"]  # type: ignore[no-any-return]


def victim_and_attacker(seed) -> None:  # type: ignore[no-untyped-def]
    seed.account(VICTIM, balance="100.00")
    seed.account(ATTACKER, balance="0.00")


# ------------------------------------------------------------------ the hook route


def test_a_forged_billing_header_never_pays_on_the_hook_route(client, seed) -> None:  # type: ignore[no-untyped-def]
    victim_and_attacker(seed)
    forged = {"sip_h_X-Billing-Account": VICTIM}
    # from nowhere declared: refused, whatever it names
    answer = authorize(client, VICTIM, sip_network_ip=OUTSIDE, **forged)
    assert (answer["authorized"], answer["reason"]) == (False, "unidentified_caller")
    # from the test PBX, which trusts caller IDs but not the header: the caller ID pays
    answer = authorize(client, ATTACKER, **TEST_PBX, **forged)
    assert (answer["reason"], answer["account"]) == ("insufficient_balance", ATTACKER)
    # an unauthenticated accountcode (a dialplan copied the header) counts no more
    answer = authorize(client, ATTACKER, sip_network_ip=OUTSIDE, accountcode=VICTIM, **forged)
    assert answer["reason"] == "unidentified_caller"
    assert reserved(seed, VICTIM) == "0.0000"


def test_a_forged_caller_id_never_pays(client, seed) -> None:  # type: ignore[no-untyped-def]
    victim_and_attacker(seed)
    seed.trunk("carrier", ["203.0.113.0/28"], account=ATTACKER)  # does not trust caller IDs
    answer = authorize(client, VICTIM, sip_network_ip="203.0.113.5")
    assert (answer["reason"], answer["account"]) == ("insufficient_balance", ATTACKER)
    assert authorize(client, VICTIM, sip_network_ip=OUTSIDE)["reason"] == "unidentified_caller"
    assert reserved(seed, VICTIM) == "0.0000"


def test_each_rule_in_its_order(client, seed) -> None:  # type: ignore[no-untyped-def]
    for number in ("700001", "700002", "700003", "700004", "700005"):
        seed.account(number, balance="100.00", anis=[f"55{number}"])
    seed.trunk("reseller", ["203.0.113.16/28"], account="700005", trust_caller_id=True,
               trust_billing_header=True)  # fmt: skip
    admin = {"Authorization": f"Bearer {seed.token('admin')}"}
    resp = client.patch("/v1/accounts/700002", json={"sip_users": ["1001@PBX.example"]},
                        headers=admin)  # fmt: skip
    assert resp.status_code == 200 and resp.get_json()["sip_users"] == ["1001@pbx.example"]
    user = {"sip_authorized": "true", "sip_auth_username": "1001", "domain_name": "pbx.example"}
    trunk = {"sip_network_ip": "203.0.113.17", "sip_h_X-Billing-Account": "700003"}

    def payer(**variables: str) -> tuple[str, str | None, str | None]:
        answer = authorize(client, "55700004", **variables)
        by = answer["identified_by"] or {}
        return answer["account"], by.get("rule"), by.get("trunk")

    assert payer(accountcode="700001", **user, **trunk) == ("700001", "accountcode", None)
    assert payer(**user, **trunk) == ("700002", "sip_user", None)
    assert payer(**trunk) == ("700003", "trunk_billing_header", "reseller")
    assert payer(sip_network_ip="203.0.113.17") == ("700004", "trunk_caller_id", "reseller")
    # what names no account gives way to the next fact: here the trunk's own account
    assert payer(sip_network_ip="203.0.113.17", **{"sip_h_X-Billing-Account": "nobody"}) == (
        "700004", "trunk_caller_id", "reseller",
    )  # fmt: skip
    unknown_ani = authorize(client, "999", sip_network_ip="203.0.113.17")
    assert (unknown_ani["account"], unknown_ani["identified_by"]["rule"]) == ("700005", "trunk")
    # a digest user nobody mapped, from nowhere declared
    alone = {**user, "sip_auth_username": "1002"}
    assert authorize(client, "1002", **alone)["reason"] == "unidentified_caller"
    # an accountcode naming no account, and nothing else
    nowhere = authorize(client, "1", sip_authorized="true", accountcode="999999")
    assert (nowhere["reason"], nowhere["account"]) == ("account_not_found", None)


def test_new_trunks_and_sip_users_reach_the_cache_at_once(client, app, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("700001", balance="100.00")
    catalog = app.extensions["apolo_rates"]
    catalog.index(seed.plans[-1])
    deadline = time.monotonic() + 5
    while not catalog.listening:
        assert time.monotonic() < deadline, "the rate watcher never started listening"
        time.sleep(0.05)
    from_carrier = {"sip_network_ip": "203.0.113.40"}
    assert authorize(client, "1", **from_carrier)["reason"] == "unidentified_caller"  # cached
    seed.trunk("carrier", ["203.0.113.32/28"], account="700001")
    eventually(lambda: authorize(client, "1", **from_carrier)["account"] == "700001",
               "the new trunk is not seen")  # fmt: skip
    user = {"sip_authorized": "true", "sip_auth_username": "1001", "domain_name": "pbx.example"}
    assert authorize(client, "1001", **user)["reason"] == "unidentified_caller"  # cached
    with psycopg.connect(seed.url) as c:
        c.execute("INSERT INTO account_sip_users SELECT '1001@pbx.example', id FROM accounts")
    eventually(lambda: authorize(client, "1001", **user)["account"] == "700001",
               "the new SIP user is not seen")  # fmt: skip
    with psycopg.connect(seed.url) as c:
        c.execute("DELETE FROM trunks")
    eventually(lambda: authorize(client, "1", **from_carrier)["reason"] == "unidentified_caller",
               "the deleted trunk still bills")  # fmt: skip


# ------------------------------------------------------------------ the xml_curl route


def dialplan(client, context_default: bool = True):  # type: ignore[no-untyped-def]
    cap = read_http_capture(SIP_REQUEST)
    body = cap.body.replace(b"Context=public", b"Context=default") if context_default else cap.body
    resp = client.post("/freeswitch/dialplan", data=body, content_type=cap.content_type,
                       auth=FS_AUTH)  # fmt: skip
    assert resp.status_code == 200 and resp.mimetype == "text/xml"
    return resp.get_data(as_text=True)


def test_a_forged_billing_header_never_pays_on_the_xml_curl_route(client, seed) -> None:  # type: ignore[no-untyped-def]
    # what happened on FreeSWITCH 1.10.12 (issue #11): the captured INVITE names 100001
    victim_and_attacker(seed)
    doc = dialplan(client)
    assert "apolo_reason=unidentified_caller" in doc and "bridge" not in doc
    assert reserved(seed, VICTIM) == "0.0000"
    # 127.0.0.1 is the attacker's trunk: it pays, not the account its header names
    seed.trunk("attacker-pbx", ["127.0.0.1/32"], account=ATTACKER)

    def identified() -> str:
        doc = dialplan(client)
        return "" if "unidentified_caller" in doc else doc

    doc = eventually(identified, "the new trunk is not seen")
    assert f"apolo_account={ATTACKER}" in doc and "apolo_reason=insufficient_balance" in doc
    assert reserved(seed, VICTIM) == "0.0000"


def test_a_trunk_that_trusts_the_header_is_billed_by_it(client, seed) -> None:  # type: ignore[no-untyped-def]
    victim_and_attacker(seed)
    seed.trunk("reseller", ["127.0.0.0/30"], trust_billing_header=True)
    doc = dialplan(client)
    assert f"apolo_account={VICTIM}" in doc and "apolo_result=authorized" in doc
    assert "bridge" in doc and reserved(seed, VICTIM) != "0.0000"


# ------------------------------------------------------------------ CDR intake


def post_cdr(client):  # type: ignore[no-untyped-def]
    cap = read_http_capture(SIP_CDR)
    resp = client.post(cap.target.replace("/cdr", "/freeswitch/cdr", 1), data=cap.body,
                       content_type=cap.content_type, auth=FS_AUTH)  # fmt: skip
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def balance(seed, number: str) -> str:  # type: ignore[no-untyped-def]
    return seed.balance(number)["balance"]  # type: ignore[no-any-return]


def test_a_forged_billing_header_never_pays_in_cdr_intake(client, seed, db_url) -> None:  # type: ignore[no-untyped-def]
    # a call nobody authorized (fail-open, hook off): rated after the fact by the same rule
    victim_and_attacker(seed)
    body = post_cdr(client)
    assert (body["billing_status"], body["account"]) == ("unrated", None)
    assert balance(seed, VICTIM) == "100.0000"
    with psycopg.connect(db_url) as c:
        (note,) = c.execute("SELECT billing_note FROM cdrs").fetchone()
    assert note.startswith("unidentified caller")


def test_cdr_intake_bills_the_trunk_not_the_header(client, seed) -> None:  # type: ignore[no-untyped-def]
    victim_and_attacker(seed)
    seed.trunk("attacker-pbx", ["127.0.0.1/32"], account=ATTACKER)
    body = post_cdr(client)
    assert (body["billing_status"], body["account"]) == ("charged", ATTACKER)
    assert balance(seed, VICTIM) == "100.0000"
    assert balance(seed, ATTACKER) == f"-{body['cost']}"  # charged after the fact, below zero
