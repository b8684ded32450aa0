"""The FreeSWITCH-side configuration files: dialplan/*.xml and xml_curl/*.xml.

Parameter names are checked against the ones mod_xml_cdr.c / mod_xml_curl.c (FreeSWITCH 1.10)
actually parse, because FreeSWITCH silently ignores a misspelt one.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
DIALPLANS = sorted((ROOT / "dialplan").glob("*.xml"))
OUTBOUND = ROOT / "dialplan" / "apolo_outbound.xml"
AUTHORIZED = ROOT / "dialplan" / "apolo_authorized.xml"
XML_CDR = ROOT / "xml_curl" / "xml_cdr.conf.xml"
XML_CURL = ROOT / "xml_curl" / "xml_curl.conf.xml"
SIDECAR = "http://127.0.0.1:8080"

XML_CDR_PARAMS = {
    "cred", "url", "log-http-and-disk", "timeout", "delay", "log-b-leg", "prefix-a-leg",
    "disable-100-continue", "encode", "retries", "rotate", "log-dir", "err-log-dir",
    "enable-cacert-check", "ssl-cert-path", "ssl-key-path", "ssl-key-password", "ssl-version",
    "ssl-cacert-file", "enable-ssl-verifyhost", "auth-scheme", "cookie-file",
}  # fmt: skip
XML_CURL_PARAMS = {
    "gateway-url", "gateway-credentials", "auth-scheme", "disable-100-continue", "method",
    "timeout", "enable-cacert-check", "ssl-cert-path", "ssl-key-path", "ssl-key-password",
    "ssl-version", "ssl-cacert-file", "enable-ssl-verifyhost", "cookie-file", "use-dynamic-url",
    "enable-post-var", "bind-local",
}  # fmt: skip


def parse(path: Path) -> etree._Element:
    return etree.parse(str(path)).getroot()


def params(element: etree._Element) -> dict[str, etree._Element]:
    found = {p.get("name"): p for p in element.iter("param")}
    assert len(found) == len(list(element.iter("param"))), "a param is given twice"
    return found


def actions(element: etree._Element, tag: str = "action") -> list[tuple[str, str]]:
    return [(a.get("application"), a.get("data", "")) for a in element.iter(tag)]


# ------------------------------------------------------------------ dialplan


def test_dialplan_files_exist() -> None:
    assert OUTBOUND in DIALPLANS and AUTHORIZED in DIALPLANS


@pytest.mark.parametrize("path", DIALPLANS, ids=lambda p: p.name)
def test_every_bridge_sits_under_the_authorized_condition(path: Path) -> None:
    for node in parse(path).iter("action", "anti-action"):
        if node.get("application") != "bridge":
            continue
        assert node.tag == "action", f"{path.name}: a bridge as anti-action"
        condition = node.getparent()
        assert condition.tag == "condition"
        assert condition.get("field") == "${apolo_result}"
        assert condition.get("expression") == "^authorized$"
        assert condition.get("break") in (None, "on-false")
        anti = actions(condition, "anti-action")
        assert anti and anti[-1][0] == "hangup", f"{path.name}: no hangup when not authorized"
        assert node.get("inline") is None


def test_authorized_context_is_hunted_after_the_hook() -> None:
    root = parse(AUTHORIZED)
    [context] = root.findall("context")
    assert context.get("name") == "apolo_authorized"
    [extension] = context.findall("extension")
    first, second = extension.findall("condition")
    assert (first.get("field"), first.get("expression")) == ("destination_number", "^apolo_bridge$")
    assert ("set", "hangup_after_bridge=true") in actions(second)
    assert ("bridge", "sofia/gateway/${apolo_gateway}/${apolo_dest}") in actions(second)
    assert actions(second, "anti-action")[-1] == ("hangup", "${apolo_reject_cause}")


def test_outbound_runs_the_hook_then_the_guarded_bridge_then_hangs_up() -> None:
    root = parse(OUTBOUND)
    assert root.tag == "include" and root.find("context") is None  # goes inside <context default>
    [extension] = root.findall("extension")
    assert extension.get("continue") in (None, "false")
    [condition] = extension.findall("condition")
    assert condition.get("field") == "destination_number"
    steps = actions(condition)
    apps = [app for app, _ in steps]
    assert "bridge" not in apps
    assert all(a.get("inline") is None for a in condition.iter("action"))  # python can't be inline
    assert apps.index("unset") < apps.index("python") < apps.index("execute_extension")
    assert ("unset", "apolo_result") in steps
    assert ("python", "apolo_authorize") in steps
    assert ("execute_extension", "apolo_bridge XML apolo_authorized") in steps
    assert steps[-1] == ("hangup", "${apolo_reject_cause}")
    assert ("set", "apolo_dest=$1") in steps
    assert ("set", "apolo_reject_cause=CALL_REJECTED") in steps
    # The Lua alternative is there, commented out.
    comments = " ".join(c.text for c in condition.iter(etree.Comment))
    assert '<action application="lua" data="apolo_authorize.lua"/>' in comments


@pytest.mark.parametrize(
    ("number", "billed"),
    [("51987654321", True), ("+51987654321", True), ("004951987654", True), ("1000", False),
     ("*98", False), ("5198765432123456", False), ("51 98765", False)],
)  # fmt: skip
def test_outbound_number_expression(number: str, billed: bool) -> None:
    [condition] = parse(OUTBOUND).iter("condition")
    match = re.fullmatch(condition.get("expression"), number)
    assert bool(match) is billed
    if match:
        assert match.group(1) == number.lstrip("+")


# ------------------------------------------------------------------ mod_xml_cdr


def test_xml_cdr_posts_textxml_to_the_sidecar() -> None:
    root = parse(XML_CDR)
    assert root.tag == "configuration" and root.get("name") == "xml_cdr.conf"
    p = {name: el.get("value") for name, el in params(root.find("settings")).items()}
    assert set(p) <= XML_CDR_PARAMS, set(p) - XML_CDR_PARAMS
    url = urlsplit(p["url"])
    assert f"{url.scheme}://{url.netloc}" == SIDECAR and url.path == "/freeswitch/cdr"
    assert not url.query  # mod_xml_cdr adds ?uuid=...
    assert p["encode"] == "textxml"
    assert p["cred"] == "$${apolo_fs_user}:$${apolo_fs_password}"
    assert p["auth-scheme"] == "basic"
    assert p["log-b-leg"] == "true" and p["prefix-a-leg"] == "true"
    assert p["err-log-dir"].strip()
    assert p["log-dir"] == "" and p["log-http-and-disk"] == "false"
    assert int(p["retries"]) >= 1 and int(p["delay"]) >= 1 and int(p["timeout"]) >= 1
    # It would drop the Content-Type: text/xml header (see the comment in the file).
    assert p.get("disable-100-continue", "false") == "false"


# ------------------------------------------------------------------ mod_xml_curl


def test_xml_curl_binds_the_dialplan_to_the_sidecar() -> None:
    root = parse(XML_CURL)
    assert root.tag == "configuration" and root.get("name") == "xml_curl.conf"
    [binding] = root.find("bindings").findall("binding")
    p = params(binding)
    assert set(p) <= XML_CURL_PARAMS, set(p) - XML_CURL_PARAMS
    gateway = p["gateway-url"]
    assert gateway.get("bindings") == "dialplan"
    url = urlsplit(gateway.get("value"))
    assert f"{url.scheme}://{url.netloc}" == SIDECAR and url.path == "/freeswitch/dialplan"
    assert p["gateway-credentials"].get("value") == "$${apolo_fs_user}:$${apolo_fs_password}"
    assert p["auth-scheme"].get("value") == "basic"
    assert int(p["timeout"].get("value")) >= 1
    assert p["disable-100-continue"].get("value") == "true"


@pytest.mark.parametrize("path", [*DIALPLANS, XML_CDR, XML_CURL], ids=lambda p: p.name)
def test_no_preprocessor_directive_hides_in_a_comment(path: Path) -> None:
    """FreeSWITCH's line-based preprocessor can act on X-PRE-PROCESS lines inside XML comments."""
    assert "X-PRE-PROCESS" not in path.read_text()
