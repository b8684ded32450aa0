-- Rating by time (issue #13): a plan's time zone and parent plan, timings, rates naming a
-- timing, minimum charge and free seconds; CDRs keep their spans and normalized caller.
--
-- Everything that prices a call on a plan is part of the plan's version: the index file a
-- worker maps holds the plan's rates, time zone, parent, timings and normalization rules,
-- so changing any of them bumps rate_plans.version (and announces it on apolo_rates).

ALTER TABLE rate_plans ADD COLUMN timezone text NOT NULL DEFAULT 'UTC'
    CHECK (timezone ~ '^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+){0,2}$' AND length(timezone) <= 64);
-- the plan whose rates price what none of this plan's rates does; a plan that is some
-- other plan's parent cannot be deleted
ALTER TABLE rate_plans ADD COLUMN parent_id bigint REFERENCES rate_plans(id);
CREATE INDEX rate_plans_parent ON rate_plans (parent_id) WHERE parent_id IS NOT NULL;

-- A parent chain never loops: checked under one lock, so two concurrent changes cannot
-- each close half of a cycle.
CREATE FUNCTION apolo_plan_parent_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_at    bigint := NEW.parent_id;
    v_steps integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('apolo_plan_parent'));
    WHILE v_at IS NOT NULL LOOP
        IF v_at = NEW.id THEN
            RAISE EXCEPTION 'rate plan % cannot have % as parent: that makes a cycle',
                NEW.name, (SELECT name FROM rate_plans WHERE id = NEW.parent_id)
                USING ERRCODE = 'check_violation', CONSTRAINT = 'rate_plans_parent_cycle';
        END IF;
        SELECT parent_id INTO v_at FROM rate_plans WHERE id = v_at;
        v_steps := v_steps + 1;
        IF v_steps > 1000 THEN  -- a cycle already there (never written through this check)
            RAISE EXCEPTION 'rate plan parents of % form a cycle', NEW.name
                USING ERRCODE = 'check_violation', CONSTRAINT = 'rate_plans_parent_cycle';
        END IF;
    END LOOP;
    RETURN NEW;
END $$;
CREATE TRIGGER rate_plans_parent_check BEFORE INSERT OR UPDATE OF parent_id ON rate_plans
    FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL) EXECUTE FUNCTION apolo_plan_parent_check();

-- the time zone and the parent are in the plan's index file: a change is a new version
CREATE FUNCTION apolo_plan_settings_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.timezone IS DISTINCT FROM OLD.timezone
       OR NEW.parent_id IS DISTINCT FROM OLD.parent_id THEN
        NEW.version := greatest(NEW.version, OLD.version + 1);
        PERFORM pg_notify('apolo_rates', '');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER rate_plans_settings_changed BEFORE UPDATE OF timezone, parent_id ON rate_plans
    FOR EACH ROW EXECUTE FUNCTION apolo_plan_settings_changed();

-- A timing: the instants whose local date (plan's time zone), ISO weekday and second of
-- the day fit it. Empty weekdays / dates: any; end_second <= start_second wraps past
-- midnight; 0-86400 is the whole day.
CREATE TABLE timings (
    id            bigserial PRIMARY KEY,
    plan_id       bigint NOT NULL REFERENCES rate_plans(id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (name ~ '^[A-Za-z0-9_.-]{1,64}$'),
    weekdays      smallint[] NOT NULL DEFAULT '{}' CHECK (weekdays <@ '{1,2,3,4,5,6,7}'),
    start_second  integer NOT NULL DEFAULT 0 CHECK (start_second >= 0 AND start_second < 86400),
    end_second    integer NOT NULL DEFAULT 86400 CHECK (end_second > 0 AND end_second <= 86400),
    dates         date[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (start_second <> end_second),
    UNIQUE (plan_id, name),
    UNIQUE (id, plan_id)  -- the target of rates' (timing_id, plan_id)
);
CREATE TRIGGER timings_changed_ins AFTER INSERT ON timings REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_rates_changed();
CREATE TRIGGER timings_changed_upd AFTER UPDATE ON timings
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_rates_changed();
CREATE TRIGGER timings_changed_del AFTER DELETE ON timings REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_rates_changed();

-- a rate names a timing of its own plan (NULL: at any time); a timing in use cannot be
-- deleted
ALTER TABLE rates ADD COLUMN timing_id bigint;
ALTER TABLE rates ADD CONSTRAINT rates_timing_of_plan
    FOREIGN KEY (timing_id, plan_id) REFERENCES timings (id, plan_id);
CREATE INDEX rates_timing ON rates (timing_id) WHERE timing_id IS NOT NULL;
-- an answered, charged call never costs less than minimum_charge; a call of at most
-- free_seconds costs nothing (a longer one is billed from second 0)
ALTER TABLE rates ADD COLUMN minimum_charge numeric(18,6) NOT NULL DEFAULT 0
    CHECK (minimum_charge >= 0);
ALTER TABLE rates ADD COLUMN free_seconds integer NOT NULL DEFAULT 0 CHECK (free_seconds >= 0);

-- destination (already there) is the callee as rated; caller_normalized the caller as the
-- normalization rules made it. spans: the call priced in spans, a JSON array of
-- {"rate_id", "start", "seconds", "rate_per_minute", "amount"} (money as strings);
-- NULL when nothing was priced, [] when within the free seconds
ALTER TABLE cdrs ADD COLUMN caller_normalized text;
ALTER TABLE cdrs ADD COLUMN spans jsonb;

-- every plan's index file is rebuilt in the new format
UPDATE rate_plans SET version = version + 1;

-- apolo_settle_cdrs() of 007, storing the two new columns with the CDR in the same
-- statement (nothing else changes)
CREATE OR REPLACE FUNCTION apolo_settle_cdrs(p_rows jsonb, p_raw_xml text[], p_actor text)
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
                          cost, billing_status, billing_note, linked_uuids, apolo_vars, raw_xml,
                          caller_normalized, spans)
        SELECT coalesce(s.source, 'freeswitch'), s.call_uuid, s.leg, s.core_uuid, s.switchname,
               s.direction, s.caller, s.callee, s.destination, s.account_id, s.reservation_id,
               s.start_at, s.answer_at, s.end_at, coalesce(s.billusec, 0),
               coalesce(s.billsec, 0), s.fs_billsec, s.hangup_cause, s.hangup_cause_q850,
               s.rate_id, s.rate_prefix, s.rate_per_minute, s.connection_fee, s.billed_seconds,
               s.cost, s.billing_status, s.billing_note, coalesce(s.linked_uuids, '{}'),
               coalesce(s.apolo_vars, '{}'), x.raw_xml, s.caller_normalized, s.spans
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
