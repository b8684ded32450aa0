-- Store CDRs and settle their money, set-based: one statement for one CDR (HTTP intake)
-- or for thousands (err-log-dir replay), with the same rules either way.
--
-- The caller (sidecar.services.cdr_ingest) has already decided, from an unlocked read, who
-- pays, the rate and the cost of each CDR; this function applies those decisions under the
-- locks, taken in the order every writer takes them: the paying accounts (by id), then
-- their reservations. p_rows is a jsonb array of rows in the column names of ``cdrs`` (id
-- and received_at are the table's own); p_raw_xml[i] is the raw document of row i (text:
-- kilobytes not worth a trip through jsonb).
--
-- Returns one row per CDR it stored. A CDR whose (call_uuid, leg) was already stored, or
-- repeats an earlier row of the batch, is not stored again, moves nothing and is not
-- returned: the caller reads what the first arrival decided.
-- Money: a 'charged' CDR debits ``cost`` and writes its ledger row (one per CDR: the
-- ledger_one_charge_per_cdr index), balance_after running in row order per account. A
-- reservation's hold is released only when it is still open now (the sweeper may have
-- expired it, giving the hold back already); it is then closed as 'charged' or 'released'.
-- balance_before / balance_after / low_balance_threshold let the caller raise low-balance
-- alerts in the same transaction.
--
-- Written for the planner's blind spot: it takes a function's rows for 1 or 100, so no CTE
-- is joined to another (a nested loop over both would be quadratic in the batch); every
-- join goes from a CTE to a table through its primary key.
CREATE FUNCTION apolo_settle_cdrs(p_rows jsonb, p_raw_xml text[], p_actor text)
RETURNS TABLE (cdr_id bigint, call_uuid text, leg text, billing_status text, cost numeric,
               account text, balance_before numeric, balance_after numeric,
               low_balance_threshold numeric)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_accounts      bigint[];
    v_reservations  bigint[];
BEGIN
    SELECT array_agg(DISTINCT (e->>'account_id')::bigint),
           array_agg(DISTINCT (e->>'reservation_id')::bigint)
      INTO v_accounts, v_reservations
      FROM jsonb_array_elements(p_rows) e;
    PERFORM 1 FROM accounts a WHERE a.id = ANY (v_accounts) ORDER BY a.id FOR UPDATE;
    PERFORM 1 FROM reservations r WHERE r.id = ANY (v_reservations) ORDER BY r.id FOR UPDATE;

    RETURN QUERY
    WITH src AS (
        SELECT DISTINCT ON (c.call_uuid, c.leg) x.n, c.*
          FROM jsonb_array_elements(p_rows) WITH ORDINALITY AS x(e, n),
               LATERAL jsonb_populate_record(NULL::cdrs, x.e) AS c
         ORDER BY c.call_uuid, c.leg, x.n
    ), ins AS (
        INSERT INTO cdrs (source, call_uuid, leg, core_uuid, switchname, direction, caller,
                          callee, destination, account_id, reservation_id, start_at, answer_at,
                          end_at, billusec, billsec, fs_billsec, hangup_cause, hangup_cause_q850,
                          rate_id, rate_prefix, rate_per_minute, connection_fee, billed_seconds,
                          cost, billing_status, billing_note, linked_uuids, apolo_vars, raw_xml)
        SELECT coalesce(s.source, 'freeswitch'), s.call_uuid, s.leg, s.core_uuid, s.switchname,
               s.direction, s.caller, s.callee, s.destination, s.account_id, s.reservation_id,
               s.start_at, s.answer_at, s.end_at, coalesce(s.billusec, 0),
               coalesce(s.billsec, 0), s.fs_billsec, s.hangup_cause, s.hangup_cause_q850,
               s.rate_id, s.rate_prefix, s.rate_per_minute, s.connection_fee, s.billed_seconds,
               s.cost, s.billing_status, s.billing_note, coalesce(s.linked_uuids, '{}'),
               coalesce(s.apolo_vars, '{}'), x.raw_xml
          FROM src s  -- joined, not subscripted: p_raw_xml[i] detoasts the array each time
          LEFT JOIN unnest(p_raw_xml) WITH ORDINALITY AS x(raw_xml, n) ON x.n = s.n
         ORDER BY s.n  -- ids follow the row order: the ledger's running balance uses them
        ON CONFLICT (call_uuid, leg) DO NOTHING
        RETURNING id, call_uuid, leg, account_id, reservation_id, billing_status, cost
    ), moves AS (
        SELECT i.*, a.number, a.balance AS locked_balance, a.low_balance_threshold,
               CASE WHEN i.billing_status = 'charged' THEN i.cost ELSE 0 END AS debit,
               sum(CASE WHEN i.billing_status = 'charged' THEN i.cost ELSE 0 END)
                   OVER (PARTITION BY i.account_id ORDER BY i.id) AS debited,
               CASE WHEN row_number() OVER (PARTITION BY i.reservation_id ORDER BY i.id) = 1
                    THEN r.amount END AS held  -- NULL: nothing held for this row
          FROM ins i
          LEFT JOIN accounts a ON a.id = i.account_id
          LEFT JOIN reservations r ON r.id = i.reservation_id AND r.status = 'open'
                                  AND i.account_id IS NOT NULL
    ), ledger_rows AS (
        INSERT INTO ledger (account_id, kind, amount, balance_after, cdr_id, reservation_id,
                            actor, note)
        SELECT m.account_id, 'call_charge', -m.cost, m.locked_balance - m.debited, m.id,
               m.reservation_id, p_actor,
               CASE WHEN m.reservation_id IS NULL THEN 'call' ELSE 'call ' || m.call_uuid END
          FROM moves m WHERE m.billing_status = 'charged' AND m.account_id IS NOT NULL
         ORDER BY m.id
        RETURNING id
    ), account_moves AS (
        UPDATE accounts a
           SET balance = a.balance - t.debit, reserved = a.reserved - t.held,
               active_calls = greatest(a.active_calls - t.calls, 0),
               updated_at = CASE WHEN t.charges > 0 THEN now() ELSE a.updated_at END
          FROM (SELECT m.account_id, sum(m.debit) AS debit, coalesce(sum(m.held), 0) AS held,
                       count(m.held)::integer AS calls,
                       count(*) FILTER (WHERE m.billing_status = 'charged') AS charges
                  FROM moves m WHERE m.account_id IS NOT NULL GROUP BY m.account_id) t
         WHERE a.id = t.account_id
        RETURNING a.id
    ), closed AS (
        UPDATE reservations r
           SET status = CASE WHEN m.billing_status = 'charged' THEN 'charged' ELSE 'released' END,
               closed_at = now(), close_reason = format('CDR %s %s', m.id, m.billing_status)
          FROM moves m WHERE m.held IS NOT NULL AND r.id = m.reservation_id
        RETURNING r.id
    )
    SELECT m.id, m.call_uuid, m.leg, m.billing_status, m.cost, m.number,
           m.locked_balance - m.debited + m.debit, m.locked_balance - m.debited,
           m.low_balance_threshold
      FROM moves m;
END $$;

-- cdrs_start_id (start_at, id) serves every query cdrs_start served; one index less to write
-- per CDR
DROP INDEX IF EXISTS cdrs_start;

-- raw_xml is kilobytes per CDR: lz4 compresses it several times faster than pglz, where the
-- server was built with it (Debian's is); elsewhere the column keeps the default
DO $$
BEGIN
    ALTER TABLE cdrs ALTER COLUMN raw_xml SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 not available: raw_xml keeps the default compression';
END $$;
