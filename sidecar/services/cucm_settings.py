"""CUCM intake settings, read from the environment (sidecar/config.py is shared, so they
live here). Every variable has a documented default except the FAC key, which has none.

APOLO_CUCM_BILLABLE_DEVICES  regex searched in destDeviceName; a matching end-of-call
    record is billed, any other is stored as not billed. Default ``DEFAULT_BILLABLE_DEVICES``:
    the names CUCM itself gives the endpoints of its MGCP digital gateways, the PSTN side of
    a site: T1/E1 spans ``S<slot>/SU<subunit>/DS1-<port>@<gateway>`` (and the older
    ``S<slot>/DS1-<port>@``) and ISDN BRI ports ``BRI/S<slot>/SU<subunit>/<port>@<gateway>``.
    Nothing an administrator names is matched, because no name chosen by a person says
    "PSTN" reliably: Jabber clients (``CSF``, ``TCT``, ``BOT``, ``TAB`` + user id, so
    ``CSFGWALKER`` contains "gw"), phones (``SEP`` + MAC), voicemail trunks and ports
    (``Unity-VM-Trunk``), conference bridges, and analog ``AALN/`` ports, which are FXS
    lines to phones and faxes as often as FXO lines to the PSTN. A site whose PSTN is a SIP
    trunk, an H.323 gateway or an FXO port names those devices itself and sets the pattern
    to them (``apolo cucm devices`` lists the destination devices seen; README, Cisco CUCM).
APOLO_CUCM_MAX_FILE_BYTES  largest CDR/CMR file accepted by POST /cucm/cdr (default
    20000000; CUCM files are bigger than a FreeSWITCH CDR, so APOLO_MAX_DOCUMENT_BYTES does
    not apply to them). A bigger file is refused with 413 and moves to failed/.
APOLO_FAC_KEY  HMAC-SHA256 key of Forced Authorization Codes, at least 16 bytes. No
    default: creating FACs, and taking a CDR file that carries FAC values, are refused
    with a clear error until it is set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from sidecar.cucm.fac_code import check_key

DEFAULT_MAX_FILE_BYTES = 20_000_000
DEFAULT_BILLABLE_DEVICES = r"^(?:S\d+/(?:SU\d+/)?DS1-\d+|BRI/S\d+/SU\d+/\d+)(?:[@/]|$)"


@dataclass(frozen=True)
class CucmSettings:
    billable_devices: re.Pattern[str]
    fac_key: str | None
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    def fac_key_bytes(self) -> bytes:
        """The FAC key, or FacKeyMissing."""
        return check_key(self.fac_key)


@lru_cache(maxsize=8)
def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"APOLO_CUCM_BILLABLE_DEVICES is not a valid regex: {exc}") from None


def load_cucm_settings(environ: Mapping[str, str] | None = None) -> CucmSettings:
    env = os.environ if environ is None else environ
    pattern = env.get("APOLO_CUCM_BILLABLE_DEVICES") or DEFAULT_BILLABLE_DEVICES
    raw_max = env.get("APOLO_CUCM_MAX_FILE_BYTES") or str(DEFAULT_MAX_FILE_BYTES)
    try:
        max_file_bytes = int(raw_max)
    except ValueError:
        raise ValueError("APOLO_CUCM_MAX_FILE_BYTES must be an integer") from None
    if max_file_bytes <= 0:
        raise ValueError("APOLO_CUCM_MAX_FILE_BYTES must be positive")
    return CucmSettings(_compile(pattern), env.get("APOLO_FAC_KEY") or None, max_file_bytes)
