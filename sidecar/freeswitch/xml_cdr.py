"""mod_xml_cdr adapter: HTTP POST bodies / err-log-dir files -> :class:`CdrRecord`.

Wire facts (FreeSWITCH 1.10.12 captures, see fixtures README):

* ``?uuid=a_<uuid>`` marks an A leg only when ``prefix-a-leg=true``; without the prefix the
  leg is unknown from the URL alone, so the document itself decides.
* Values under ``<variables>`` are percent-encoded by FreeSWITCH (``Apolo%20Test``) on top of
  any transport encoding; ``<callflow>`` values are plain text.
* mod_xml_cdr's own B-leg test is "the current caller profile has an originator profile",
  i.e. an ``<originator>`` child of the first ``<callflow>/<caller_profile>``.
"""

import base64
import binascii
import codecs
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final, Literal
from urllib.parse import unquote, unquote_to_bytes

from lxml import etree

from sidecar.freeswitch import channel_vars as cv
from sidecar.freeswitch.caller_facts import caller_facts
from sidecar.freeswitch.commands import is_valid_uuid
from sidecar.freeswitch.xml_safe import parse_xml
from sidecar.identity import CallerFacts

DEFAULT_MAX_XML_BYTES: Final = 2_000_000
# urlencoded bodies can be up to three times the XML size.
DEFAULT_MAX_BODY_BYTES: Final = 3 * DEFAULT_MAX_XML_BYTES + 16

CT_URLENCODED: Final = "application/x-www-form-urlencoded"
CT_PLAINTEXT: Final = "application/x-www-form-plaintext"
CT_BASE64: Final = "application/x-www-form-base64-encoded"
CT_TEXTXML: Final = "text/xml"
_RAW_XML_TYPES: Final = frozenset({CT_TEXTXML, "application/xml"})

SPOOL_SUFFIX: Final = ".cdr.xml"

_USEC: Final = 1_000_000
MAX_CALL_USEC: Final = 10 * 24 * 3600 * _USEC
MIN_EPOCH_USEC: Final = 946_684_800 * _USEC  # 2000-01-01T00:00:00Z
MAX_EPOCH_USEC: Final = 4_102_444_800 * _USEC  # 2100-01-01T00:00:00Z
_INT_RE: Final = re.compile(r"[0-9]{1,19}")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_LINK_VARIABLES: Final = (
    cv.OTHER_LOOPBACK_LEG_UUID,
    cv.BRIDGE_UUID,
    cv.SIGNAL_BOND,
    cv.LAST_BRIDGE_TO,
    cv.ORIGINATOR,
    cv.ORIGINATING_LEG_UUID,
    cv.LOOPBACK_FROM_UUID,
    cv.CALL_UUID,
)
_LINK_PROFILES: Final = (
    f"{cv.CDR_ORIGINATOR}/{cv.CDR_ORIGINATOR_CALLER_PROFILE}/{cv.UUID}",
    f"{cv.CDR_ORIGINATEE}/{cv.CDR_ORIGINATEE_CALLER_PROFILE}/{cv.UUID}",
    f"{cv.CDR_ORIGINATION}/{cv.CDR_ORIGINATION_CALLER_PROFILE}/{cv.UUID}",
)


class CdrDecodeError(ValueError):
    """The transport encoding (content type, form field, base64, file name) is unusable."""


class CdrInvalidError(ValueError):
    """The XML parsed but is not a plausible FreeSWITCH CDR."""


@dataclass(frozen=True)
class CdrPost:
    xml: bytes
    a_leg_hint: bool | None
    uuid_hint: str | None


@dataclass(frozen=True)
class CdrRecord:
    uuid: str
    leg: Literal["a", "b"]
    direction: Literal["inbound", "outbound"]
    caller: str
    callee: str
    context: str
    ani: str
    cid_flipped: bool
    facts: CallerFacts  # who is calling, for a call Apolo did not authorize
    start_uepoch: int
    answer_uepoch: int
    end_uepoch: int
    billusec: int
    billsec: int
    fs_billsec: int
    duration_usec: int
    hangup_cause: str
    hangup_cause_q850: int | None
    linked_uuids: tuple[str, ...]
    apolo_vars: dict[str, str] = field(hash=False)
    switchname: str | None
    core_uuid: str | None
    # Every <variables> entry, percent-decoded once (first value of repeated names).
    variables: dict[str, str] = field(hash=False, repr=False)
    # Variables whose value held a NUL byte (kept with U+FFFD; the raw document has them).
    flagged: tuple[str, ...] = ()

    @property
    def answered(self) -> bool:
        return self.answer_uepoch > 0

    @property
    def start_at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.start_uepoch)

    @property
    def answer_at(self) -> datetime | None:
        return _EPOCH + timedelta(microseconds=self.answer_uepoch) if self.answered else None

    @property
    def end_at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.end_uepoch)


