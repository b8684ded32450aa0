"""mod_xml_cdr documents for simulated calls, built from one real capture.

``template_cdr.xml`` is a byte-for-byte copy of the shared fixture
``freeswitch/xml_cdr/textxml/answered_uuid_kill_loopback_b_inbound.xml``: the document
FreeSWITCH 1.10.12 posted for loopback B (``Call-Direction: inbound``, the leg that ran the
dialplan) of an answered call from 100001 to 51987654321. :func:`build_cdr` keeps its shape
and replaces everything that belongs to that one call: identity, numbers, times, durations,
cause, and the variables that point at the captured call's other channel.

Values under ``<variables>`` are percent-encoded by FreeSWITCH itself (``switch_url_encode``);
``<callflow>`` values and attributes are plain text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import Final
from urllib.parse import quote, unquote
from uuid import UUID, uuid5

from lxml import etree

TEMPLATE_NAME: Final = "template_cdr.xml"
RING_USEC: Final = 2_000_000
SIM_SWITCHNAME: Final = "apolo-simulator"
SIM_CORE_UUID: Final = "0c2d5e8a-5f1b-4c1e-9a57-a9015e51a7e0"
# switch_url_encode leaves printable ASCII alone except "\r\n #%&+:;<=>?@[\]^`{|}" and '"';
# quote() never touches letters, digits and "-._~", so these are the rest it must keep.
_FS_URL_SAFE: Final = "!$'()*,/"
_USEC: Final = 1_000_000
_CAUSE_RE: Final = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
# Q.850 values of the causes a simulation uses; FreeSWITCH's own causes (above 127, such as
# ALLOTTED_TIMEOUT or ORIGINATOR_CANCEL) are reported as 16, as switch_channel_cause_q850 does.
_Q850: Final = {
    "UNALLOCATED_NUMBER": 1,
    "NO_ROUTE_DESTINATION": 3,
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "CALL_REJECTED": 21,
    "INVALID_NUMBER_FORMAT": 28,
    "NORMAL_UNSPECIFIED": 31,
    "NORMAL_CIRCUIT_CONGESTION": 34,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "SERVICE_UNAVAILABLE": 63,
}
_DEFAULT_Q850: Final = 16
# Variables naming the captured call's other loopback channel.
_LINK_VARIABLES: Final = ("origination_uuid", "other_loopback_leg_uuid")
# Variables only an answered call that ran playback carries (absent in the rejected captures).
_ANSWERED_ONLY: Final = (
    "endpoint_disposition",
    "answer_stamp",
    "playback_last_offset_pos",
    "playback_seconds",
    "playback_ms",
    "playback_samples",
    "current_application_response",
)


def fs_url_encode(value: str) -> str:
    """Percent-encode a channel variable value the way FreeSWITCH writes it into a CDR."""
    return quote(value, safe=_FS_URL_SAFE)


@dataclass(frozen=True)
class _Times:
    start: int
    answer: int  # 0 when the call was not answered
    end: int

    @classmethod
    def of(cls, answer_epoch_us: int, billusec: int) -> _Times:
        start = answer_epoch_us - RING_USEC
        if billusec == 0:  # rang, then hung up when it would have been answered
            return cls(start, 0, answer_epoch_us)
        return cls(start, answer_epoch_us, answer_epoch_us + billusec)

    @property
    def billusec(self) -> int:
        return self.end - self.answer if self.answer else 0

    @property
    def billsec(self) -> int:
        # FreeSWITCH: floor(end_epoch) - floor(answer_epoch), not derived from billusec
        return self.end // _USEC - self.answer // _USEC if self.answer else 0

    @property
    def answer_usec(self) -> int:
        return self.answer - self.start if self.answer else 0


@lru_cache(maxsize=1)
def _template() -> etree._Element:
    data = resources.files(__package__).joinpath(TEMPLATE_NAME).read_bytes()
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    return etree.fromstring(data, parser=parser)


def _stamp(uepoch: int) -> str:
    return datetime.fromtimestamp(uepoch // _USEC, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _child(parent: etree._Element, tag: str) -> etree._Element:
    found = parent.find(tag)
    if found is None:
        raise LookupError(f"template has no <{parent.tag}>/<{tag}>")
    return found


def _append(parent: etree._Element, tag: str) -> etree._Element:
    last = parent[-1] if len(parent) else None
    elem = etree.SubElement(parent, tag)
    if last is not None:  # keep the indentation of the template
        elem.tail, last.tail = last.tail, (parent.text or "")
    return elem


def _set_var(variables: etree._Element, name: str, value: str | int) -> None:
    found = variables.findall(name) or [_append(variables, name)]
    for elem in found:  # repeated names (DP_MATCH) all change
        elem.text = fs_url_encode(str(value))


def _remove(elem: etree._Element) -> None:
    previous, parent = elem.getprevious(), elem.getparent()
    if previous is not None:
        previous.tail = elem.tail
    if parent is not None:
        parent.remove(elem)


def _drop(parent: etree._Element, name: str) -> None:
    for elem in parent.findall(name):
        _remove(elem)


def _identity(
    variables: etree._Element,
    uuid: str,
    caller: str,
    callee: str,
    identity: Mapping[str, str] | None,
) -> None:
    for name in _LINK_VARIABLES:
        _drop(variables, name)
    _set_var(variables, "uuid", uuid)
    _set_var(variables, "call_uuid", uuid)
    _set_var(variables, "channel_name", f"loopback/{callee}-b")
    _set_var(variables, "DP_MATCH", callee)
    _set_var(variables, "origination_caller_id_number", caller)
    name = unquote(_child(variables, "origination_caller_id_name").text or "")
    _set_var(variables, "caller_id", f'"{name}" <{caller}>')
    # the capture's originate set billing_account, which means nothing to Apolo: what says who
    # is calling are the variables the caller cannot write (sidecar/freeswitch/caller_facts.py)
    _drop(variables, "billing_account")
    for var, value in (identity or {}).items():
        _set_var(variables, var, value)


def _times(variables: etree._Element, t: _Times) -> None:
    epochs = {"start": t.start, "profile_start": t.start, "answer": t.answer, "end": t.end}
    for prefix, uepoch in epochs.items():
        _set_var(variables, f"{prefix}_epoch", uepoch // _USEC)
        _set_var(variables, f"{prefix}_uepoch", uepoch)
        if uepoch:
            _set_var(variables, f"{prefix}_stamp", _stamp(uepoch))
    uduration = t.end - t.start
    values = {
        "billsec": t.billsec, "billmsec": t.billusec // 1000, "billusec": t.billusec,
        "answersec": t.answer_usec // _USEC, "answermsec": t.answer_usec // 1000,
        "answerusec": t.answer_usec,
    }  # fmt: skip
    for name, value in values.items():
        _set_var(variables, name, value)
        if name.startswith("bill"):
            _set_var(variables, f"flow_{name}", value)
    _set_var(variables, "duration", t.end // _USEC - t.start // _USEC)
    _set_var(variables, "mduration", uduration // 1000)
    _set_var(variables, "uduration", uduration)


def _hangup(root: etree._Element, variables: etree._Element, cause: str, t: _Times) -> None:
    _set_var(variables, "hangup_cause", cause)
    _set_var(variables, "hangup_cause_q850", _Q850.get(cause, _DEFAULT_Q850))
    if t.answer:
        return
    # An unanswered call ran `hangup <cause>` instead of answer + playback.
    for name in _ANSWERED_ONLY:
        _drop(variables, name)
    for name, value in (("current_application", "hangup"), ("current_application_data", cause),
                        ("last_app", "hangup"), ("last_arg", cause)):  # fmt: skip
        _set_var(variables, name, value)
    app_log = _child(root, "app_log")
    extension = _child(_child(root, "callflow"), "extension")
    for parent, stamp in ((app_log, str(t.end)), (extension, None)):
        first, *rest = parent.findall("application")
        for app in rest:
            _remove(app)
        first.attrib.clear()
        first.set("app_name", "hangup")
        first.set("app_data", cause)
        if stamp is not None:
            first.set("app_stamp", stamp)


def _callflow(callflow: etree._Element, uuid: str, caller: str, callee: str, t: _Times) -> None:
    # caller profile ids are per call too; derive them so a build is reproducible
    callflow.set("unique-id", str(uuid5(UUID(uuid), "caller_profile")))
    callflow.set("clone-of", str(uuid5(UUID(uuid), "caller_profile_clone")))
    _child(callflow, "extension").set("number", callee)
    profile = _child(callflow, "caller_profile")
    for tag, value in (("caller_id_number", caller), ("ani", caller),
                       ("destination_number", callee), ("uuid", uuid),
                       ("chan_name", f"loopback/{callee}-b")):  # fmt: skip
        _child(profile, tag).text = value
    times = _child(callflow, "times")
    for tag, uepoch in (("created_time", t.start), ("profile_created_time", t.start),
                        ("answered_time", t.answer), ("hangup_time", t.end)):  # fmt: skip
        _child(times, tag).text = str(uepoch)


def build_cdr(
    uuid: str,
    caller: str,
    callee: str,
    answer_epoch_us: int,
    billusec: int,
    identity: Mapping[str, str] | None = None,
    hangup_cause: str = "NORMAL_CLEARING",
) -> bytes:
    """The CDR FreeSWITCH would post for loopback B of a call answered at ``answer_epoch_us``.

    The call rang for 2 s before the answer and talked ``billusec`` microseconds. With
    ``billusec == 0`` it was never answered: it hung up at ``answer_epoch_us`` after ringing.
    ``identity``: channel variables saying who called (e.g. ``sip_network_ip``), as the
    simulated switch set them.
    """
    try:
        UUID(uuid)
    except ValueError:
        raise ValueError(f"not a channel uuid: {uuid[:80]!r}") from None
    if billusec < 0 or answer_epoch_us <= RING_USEC:
        raise ValueError("billusec must be >= 0 and answer_epoch_us a positive epoch")
    if _CAUSE_RE.fullmatch(hangup_cause) is None:
        raise ValueError(f"not a FreeSWITCH hangup cause: {hangup_cause!r}")
    t = _Times.of(answer_epoch_us, billusec)
    root = deepcopy(_template())
    variables = _child(root, "variables")
    if t.answer:  # the apps of the answered template ran right at its answer
        shift = t.answer - int(_child(variables, "answer_uepoch").text or 0)
        for app in _child(root, "app_log").iter("application"):
            app.set("app_stamp", str(int(app.get("app_stamp", "0")) + shift))
    root.set("core-uuid", SIM_CORE_UUID)
    root.set("switchname", SIM_SWITCHNAME)
    _identity(variables, uuid, caller, callee, identity)
    _times(variables, t)
    _hangup(root, variables, hangup_cause, t)
    _callflow(_child(root, "callflow"), uuid, caller, callee, t)
    for elem in root.iter():
        if elem.text is None and not len(elem):
            elem.text = ""  # FreeSWITCH writes <caps></caps>, not <caps/>
    body: bytes = etree.tostring(root, encoding="UTF-8", xml_declaration=False)
    return b'<?xml version="1.0"?>\n' + body + b"\n"
