"""The parser refuses mutated real files only with its own ValueError subclass."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit.cucm.cucm_rows import DAMHAU_CDR, DAMHAU_CMR, SIETE_CDR, SIETE_CMR

from sidecar.cucm.errors import CucmFileError
from sidecar.cucm.flatfile import parse_flat_file
from sidecar.cucm.records import cdr_records, cmr_records

FILES = [
    (SIETE_CDR.read_bytes(), "cdr"),
    (DAMHAU_CDR.read_bytes(), "cdr"),
    (SIETE_CMR.read_bytes(), "cmr"),
    (DAMHAU_CMR.read_bytes(), "cmr"),
]
INTERESTING = [b'"', b",", b"\n", b"\r", b"\x00", b"\xff", b"-", b"9", b" ", b"a", b"\xc3"]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[bytes, str]:
    data, kind = draw(st.sampled_from(FILES))
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        if not buf:
            break
        at = draw(st.integers(0, len(buf) - 1))
        action = draw(st.sampled_from(["replace", "insert", "delete", "truncate"]))
        byte = draw(st.sampled_from(INTERESTING) | st.binary(min_size=1, max_size=3))
        if action == "replace":
            buf[at : at + len(byte)] = byte
        elif action == "insert":
            buf[at:at] = byte
        elif action == "delete":
            del buf[at : at + draw(st.integers(1, 40))]
        else:
            del buf[at:]
    return bytes(buf), kind


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_files_parse_or_raise_cucm_file_error(case: tuple[bytes, str]) -> None:
    data, kind = case
    try:
        parsed = parse_flat_file(data, kind)
        records = cdr_records(parsed) if kind == "cdr" else cmr_records(parsed)
    except CucmFileError as exc:
        assert str(exc)
        return
    assert len(records) == len(parsed.rows)
    assert len({r.pkid for r in records}) == len(records)
