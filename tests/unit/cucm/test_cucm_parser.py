"""The CUCM flat-file parser on the real fixtures and on files rebuilt from their rows."""

from __future__ import annotations

import socket
import struct
from datetime import UTC, datetime

import pytest
from unit.cucm.cucm_rows import (
    DAMHAU_CDR,
    DAMHAU_CMR,
    SIETE_CDR,
    SIETE_CMR,
    answered_row,
    damhau,
    read_table,
    siete,
)

from sidecar.cucm.errors import CucmFileError
from sidecar.cucm.flatfile import parse_flat_file
from sidecar.cucm.records import cdr_records, cmr_records


def test_both_cdr_layouts_parse_every_row_and_column() -> None:
    for path, columns in ((SIETE_CDR, 133), (DAMHAU_CDR, 118)):
        table = read_table(path)
        parsed = parse_flat_file(path.read_bytes(), "cdr")
        assert len(parsed.columns) == columns == len(table.header)
        records = cdr_records(parsed)
        assert [r.pkid for r in records] == [table.value(r, "pkid") for r in table.rows]
        for record, row in zip(records, table.rows, strict=True):
            assert record.duration == int(table.value(row, "duration"))
            assert record.final_called == table.value(row, "finalCalledPartyNumber")
            assert set(record.raw) == set(table.header)


def test_cmr_layouts_parse_and_keep_the_global_call_id() -> None:
    for path in (SIETE_CMR, DAMHAU_CMR):
        table = read_table(path)
        records = cmr_records(parse_flat_file(path.read_bytes(), "cmr"))
        assert len(records) == len(table.rows)
        for record, row in zip(records, table.rows, strict=True):
            assert record.call_id == int(table.value(row, "globalCallID_callId"))
            assert record.raw["varVQMetrics"] == table.value(row, "varVQMetrics")
            # unused INTEGER columns are empty in the 48-column layout: null, not 0
            for name, type_ in zip(table.header, table.types, strict=True):
                if type_ == "INTEGER" and table.value(row, name) == "":
                    assert record.raw[name] is None


def test_answered_and_unanswered_rows_of_the_real_file() -> None:
    table = siete()
    records = {r.pkid: r for r in cdr_records(parse_flat_file(SIETE_CDR.read_bytes(), "cdr"))}
    for row in table.rows:
        record = records[table.value(row, "pkid")]
        connect = int(table.value(row, "dateTimeConnect"))
        assert record.answered is (connect != 0)
        if connect:
            assert record.connect == datetime.fromtimestamp(connect, tz=UTC)
            assert record.disconnect is not None
            assert (record.disconnect - record.connect).total_seconds() == record.duration
        else:
            assert record.connect is None


def test_huge_cause_codes_and_little_endian_ipv4() -> None:
    table = siete()
    records = cdr_records(parse_flat_file(SIETE_CDR.read_bytes(), "cdr"))
    for record, row in zip(records, table.rows, strict=True):
        cause = int(table.value(row, "destCause_value"))
        assert record.dest_cause == cause
        packed = int(table.value(row, "origIpAddr"))
        expected = ".".join(str(b) for b in struct.pack("<I", packed))
        assert record.orig_ip == expected == table.value(row, "origIpv4v6Addr")
    assert max(r.dest_cause or 0 for r in records) > 127  # far above the Q.850 range
    beyond = [
        table.changed(r, destCause_value=2**32 - 7, origIpAddr=2**32 - 246) for r in table.rows
    ]
    big = cdr_records(parse_flat_file(table.to_bytes(beyond), "cdr"))
    assert {r.dest_cause for r in big} == {2**32 - 7}
    assert {r.orig_ip for r in big} == {socket.inet_ntoa(struct.pack("<I", 2**32 - 246))}


def test_columns_are_mapped_by_name_whatever_their_case_and_order() -> None:
    table = siete()
    order = list(reversed(range(len(table.header))))
    shuffled = type(table)(
        [table.header[i].upper() if i % 2 else table.header[i].lower() for i in order],
        [table.types[i] for i in order],
        [[row[i] for i in order] for row in table.rows],
    )
    original = cdr_records(parse_flat_file(SIETE_CDR.read_bytes(), "cdr"))
    remapped = cdr_records(parse_flat_file(shuffled.to_bytes(), "cdr"))
    for a, b in zip(original, remapped, strict=True):
        assert (a.pkid, a.connect, a.duration, a.calling, a.dest_cause, a.orig_ip) == (
            b.pkid,
            b.connect,
            b.duration,
            b.calling,
            b.dest_cause,
            b.orig_ip,
        )


