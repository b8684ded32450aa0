"""Typed CDR and CMR records built from parsed flat-file rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sidecar.cucm.convert import epoch_to_utc, ipv4_from_le
from sidecar.cucm.errors import CucmFileError
from sidecar.cucm.flatfile import FlatFile, FlatRow

END_CALL_RECORD = 1
CMR_RECORD = 2


@dataclass(frozen=True)
class CdrRecord:
    line: int
    pkid: str
    record_type: int
    callmanager_id: int
    call_id: int
    orig_leg: int
    dest_leg: int
    cluster: str
    origination: datetime | None
    connect: datetime | None  # None: never connected
    disconnect: datetime | None
    duration: int
    calling: str
    original_called: str
    final_called: str
    outpulsed_called: str
    orig_device: str
    dest_device: str
    auth_code: str  # authorizationCodeValue (a credential: never stored in clear)
    auth_description: str
    auth_level: int | None
    orig_cause: int | None
    dest_cause: int | None
    orig_ip: str | None
    dest_ip: str | None
    raw: dict[str, Any]  # every column, typed

    @property
    def answered(self) -> bool:
        return self.connect is not None and self.duration > 0


@dataclass(frozen=True)
class CmrRecord:
    line: int
    pkid: str
    callmanager_id: int
    call_id: int
    cluster: str
    raw: dict[str, Any]


def _required_int(row: FlatRow, name: str) -> int:
    value = row.integer(name)
    if value is None:
        raise CucmFileError(f"{name} is empty", row.line)
    return value


def _pkid(row: FlatRow, seen: set[str]) -> str:
    pkid = row.text("pkid")
    if not pkid:
        raise CucmFileError("pkid is empty", row.line)
    if pkid in seen:
        raise CucmFileError(f"pkid {pkid} appears twice in the file", row.line)
    seen.add(pkid)
    return pkid


def _time(row: FlatRow, name: str) -> datetime | None:
    try:
        return epoch_to_utc(row.integer(name))
    except ValueError as exc:
        raise CucmFileError(f"{name}: {exc}", row.line) from None


def _ip(row: FlatRow, name: str) -> str | None:
    try:
        return ipv4_from_le(row.integer(name))
    except ValueError as exc:
        raise CucmFileError(f"{name}: {exc}", row.line) from None


def cdr_records(parsed: FlatFile) -> list[CdrRecord]:
    seen: set[str] = set()
    records = []
    for row in parsed.rows:
        duration = _required_int(row, "duration")
        if duration < 0:
            raise CucmFileError(f"duration {duration} is negative", row.line)
        records.append(
            CdrRecord(
                line=row.line,
                pkid=_pkid(row, seen),
                record_type=_required_int(row, "cdrRecordType"),
                callmanager_id=_required_int(row, "globalCallID_callManagerId"),
                call_id=_required_int(row, "globalCallID_callId"),
                orig_leg=row.integer("origLegCallIdentifier") or 0,
                dest_leg=row.integer("destLegIdentifier") or 0,
                cluster=row.text("globalCallId_ClusterID"),
                origination=_time(row, "dateTimeOrigination"),
                connect=_time(row, "dateTimeConnect"),
                disconnect=_time(row, "dateTimeDisconnect"),
                duration=duration,
                calling=row.text("callingPartyNumber").strip(),
                original_called=row.text("originalCalledPartyNumber").strip(),
                final_called=row.text("finalCalledPartyNumber").strip(),
                outpulsed_called=row.text("outpulsedCalledPartyNumber").strip(),
                orig_device=row.text("origDeviceName").strip(),
                dest_device=row.text("destDeviceName").strip(),
                auth_code=row.text("authorizationCodeValue").strip(),
                auth_description=row.text("authCodeDescription").strip(),
                auth_level=row.integer("authorizationLevel"),
                orig_cause=row.integer("origCause_value"),
                dest_cause=row.integer("destCause_value"),
                orig_ip=_ip(row, "origIpAddr"),
                dest_ip=_ip(row, "destIpAddr"),
                raw=row.as_json(),
            )
        )
    return records


def cmr_records(parsed: FlatFile) -> list[CmrRecord]:
    seen: set[str] = set()
    return [
        CmrRecord(
            line=row.line,
            pkid=_pkid(row, seen),
            callmanager_id=_required_int(row, "globalCallID_callManagerId"),
            call_id=_required_int(row, "globalCallID_callId"),
            cluster=row.text("globalCallId_ClusterID"),
            raw=row.as_json(),
        )
        for row in parsed.rows
    ]