# --- transport decoding -----------------------------------------------------------------------


def split_uuid_hint(raw: str | None) -> tuple[str | None, bool | None]:
    """``a_<uuid>`` -> (uuid, True); ``<uuid>`` -> (uuid, None); empty -> (None, None)."""
    if not raw:
        return None, None
    a_leg: bool | None = None
    if raw.startswith(cv.CDR_A_LEG_PREFIX):
        raw, a_leg = raw[len(cv.CDR_A_LEG_PREFIX) :], True
    if not is_valid_uuid(raw):
        raise CdrDecodeError(f"uuid query value is not a channel uuid: {raw[:80]!r}")
    return raw, a_leg


def _media_type(content_type: str) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _strip_field(body: bytes) -> bytes:
    prefix = cv.CDR_FORM_FIELD.encode() + b"="
    if not body.startswith(prefix):
        raise CdrDecodeError("body does not start with the 'cdr=' form field")
    return body[len(prefix) :]


def percent_decode(data: bytes) -> bytes:
    """``urllib.parse.unquote_to_bytes``, several times faster on a whole CDR (encode=true
    documents escape most of their bytes): each %HH becomes \\xHH for the C codec that reads
    byte-string escapes. Data holding a backslash, or a % that is not a well-formed %HH
    (which unquote_to_bytes keeps as it is), takes unquote_to_bytes itself, so the result
    is the same byte for byte."""
    if b"%" not in data:
        return data
    if b"\\" not in data:
        try:
            return codecs.escape_decode(data.replace(b"%", b"\\x"))[0]
        except ValueError:
            pass
    return unquote_to_bytes(data)


def _urlencoded_field(body: bytes) -> bytes:
    values = []
    for pair in body.split(b"&"):
        name, sep, value = pair.partition(b"=")
        if sep and unquote_to_bytes(name.replace(b"+", b" ")) == cv.CDR_FORM_FIELD.encode():
            values.append(value)
    if len(values) != 1:
        raise CdrDecodeError(f"expected exactly one 'cdr' form field, found {len(values)}")
    # FreeSWITCH escapes '+' itself, so a literal '+' can only mean a space (form rules).
    return percent_decode(values[0].replace(b"+", b" "))


def _base64(text: bytes) -> bytes:
    text = b"".join(text.split())
    if b"%" in text:  # tolerate a proxy that percent-encoded '+', '/' and '='
        text = unquote_to_bytes(text)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CdrDecodeError(f"cdr field is not valid base64: {exc}") from None


def _require_xml(xml: bytes) -> bytes:
    head = xml.lstrip()
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:].lstrip()
    if not head.startswith(b"<"):
        raise CdrDecodeError("decoded body is not an XML document")
    return xml