def test_quoted_and_unquoted_files_give_the_same_values() -> None:
    table = siete()
    quoted = cdr_records(parse_flat_file(table.to_bytes(quoted=True), "cdr"))
    bare = cdr_records(parse_flat_file(table.to_bytes(quoted=False), "cdr"))
    assert [r.raw for r in quoted] == [r.raw for r in bare]
    crlf = SIETE_CDR.read_bytes().replace(b"\n", b"\r\n") + b"\r\n"
    assert [r.raw for r in cdr_records(parse_flat_file(crlf, "cdr"))] == [r.raw for r in quoted]


def _line_of_error(data: bytes, kind: str = "cdr") -> CucmFileError:
    with pytest.raises(CucmFileError) as caught:
        cdr_records(parse_flat_file(data, kind))
    return caught.value


def test_wrong_column_count_names_the_line() -> None:
    table = damhau()
    rows = [list(r) for r in table.rows]
    rows[1] = rows[1][:-1]
    error = _line_of_error(table.to_bytes(rows, quoted=False))
    assert error.line == 4
    assert f"{len(table.header) - 1} values for {len(table.header)} columns" in str(error)


def test_bad_number_names_the_line_and_the_column() -> None:
    table = siete()
    rows = [table.changed(r) for r in table.rows]
    rows[2] = table.changed(rows[2], duration="1l")
    error = _line_of_error(table.to_bytes(rows))
    assert error.line == 5
    assert "duration" in str(error) and "'1l'" in str(error)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pkid": "not-a-uuid"}, "pkid (UNIQUEIDENTIFIER)"),
        ({"pkid": ""}, "pkid is empty"),
        ({"globalCallID_callId": "99999999999999999999"}, "bigint"),
        ({"dateTimeConnect": "-5"}, "dateTimeConnect"),
        ({"duration": "-1"}, "negative"),
    ],
)
def test_bad_values_are_refused(change: dict[str, str], message: str) -> None:
    table = siete()
    rows = [table.changed(r) for r in table.rows]
    rows[0] = table.changed(rows[0], **change)
    error = _line_of_error(table.to_bytes(rows))
    assert error.line == 3
    assert message in str(error)


def test_structural_problems_are_refused() -> None:
    data = SIETE_CDR.read_bytes()
    header, types, *rest = data.split(b"\n")
    cases = {
        b"": "empty",
        header: "no field types",
        header + b"\n" + types[: types.rindex(b",")] + b"\n" + b"\n".join(rest): "field types",
        data.replace(b'"pkid"', b'"pkidx"', 1): "missing pkid",
        data.replace(b'"duration"', b'"cdrRecordType"', 1): "appears twice",
        data + b"\n\n" + rest[0]: "blank line",
        data.replace(b"5033466594", b"503\x006594", 1): "NUL",
        data.replace(b"rubbleb", b"rubbl\xe9b", 1): "not UTF-8",
        data.replace(b'"rubbleb"', b'"rub"bleb"', 1): "CSV",
    }
    for bad, message in cases.items():
        with pytest.raises(CucmFileError, match=message):
            cdr_records(parse_flat_file(bad, "cdr"))
    twice = siete()
    rows = [twice.changed(r) for r in twice.rows]
    rows[2] = twice.changed(rows[2], pkid=twice.value(rows[0], "pkid"))
    with pytest.raises(CucmFileError, match="appears twice in the file"):
        cdr_records(parse_flat_file(twice.to_bytes(rows), "cdr"))


def test_a_cmr_file_is_not_taken_as_cdr() -> None:
    with pytest.raises(CucmFileError, match="not a CDR file"):
        parse_flat_file(SIETE_CMR.read_bytes(), "cdr")


def test_trailing_blank_lines_and_bom_are_accepted() -> None:
    data = b"\xef\xbb\xbf" + SIETE_CDR.read_bytes() + b"\n\n"
    assert len(cdr_records(parse_flat_file(data, "cdr"))) == len(siete().rows)


def test_the_answered_fixture_row_helper_is_the_talk_record() -> None:
    table = siete()
    row = answered_row(table)
    assert int(table.value(row, "duration")) > 0
