"""mod_xml_curl adapter: dialplan request form -> :class:`DialplanRequest`, and the
``freeswitch/xml`` documents answered to it.

The form values arrive already percent-decoded once (``variable_*`` values are not encoded a
second time, unlike in mod_xml_cdr documents).
"""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from lxml import etree

from sidecar.freeswitch import channel_vars as cv
from sidecar.freeswitch.caller_facts import IDENTITY_VARIABLES, caller_facts
from sidecar.freeswitch.commands import is_valid_cause, is_valid_uuid
from sidecar.identity import CallerFacts

_XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
_EXTENSION_NAME: Final = "apolo"
_CONDITION_FIELD: Final = cv.DESTINATION_NUMBER
_CONDITION_EXPRESSION: Final = "^(.+)$"
_APP_SET: Final = "set"
_APP_HANGUP: Final = "hangup"
_APP_BRIDGE: Final = "bridge"

_VAR_NAME_RE: Final = re.compile(r"apolo_[a-z0-9_]{1,64}")
_CONTROL_RE: Final = re.compile(r"[\x00-\x1f\x7f]")
# "${...}" / "$${...}" inside action data is expanded by FreeSWITCH, and "${api(args)}" even
# runs API commands, so '$' never reaches action data unescaped.
_EXPANSION_RE: Final = re.compile(r"[$]")
# Variable values may echo caller-supplied data (e.g. an unknown X-Billing-Account) and a reject
# must never fail because of it, so such characters are percent-encoded instead of refused.
_VALUE_UNSAFE_RE: Final = re.compile(r"[$%\x00-\x1f\x7f]")


class DialplanRequestError(ValueError):
    """A mod_xml_curl request lacks a field the sidecar needs."""


@dataclass(frozen=True)
class DialplanRequest:
    section: str
    uuid: str
    caller: str
    callee: str
    context: str
    facts: CallerFacts  # who is calling; the sidecar decides who pays (sidecar/identity.py)
    hostname: str | None
    call_direction: str | None
    core_uuid: str | None


def _first(form: Mapping[str, str], names: Iterable[str]) -> str | None:
    for name in names:
        value = form.get(name)
        if value:
            return value
    return None


def parse_dialplan_request(form: Mapping[str, str]) -> DialplanRequest:
    section = form.get(cv.XC_SECTION)
    if not section:
        raise DialplanRequestError("xml_curl request has no 'section'")
    uuid = form.get(cv.XC_UNIQUE_ID)
    if not uuid:
        raise DialplanRequestError("xml_curl request has no 'Unique-ID'")
    if not is_valid_uuid(uuid):
        raise DialplanRequestError(f"'Unique-ID' is not a channel uuid: {uuid[:80]!r}")
    # Hunt-* describe the lookup FreeSWITCH is doing now (execute_extension re-hunts with
    # a new context and extension but keeps the channel's caller profile)
    callee = _first(form, (cv.XC_HUNT_DESTINATION_NUMBER, cv.XC_CALLER_DESTINATION_NUMBER))
    if callee is None:
        raise DialplanRequestError("xml_curl request has no destination number")
    context = _first(form, (cv.XC_HUNT_CONTEXT, cv.XC_CALLER_CONTEXT))
    if context is None:
        raise DialplanRequestError("xml_curl request has no 'Caller-Context'")
    caller = _first(form, (cv.XC_CALLER_CALLER_ID_NUMBER, cv.XC_CALLER_ANI)) or ""
    variables = {
        name: form[cv.XC_VARIABLE_PREFIX + name]
        for name in IDENTITY_VARIABLES
        if cv.XC_VARIABLE_PREFIX + name in form
    }
    return DialplanRequest(
        section=section,
        uuid=uuid,
        caller=caller,
        callee=callee,
        context=context,
        facts=caller_facts(variables, caller),
        hostname=form.get(cv.XC_HOSTNAME) or None,
        call_direction=form.get(cv.XC_CALL_DIRECTION) or None,
        core_uuid=form.get(cv.XC_CORE_UUID) or None,
    )


