"""Defensive XML parsing for documents that arrive over HTTP.

No DTDs, no entities, no network, no huge trees and only UTF-8: FreeSWITCH never emits
anything else, so anything else is treated as hostile or malformed.
"""

import re

from lxml import etree

_FORBIDDEN_MARKUP = (b"<!doctype", b"<!entity", b"<!element", b"<!attlist", b"<!notation")
_XML_DECL = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*<\?xml\b([^>]{0,200})\?>")
_ENCODING = re.compile(rb"""\bencoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_UTF8_NAMES = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


class XmlRejected(ValueError):
    """The document was refused before or while parsing."""


class HostileXmlError(XmlRejected):
    """The document is oversized or uses DTD/entity features an attacker could abuse."""


class MalformedXmlError(XmlRejected):
    """The document is not well-formed UTF-8 XML."""


def _make_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
        remove_comments=True,
        collect_ids=False,
        recover=False,
    )


def _check_encoding(data: bytes) -> None:
    if data.startswith(_UTF16_32_BOMS) or data[:4] in (b"<\x00?\x00", b"\x00<\x00?"):
        raise MalformedXmlError("only UTF-8 XML is accepted (UTF-16/32 byte order detected)")
    declared = "utf-8"
    decl = _XML_DECL.match(data)
    if decl is not None:
        enc = _ENCODING.search(decl.group(1))
        if enc is not None:
            declared = enc.group(1).decode("ascii").lower()
    if declared not in _UTF8_NAMES:
        raise MalformedXmlError(f"only UTF-8 XML is accepted, document declares {declared!r}")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedXmlError(f"document is not valid UTF-8 at byte {exc.start}") from None


def parse_xml(data: bytes, max_bytes: int) -> etree._Element:
    """Parse ``data`` or raise a subclass of :class:`XmlRejected` explaining why not."""
    if not isinstance(data, bytes | bytearray):
        raise MalformedXmlError(f"expected bytes, got {type(data).__name__}")
    if max_bytes <= 0:
        raise ValueError("max_bytes must be positive")
    data = bytes(data)
    if len(data) > max_bytes:
        raise HostileXmlError(f"document is {len(data)} bytes, limit is {max_bytes}")
    if not data.strip():
        raise MalformedXmlError("document is empty")
    lowered = data.lower()
    for marker in _FORBIDDEN_MARKUP:
        if marker in lowered:
            raise HostileXmlError(f"document contains a DTD declaration ({marker.decode()!r})")
    _check_encoding(data)
    try:
        root = etree.fromstring(data, parser=_make_parser())
    except etree.XMLSyntaxError as exc:
        raise MalformedXmlError(f"document is not well-formed XML: {exc}") from None
    if root is None:
        raise MalformedXmlError("document has no root element")
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise HostileXmlError("document carries a DTD")
    for _ in root.iter(etree.Entity):
        raise HostileXmlError("document contains entity references")
    return root