def decode_post(
    content_type: str,
    body: bytes,
    query_uuid: str | None,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> CdrPost:
    """Undo the mod_xml_cdr transport encoding chosen by its ``encode`` setting.

    ``body`` must be the raw request body (not a form already parsed by the web framework:
    ``encode=false`` bodies are not form-safe).
    """
    if len(body) > max_body_bytes:
        raise CdrDecodeError(f"body is {len(body)} bytes, limit is {max_body_bytes}")
    uuid_hint, a_leg_hint = split_uuid_hint(query_uuid)
    media_type = _media_type(content_type)
    if media_type == CT_URLENCODED:
        xml = _urlencoded_field(body)
    elif media_type == CT_PLAINTEXT:
        xml = _strip_field(body)
    elif media_type == CT_BASE64:
        xml = _base64(_strip_field(body))
    elif media_type in _RAW_XML_TYPES:
        xml = body
    else:
        raise CdrDecodeError(f"unsupported content type for a CDR post: {media_type!r}")
    return CdrPost(xml=_require_xml(xml), a_leg_hint=a_leg_hint, uuid_hint=uuid_hint)


def decode_spooled_file(name: str, data: bytes) -> CdrPost:
    """Decode a file mod_xml_cdr wrote to err-log-dir (``<prefix><uuid>.cdr.xml``).

    The file holds the POST payload without ``cdr=``: raw XML (encode=false/textxml),
    percent-encoded XML (encode=true) or base64 (encode=base64).
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if not base.endswith(SPOOL_SUFFIX) or len(base) == len(SPOOL_SUFFIX):
        raise CdrDecodeError(f"not an err-log-dir CDR file name: {base[:120]!r}")
    uuid_hint, a_leg_hint = split_uuid_hint(base[: -len(SPOOL_SUFFIX)])
    head = data.lstrip()[:3]
    if head.startswith((b"<", b"\xef\xbb\xbf")):
        xml = data
    elif head.lower() == b"%3c":
        xml = percent_decode(data.strip())
    else:
        xml = _base64(data)
    return CdrPost(xml=_require_xml(xml), a_leg_hint=a_leg_hint, uuid_hint=uuid_hint)


# --- document parsing -------------------------------------------------------------------------


def _text(elem: etree._Element | None) -> str | None:
    if elem is None:
        return None
    return elem.text or ""


def _variables(root: etree._Element) -> tuple[dict[str, str], tuple[str, ...]]:
    """Every variable percent-decoded once, and the names of those whose value decoded to a
    NUL byte (``%00``). FreeSWITCH's variables are C strings and cannot hold one, so such a
    value is damaged or forged: it is kept with U+FFFD in place of each NUL (as undecodable
    bytes already are; text PostgreSQL can store), flagged, and never names an account."""
    node = root.find(cv.CDR_VARIABLES)
    if node is None:
        raise CdrInvalidError("CDR has no <variables> element")
    out: dict[str, str] = {}
    flagged: list[str] = []
    for child in node:
        tag = child.tag
        if isinstance(tag, str) and tag not in out:  # first value wins, like get_variable
            text = child.text or ""
            value = unquote(text, errors="replace") if "%" in text else text
            if "\x00" in value:
                value = value.replace("\x00", "\ufffd")
                flagged.append(tag)
            out[tag] = value
    return out, tuple(flagged)


def _parse_int(raw: str | None, name: str) -> int | None:
    if raw is None or raw.strip() == "":
        return None
    if _INT_RE.fullmatch(raw.strip()) is None:
        raise CdrInvalidError(f"{name} is not a non-negative integer: {raw[:40]!r}")
    return int(raw)


def _epoch(variables: dict[str, str], times: etree._Element | None, var: str, tag: str) -> int:
    value = _parse_int(variables.get(var), var)
    if value is None and times is not None:
        value = _parse_int(_text(times.find(tag)), tag)
    if value is None:
        raise CdrInvalidError(f"CDR has no {var}")
    if value != 0 and not MIN_EPOCH_USEC <= value <= MAX_EPOCH_USEC:
        raise CdrInvalidError(f"{var}={value} is outside 2000..2100")
    return value


def _direction(raw: str | None) -> Literal["inbound", "outbound"]:
    if raw == "inbound":
        return "inbound"
    if raw == "outbound":
        return "outbound"
    raise CdrInvalidError(f"direction is {raw!r}, expected inbound or outbound")


def _check_times(start: int, answer: int, end: int, billusec: int) -> None:
    if start == 0 or end == 0:
        raise CdrInvalidError("start/end epoch is zero")
    if end < start:
        raise CdrInvalidError(f"end_uepoch {end} is before start_uepoch {start}")
    if end - start > MAX_CALL_USEC:
        raise CdrInvalidError(f"call lasted {end - start} us, more than 10 days")
    if answer and not start <= answer <= end:
        raise CdrInvalidError(f"answer_uepoch {answer} is outside start..end")
    if billusec > MAX_CALL_USEC:
        raise CdrInvalidError(f"billusec {billusec} is more than 10 days")
    if not answer and billusec:
        raise CdrInvalidError(f"unanswered call has billusec {billusec}")
    if billusec > end - start:
        raise CdrInvalidError(f"billusec {billusec} exceeds the call duration {end - start}")


def _linked_uuids(
    own: str, variables: dict[str, str], callflows: list[etree._Element]
) -> tuple[str, ...]:
    found: list[str] = [variables.get(name, "") for name in _LINK_VARIABLES]
    for callflow in callflows:
        profile = callflow.find(cv.CDR_CALLER_PROFILE)
        if profile is not None:
            found.extend(_text(profile.find(path)) or "" for path in _LINK_PROFILES)
    out: list[str] = []
    for value in found:
        if value and value != own and value not in out and is_valid_uuid(value):
            out.append(value)
    return tuple(out)


def parse_cdr(
    xml: bytes,
    *,
    a_leg_hint: bool | None = None,
    uuid_hint: str | None = None,
    max_bytes: int = DEFAULT_MAX_XML_BYTES,
) -> CdrRecord:
    """Parse one mod_xml_cdr document. Hints (from the URL/file name) must agree with it."""
    root = parse_xml(xml, max_bytes)
    if root.tag != cv.CDR_ROOT:
        raise CdrInvalidError(f"root element is <{root.tag}>, expected <{cv.CDR_ROOT}>")
    variables, flagged = _variables(root)
    callflows = root.findall(cv.CDR_CALLFLOW)
    # The first <callflow> is the channel's current caller profile.
    profile = callflows[0].find(cv.CDR_CALLER_PROFILE) if callflows else None
    if profile is None:
        raise CdrInvalidError("CDR has no <callflow>/<caller_profile>")

    uuid = variables.get(cv.UUID) or _text(profile.find(cv.UUID)) or ""
    if not is_valid_uuid(uuid):
        raise CdrInvalidError(f"CDR has no usable channel uuid: {uuid[:80]!r}")
    profile_uuid = _text(profile.find(cv.UUID))
    if profile_uuid and profile_uuid != uuid:
        raise CdrInvalidError(f"caller_profile uuid {profile_uuid!r} differs from {uuid!r}")
    if uuid_hint is not None and uuid_hint != uuid:
        raise CdrInvalidError(f"posted for uuid {uuid_hint!r} but the CDR is for {uuid!r}")

    leg: Literal["a", "b"] = "b" if profile.find(cv.CDR_ORIGINATOR) is not None else "a"
    if a_leg_hint is not None and a_leg_hint != (leg == "a"):
        raise CdrInvalidError(f"leg hint a_leg={a_leg_hint} contradicts the document ({leg})")

    direction = _direction(
        variables.get(cv.DIRECTION) or _text(root.find(f"{cv.CDR_CHANNEL_DATA}/{cv.DIRECTION}"))
    )

    times = callflows[0].find(cv.CDR_TIMES)
    start = _epoch(variables, times, cv.START_UEPOCH, cv.TIMES_CREATED)
    answer = _epoch(variables, times, cv.ANSWER_UEPOCH, cv.TIMES_ANSWERED)
    end = _epoch(variables, times, cv.END_UEPOCH, cv.TIMES_HANGUP)
    billusec = _parse_int(variables.get(cv.BILLUSEC), cv.BILLUSEC)
    if billusec is None:
        billusec = end - answer if answer else 0
    _check_times(start, answer, end, billusec)
    fs_billsec = _parse_int(variables.get(cv.BILLSEC), cv.BILLSEC)
    if fs_billsec is None:
        raise CdrInvalidError("CDR has no billsec")
    if fs_billsec > MAX_CALL_USEC // _USEC + 1:
        raise CdrInvalidError(f"billsec {fs_billsec} is more than 10 days")

    hangup_cause = variables.get(cv.HANGUP_CAUSE)
    if not hangup_cause:
        raise CdrInvalidError("CDR has no hangup_cause")
    q850 = _parse_int(variables.get(cv.HANGUP_CAUSE_Q850), cv.HANGUP_CAUSE_Q850)
    if q850 is not None and q850 > 127:
        raise CdrInvalidError(f"hangup_cause_q850 {q850} is not a Q.850 cause")

    caller = _text(profile.find(cv.CALLER_ID_NUMBER)) or ""
    return CdrRecord(
        uuid=uuid,
        leg=leg,
        direction=direction,
        caller=caller,
        callee=_text(profile.find(cv.DESTINATION_NUMBER)) or "",
        context=_text(profile.find(cv.CONTEXT)) or "",
        ani=_text(profile.find(cv.ANI)) or "",
        cid_flipped=variables.get(cv.CHANNEL_CID_FLIPPED, "").lower() in ("yes", "true", "1"),
        # a value a NUL was taken out of never says who pays
        facts=caller_facts({k: v for k, v in variables.items() if k not in flagged}, caller),
        start_uepoch=start,
        answer_uepoch=answer,
        end_uepoch=end,
        billusec=billusec,
        billsec=-(-billusec // _USEC),
        fs_billsec=fs_billsec,
        duration_usec=end - start,
        hangup_cause=hangup_cause,
        hangup_cause_q850=q850,
        linked_uuids=_linked_uuids(uuid, variables, callflows),
        apolo_vars={k: v for k, v in variables.items() if k.startswith(cv.APOLO_PREFIX)},
        switchname=root.get(cv.CDR_SWITCHNAME_ATTR),
        core_uuid=root.get(cv.CDR_CORE_UUID_ATTR),
        variables=variables,
        flagged=flagged,
    )


def parse_post(post: CdrPost, *, max_bytes: int = DEFAULT_MAX_XML_BYTES) -> CdrRecord:
    """Parse a decoded post/spool file, checking the document against its URL/file name."""
    return parse_cdr(
        post.xml, a_leg_hint=post.a_leg_hint, uuid_hint=post.uuid_hint, max_bytes=max_bytes
    )
