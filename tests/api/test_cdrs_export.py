"""GET /v1/cdrs/export.csv: filtered, formula-safe, streamed with bounded memory."""

from __future__ import annotations

import csv
import io
import tracemalloc
from datetime import UTC, datetime, timedelta

from reporting_helpers import add_cdr, bearer, execute

from sidecar.api.cdrs import export_stream
from sidecar.repo.cdrs import EXPORT_COLUMNS, CdrFilter

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ROWS = 100_000


def test_export_filters_and_escapes_formulas(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="50")
    add_cdr(seed.url, account="100001", start=T, billsec=61, cost="1.2200",
            caller="=HYPERLINK(\"http://x\")", destination="5112345")  # fmt: skip
    add_cdr(seed.url, account="100001", start=T + timedelta(days=3), billsec=5, cost="0.1000")
    add_cdr(seed.url, account="100001", start=T, billsec=0, caller="+15551234")
    resp = client.get(
        "/v1/cdrs/export.csv?answered=true&to=2026-03-02", headers=bearer(seed.token("viewer"))
    )
    assert resp.status_code == 200 and resp.is_streamed
    assert resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert len(rows) == 1
    (row,) = rows
    assert row["caller"] == '\'=HYPERLINK("http://x")'
    assert (row["account"], row["cost"], row["billsec"], row["destination"]) == (
        "100001", "1.2200", "61", "5112345",
    )  # fmt: skip
    assert row["start_at"] == "2026-03-01T12:00:00.000000Z"  # RFC 3339, microseconds
    everything = client.get("/v1/cdrs/export.csv", headers=bearer(seed.token("viewer")))
    lines = list(csv.reader(io.StringIO(everything.get_data(as_text=True))))
    assert tuple(lines[0]) == EXPORT_COLUMNS
    assert "'+15551234" in [r[5] for r in lines[1:]]
    bad = client.get("/v1/cdrs/export.csv?from=never", headers=bearer(seed.token("viewer")))
    assert bad.status_code == 400


def _fill(url: str, n: int) -> None:
    execute(
        url,
        "INSERT INTO cdrs (call_uuid, leg, caller, callee, destination, account_id, start_at,"
        " answer_at, end_at, billusec, billsec, hangup_cause, rate_prefix, rate_per_minute,"
        " cost, billing_status)"
        " SELECT 'bulk-' || g, 'a', '100001', '5112345' || g, '5112345' || g,"
        " (SELECT id FROM accounts WHERE number = '100001'),"
        " %s + g * interval '1 second', %s + g * interval '1 second',"
        " %s + g * interval '1 second' + interval '1 minute', 60000000, 60,"
        " 'NORMAL_CLEARING', '51', 0.6, 0.6, 'charged' FROM generate_series(1, %s) g",
        T, T, T, n,
    )  # fmt: skip


def _measure(chunks) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    """(bytes, lines, peak traced bytes) of consuming ``chunks`` one at a time."""
    total = lines = 0
    tracemalloc.start()
    try:
        for chunk in chunks:
            data = chunk if isinstance(chunk, bytes) else chunk.encode()
            total += len(data)
            lines += data.count(b"\n")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return total, lines, peak


def test_100k_cdrs_stream_without_loading_them_all(seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="50")
    _fill(seed.url, ROWS)
    total, lines, peak = _measure(export_stream(seed.url, CdrFilter()))
    assert lines == ROWS + 1
    # the rows held at once as Python objects would take more than the output itself;
    # one cursor batch (1,000 rows, 1% of them) must keep the peak far below it
    assert total > 10_000_000
    assert peak < total / 5, (peak, total)


def test_100k_cdrs_through_the_api_are_streamed(client, seed) -> None:  # type: ignore[no-untyped-def]
    seed.account("100001", balance="50")
    _fill(seed.url, ROWS)
    resp = client.get("/v1/cdrs/export.csv?account=100001", headers=bearer(seed.token("viewer")),
                      buffered=False)  # fmt: skip
    assert resp.status_code == 200 and resp.is_streamed
    total, lines, peak = _measure(resp.response)
    resp.close()
    assert lines == ROWS + 1
    assert peak < total / 5, (peak, total)
