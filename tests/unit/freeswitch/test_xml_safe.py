from pathlib import Path

import pytest
from fixtures_path import FS_FIXTURES

from sidecar.freeswitch import xml_safe
from sidecar.freeswitch.xml_safe import (
    HostileXmlError,
    MalformedXmlError,
    XmlRejected,
    parse_xml,
)

LIMIT = 2_000_000
CDR_XML: Path = FS_FIXTURES / "xml_cdr/urlencoded/answered_uuid_kill_loopback_b_inbound.xml"
CURL_XML: Path = FS_FIXTURES / "xml_curl/response_dialplan_answer_tone.xml"

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE cdr [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<cdr><variables><uuid>&xxe;</uuid></variables></cdr>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<cdr>&lol4;</cdr>"""

PLAIN_DOCTYPE = b'<?xml version="1.0"?>\n<!doctype cdr SYSTEM "http://127.0.0.1:1/cdr.dtd">\n<cdr/>'


@pytest.fixture(scope="module")
def cdr_bytes() -> bytes:
    return CDR_XML.read_bytes()


def test_parses_captured_documents(cdr_bytes: bytes) -> None:
    root = parse_xml(cdr_bytes, LIMIT)
    assert root.tag == "cdr"
    assert root.get("switchname") == "fs-test-host"
    assert root.findtext("variables/uuid") == "e7d4ae98-6c30-45b6-a52d-eb08b28d118d"
    curl = parse_xml(CURL_XML.read_bytes(), LIMIT)
    assert curl.tag == "document"
    assert curl.find("section").get("name") == "dialplan"


@pytest.mark.parametrize("doc", [XXE, BILLION_LAUGHS, PLAIN_DOCTYPE], ids=["xxe", "lol", "dtd"])
def test_dtd_and_entities_are_hostile(doc: bytes) -> None:
    with pytest.raises(HostileXmlError, match="DTD"):
        parse_xml(doc, LIMIT)


@pytest.mark.parametrize("doc", [XXE, BILLION_LAUGHS, PLAIN_DOCTYPE], ids=["xxe", "lol", "dtd"])
def test_post_parse_check_catches_dtd_without_byte_scan(
    doc: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Second line of defence: even if the byte scan missed it, docinfo exposes the DTD,
    # and the external entity is never resolved.
    monkeypatch.setattr(xml_safe, "_FORBIDDEN_MARKUP", ())
    with pytest.raises(XmlRejected) as info:
        parse_xml(doc, LIMIT)
    assert "root:" not in str(info.value)


def test_oversized_document_is_rejected_before_parsing(cdr_bytes: bytes) -> None:
    padded = cdr_bytes + b" " * 3_000_000  # trailing whitespace keeps it well-formed
    assert len(padded) > 3_000_000
    with pytest.raises(HostileXmlError, match="limit is 2000000"):
        parse_xml(padded, LIMIT)
    assert parse_xml(padded, 4_000_000).tag == "cdr"


@pytest.mark.parametrize("cut", [10, 500, -20, -2])
def test_truncated_document_is_malformed(cdr_bytes: bytes, cut: int) -> None:
    with pytest.raises(MalformedXmlError, match="well-formed"):
        parse_xml(cdr_bytes[:cut], LIMIT)


def test_empty_document_is_malformed() -> None:
    with pytest.raises(MalformedXmlError, match="empty"):
        parse_xml(b"  \n", LIMIT)


def test_non_utf8_bytes_are_rejected(cdr_bytes: bytes) -> None:
    # <callflow> values are plain text, so a Latin-1 byte lands verbatim in the document.
    latin1 = cdr_bytes.replace(b"<caller_id_name>Apolo Test<", b"<caller_id_name>Apolo T\xe9st<")
    assert latin1 != cdr_bytes
    with pytest.raises(MalformedXmlError, match="UTF-8"):
        parse_xml(latin1, LIMIT)
    declared = latin1.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="utf-8"?>')
    with pytest.raises(MalformedXmlError, match="UTF-8"):
        parse_xml(declared, LIMIT)


def test_other_declared_encodings_are_rejected(cdr_bytes: bytes) -> None:
    latin1 = cdr_bytes.replace(
        b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="ISO-8859-1"?>'
    )
    with pytest.raises(MalformedXmlError, match="iso-8859-1"):
        parse_xml(latin1, LIMIT)
    utf16 = cdr_bytes.decode().encode("utf-16")
    with pytest.raises(MalformedXmlError, match="UTF-16"):
        parse_xml(utf16, LIMIT)


def test_utf8_text_is_kept(cdr_bytes: bytes) -> None:
    doc = cdr_bytes.replace(b"<caller_id_name>Apolo Test<", "<caller_id_name>Apolo Tést<".encode())
    assert parse_xml(doc, LIMIT).findtext("callflow/caller_profile/caller_id_name") == "Apolo Tést"


def test_undeclared_entity_is_malformed(cdr_bytes: bytes) -> None:
    doc = cdr_bytes.replace(b"<caller_id_name>Apolo Test<", b"<caller_id_name>&xxe;<")
    with pytest.raises(MalformedXmlError):
        parse_xml(doc, LIMIT)


def test_rejections_are_value_errors() -> None:
    assert issubclass(HostileXmlError, XmlRejected)
    assert issubclass(MalformedXmlError, XmlRejected)
    assert issubclass(XmlRejected, ValueError)