# --- response documents ----------------------------------------------------------------------


def _serialize(document: etree._Element) -> bytes:
    body: bytes = etree.tostring(document, encoding="UTF-8", xml_declaration=False)
    return _XML_DECLARATION + body + b"\n"


def _new_document() -> etree._Element:
    return etree.Element("document", type="freeswitch/xml")


def not_found_document() -> bytes:
    """The answer that makes FreeSWITCH fall back to its static configuration."""
    document = _new_document()
    section = etree.SubElement(document, "section", name="result")
    etree.SubElement(section, "result", status="not found")
    return _serialize(document)


def _checked_value(what: str, value: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {type(value).__name__}")
    if _CONTROL_RE.search(value):
        raise ValueError(f"{what} contains control characters: {value[:80]!r}")
    if _EXPANSION_RE.search(value):
        raise ValueError(f"{what} contains '$' (FreeSWITCH would expand it): {value[:80]!r}")
    return value


def _cause(cause: str) -> str:
    if not is_valid_cause(cause):
        raise ValueError(f"invalid hangup cause: {cause!r}")
    return cause


def escape_variable_value(value: str) -> str:
    """Percent-encode '$', '%' and control characters (reversible with urllib unquote)."""
    if not isinstance(value, str):
        raise ValueError(f"variable values must be strings, got {type(value).__name__}")
    return _VALUE_UNSAFE_RE.sub(lambda m: f"%{ord(m.group()):02X}", value)


def _set_actions(variables: Mapping[str, str]) -> list[tuple[str, str]]:
    actions = []
    for name, value in variables.items():
        if not isinstance(name, str) or _VAR_NAME_RE.fullmatch(name) is None:
            raise ValueError(f"only apolo_* variables may be set, got {name!r}")
        actions.append((_APP_SET, f"{name}={escape_variable_value(value)}"))
    return actions


def _dialplan_document(context: str, actions: list[tuple[str, str]]) -> bytes:
    context = _checked_value("context", context)
    if not context:
        raise ValueError("context must not be empty")
    document = _new_document()
    section = etree.SubElement(document, "section", name="dialplan", description="apolo")
    ctx = etree.SubElement(section, "context", name=context)
    extension = etree.SubElement(ctx, "extension", name=_EXTENSION_NAME)
    condition = etree.SubElement(
        extension, "condition", field=_CONDITION_FIELD, expression=_CONDITION_EXPRESSION
    )
    for application, data in actions:
        etree.SubElement(condition, "action", application=application, data=data)
    return _serialize(document)


def reject_document(context: str, cause: str, variables: Mapping[str, str]) -> bytes:
    """Record the ``apolo_*`` variables on the channel, then ``hangup <cause>``.

    Values are escaped with :func:`escape_variable_value`; only bad names, an empty or unsafe
    context and a malformed cause raise ``ValueError``."""
    actions = _set_actions(variables)
    actions.append((_APP_HANGUP, _cause(cause)))
    return _dialplan_document(context, actions)


def bridge_document(
    context: str,
    variables: Mapping[str, str],
    execute_on_answer: str,
    bridge_target: str,
    *,
    hangup_after_bridge: bool = True,
) -> bytes:
    """Set the ``apolo_*`` variables and ``execute_on_answer`` on the calling channel, then
    bridge. ``bridge_target`` must already be built from validated parts (it is only checked
    for control characters and '$')."""
    actions = _set_actions(variables)
    eoa = _checked_value(cv.EXECUTE_ON_ANSWER, execute_on_answer)
    if eoa:
        actions.append((_APP_SET, f"{cv.EXECUTE_ON_ANSWER}={eoa}"))
    if hangup_after_bridge:
        actions.append((_APP_SET, f"{cv.HANGUP_AFTER_BRIDGE}=true"))
    target = _checked_value("bridge_target", bridge_target)
    if not target.strip():
        raise ValueError("bridge_target must not be empty")
    actions.append((_APP_BRIDGE, target))
    return _dialplan_document(context, actions)
