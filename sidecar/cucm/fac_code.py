"""Forced Authorization Codes are credentials: kept only as HMAC-SHA256 plus last digits."""

from __future__ import annotations

import hashlib
import hmac
import re

_CODE = re.compile(r"[0-9]{1,16}\Z")
MIN_KEY_BYTES = 16
SHOWN_DIGITS = 2


class FacKeyMissing(RuntimeError):
    """APOLO_FAC_KEY is unset or too short: FAC features refuse to work."""


def check_key(key: str | None) -> bytes:
    if not key:
        raise FacKeyMissing("APOLO_FAC_KEY is not set: FAC codes cannot be stored or matched")
    raw = key.encode("utf-8")
    if len(raw) < MIN_KEY_BYTES:
        raise FacKeyMissing(f"APOLO_FAC_KEY must be at least {MIN_KEY_BYTES} bytes")
    return raw


def valid_code(code: str) -> bool:
    """CUCM FACs are 1 to 16 digits."""
    return bool(_CODE.match(code))


def code_hmac(key: bytes, code: str) -> str:
    return hmac.new(key, code.encode("utf-8"), hashlib.sha256).hexdigest()


def last_digits(code: str) -> str:
    """The tail shown to operators; short codes show less so most of the code stays hidden."""
    shown = min(SHOWN_DIGITS, max(len(code) - 2, 0))
    return code[-shown:] if shown else ""


def masked(code: str) -> str:
    return "*" * (len(code) - len(last_digits(code))) + last_digits(code)
