-- Fraud controls, enforced in PostgreSQL so they hold across every sidecar:
--   destination restrictions (allow / deny prefix lists per rate plan and per account),
--   calls per minute per account, a daily spend limit per account (in its time zone),
--   spend-spike alerts (last hour against the trailing 7-day hourly average).
-- Each control, when it acts, writes an audit row and raises an alert: a fraud_alerts row for
-- the dashboard and a signed webhook through the outbox of 005_reporting.sql.
-- apolo_reserve() and apolo_extend() are redefined here with the checks inside, so
-- authorization stays one atomic statement, one round trip.

-- ------------------------------------------------------------------ configuration

CREATE FUNCTION apolo_is_time_zone(p_name text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    -- names only (Europe/Madrid, UTC): POSIX strings such as 'UTC+3' invert the sign
    IF p_name IS NULL OR p_name !~ '^[A-Za-z][A-Za-z0-9_+/-]*$' OR p_name ~ '[+-][0-9]' THEN
        RETURN false;
    END IF;
    PERFORM timestamptz '2000-01-01 00:00:00+00' AT TIME ZONE p_name;
    RETURN true;
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN false;
END $$;

ALTER TABLE accounts
    -- the account's own day: its daily spend limit restarts at local midnight
    ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC' CHECK (apolo_is_time_zone(time_zone)),
    ADD COLUMN max_calls_per_minute integer
        CHECK (max_calls_per_minute IS NULL OR max_calls_per_minute BETWEEN 1 AND 1000),
    ADD COLUMN daily_spend_limit numeric(18,4)
        CHECK (daily_spend_limit IS NULL OR daily_spend_limit > 0),
    -- NULL: the default of fraud_settings; 0: no spike alerts for this account
    ADD COLUMN spend_spike_factor numeric(8,2)
        CHECK (spend_spike_factor IS NULL OR spend_spike_factor = 0 OR spend_spike_factor > 1),
    -- when the calls of the last minute were authorized (at most max_calls_per_minute of
    -- them), kept by apolo_reserve() under the account's row lock: an exact sliding window
    ADD COLUMN recent_calls timestamptz[];

-- Settings shared by every account (one row).
CREATE TABLE fraud_settings (
    id                    boolean PRIMARY KEY DEFAULT true CHECK (id),
    -- an hour's spend of at least this many times the trailing hourly average is a spike
    -- (0: no spike alerts, unless an account sets its own factor)
    spike_factor          numeric(8,2) NOT NULL DEFAULT 5
                          CHECK (spike_factor = 0 OR spike_factor > 1),
    -- ... and of at least this much money (an account that spent nothing before would
    -- otherwise alert on its first cent)
    spike_min_spend       numeric(18,4) NOT NULL DEFAULT 10 CHECK (spike_min_spend >= 0),
    -- one alert per account and control in this window; later occurrences are counted on it
    alert_window_seconds  integer NOT NULL DEFAULT 300
                          CHECK (alert_window_seconds BETWEEN 0 AND 86400),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
INSERT INTO fraud_settings DEFAULT VALUES;

-- Allow and deny prefixes of a rate plan or of an account (exactly one of the two). The
-- longest prefix that starts the dialled number decides; on the same prefix the account's
-- rule beats its plan's; a number no rule matches is allowed, unless the account or its
-- plan has an allow rule that no deny rule covers (apolo_destination_rule below).
CREATE TABLE destination_rules (
    id          bigserial PRIMARY KEY,
    plan_id     bigint REFERENCES rate_plans(id) ON DELETE CASCADE,
    account_id  bigint REFERENCES accounts(id) ON DELETE CASCADE,
    verdict     text NOT NULL CHECK (verdict IN ('allow', 'deny')),
    prefix      text NOT NULL CHECK (prefix ~ '^[0-9]{1,32}$'),
    note        text NOT NULL DEFAULT '' CHECK (length(note) <= 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((plan_id IS NULL) <> (account_id IS NULL))
);
-- one verdict per prefix and owner
CREATE UNIQUE INDEX destination_rules_plan ON destination_rules (plan_id, prefix)
    WHERE plan_id IS NOT NULL;
CREATE UNIQUE INDEX destination_rules_account ON destination_rules (account_id, prefix)
    WHERE account_id IS NOT NULL;

-- Call charges per account and 15-minute UTC slot (every time zone's midnight falls on a
-- slot boundary), kept by a trigger on ledger: what the daily limit and the spike read.
CREATE TABLE account_spend (
    account_id  bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    slot        timestamptz NOT NULL,
    spent       numeric(18,4) NOT NULL,
    -- the account's trailing hourly average (and the hours it spans), computed at most once
    -- a minute while this slot is current, for the spike check of every charge meanwhile
    average     numeric(18,4),
    hours       integer,
    averaged_at timestamptz,
    PRIMARY KEY (account_id, slot)
);

CREATE FUNCTION apolo_slot(p_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$
    SELECT date_bin('15 minutes', p_at, timestamptz '2000-01-01 00:00:00+00')
$$;

-- the charges of the last 8 days, so limits and averages are right from the upgrade on
INSERT INTO account_spend (account_id, slot, spent)
SELECT account_id, apolo_slot(created_at), -sum(amount)
  FROM ledger
 WHERE kind = 'call_charge' AND created_at >= now() - interval '8 days'
 GROUP BY 1, 2;

-- ------------------------------------------------------------------ alerts

CREATE TABLE fraud_alerts (
    id           bigserial PRIMARY KEY,
    control      text NOT NULL CHECK (control IN ('destination_denied', 'calls_per_minute',
                     'daily_spend_limit', 'spend_spike', 'unknown_fac')),
    account_id   bigint REFERENCES accounts(id) ON DELETE CASCADE,
    -- what identifies the alert besides the account (unknown_fac: the code's HMAC or name)
    subject      text NOT NULL DEFAULT '',
    detail       jsonb NOT NULL,   -- the latest occurrence
    occurrences  integer NOT NULL DEFAULT 1,
    first_at     timestamptz NOT NULL DEFAULT now(),
    last_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fraud_alerts_key ON fraud_alerts (account_id, control, subject, id);

ALTER TABLE webhook_outbox
    ADD COLUMN fraud_alert_id bigint REFERENCES fraud_alerts(id) ON DELETE CASCADE;

CREATE FUNCTION apolo_rfc3339(p_at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- A new alert and its webhook (event fraud.<control>), queued in the caller's transaction.
CREATE FUNCTION apolo_fraud_alert_open(
    p_control text, p_account_id bigint, p_subject text, p_detail jsonb
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id      bigint;
    v_at      timestamptz;
    v_number  text;
    v_name    text;
BEGIN
    SELECT a.number, a.name INTO v_number, v_name FROM accounts a WHERE a.id = p_account_id;
    INSERT INTO fraud_alerts (control, account_id, subject, detail)
    VALUES (p_control, p_account_id, p_subject, p_detail)
    RETURNING id, first_at INTO v_id, v_at;
    INSERT INTO webhook_outbox (fraud_alert_id, event, payload)
    VALUES (v_id, 'fraud.' || p_control, jsonb_build_object(
        'event', 'fraud.' || p_control, 'alert_id', v_id, 'control', p_control,
        'account', v_number, 'name', v_name, 'at', apolo_rfc3339(v_at), 'detail', p_detail));
    PERFORM pg_notify('apolo_webhooks', '');
    RETURN v_id;
END $$;

-- One occurrence of a control acting (a call refused, an unknown FAC): an audit row, and
-- the alert: a new one, unless one of the same account, control and subject was opened
-- less than alert_window_seconds ago (the occurrence is then counted on it, no webhook).
-- Callers hold the account's row lock; without an account an advisory lock on the subject
-- serialises the decision, so two occurrences never both open an alert.
CREATE FUNCTION apolo_fraud_event(
    p_control text, p_account_id bigint, p_subject text, p_detail jsonb, p_actor text,
    p_target text DEFAULT NULL
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_window  integer;
    v_last    fraud_alerts%ROWTYPE;
    v_target  text := p_target;
BEGIN
    SELECT s.alert_window_seconds INTO v_window FROM fraud_settings s;
    IF p_account_id IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('apolo_fraud/' || p_control || '/' || p_subject));
        SELECT * INTO v_last FROM fraud_alerts f
         WHERE f.account_id IS NULL AND f.control = p_control AND f.subject = p_subject
         ORDER BY f.id DESC LIMIT 1;
    ELSE
        SELECT 'account:' || a.number INTO v_target FROM accounts a WHERE a.id = p_account_id;
        SELECT * INTO v_last FROM fraud_alerts f
         WHERE f.account_id = p_account_id AND f.control = p_control AND f.subject = p_subject
         ORDER BY f.id DESC LIMIT 1;
    END IF;
    INSERT INTO audit_log (actor, action, target, before, after)
    VALUES (p_actor, 'fraud.' || p_control, coalesce(v_target, 'fraud:' || p_subject), NULL,
            p_detail);
    IF v_last.id IS NOT NULL AND v_last.first_at > now() - make_interval(secs => v_window) THEN
        UPDATE fraud_alerts SET occurrences = occurrences + 1, last_at = now(), detail = p_detail
         WHERE id = v_last.id;
        RETURN v_last.id;
    END IF;
    RETURN apolo_fraud_alert_open(p_control, p_account_id, p_subject, p_detail);
END $$;

-- ------------------------------------------------------------------ spend and spikes

-- Spike check of one account, run whenever charges land in the current slot (the ledger
-- trigger below), under the account's row lock. The last hour is the current 15-minute slot
-- and the three before it; the trailing average is the spend of the 7 days before that hour
-- divided by its hours (fewer for an account younger than 7 days, at least one), computed
-- at most once a minute and kept on the slot. A spike alerts once: while it lasts (confirmed
-- again within an hour) its alert counts the confirmations, at most one a minute.
CREATE FUNCTION apolo_check_spend_spike(p_account_id bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_factor     numeric;
    v_min_spend  numeric;
    v_created    timestamptz;
    v_slot       timestamptz := apolo_slot(now());
    v_hour_start timestamptz := apolo_slot(now()) - interval '45 minutes';
    v_last_hour  numeric;
    v_cached     account_spend%ROWTYPE;
    v_average    numeric;
    v_hours      integer;
    v_open       fraud_alerts%ROWTYPE;
    v_detail     jsonb;
BEGIN
    -- one query for what most charges need: the factor, and whether the hour could be one
    SELECT coalesce(a.spend_spike_factor, f.spike_factor), f.spike_min_spend, a.created_at,
           (SELECT coalesce(sum(s.spent), 0) FROM account_spend s
             WHERE s.account_id = a.id AND s.slot >= v_hour_start)
      INTO v_factor, v_min_spend, v_created, v_last_hour
      FROM accounts a, fraud_settings f WHERE a.id = p_account_id;
    IF v_factor IS NULL OR v_factor = 0 OR v_last_hour <= 0 OR v_last_hour < v_min_spend THEN
        RETURN NULL;
    END IF;
    SELECT * INTO v_cached FROM account_spend s
     WHERE s.account_id = p_account_id AND s.slot = v_slot;
    IF v_cached.averaged_at IS NOT NULL AND v_cached.averaged_at > now() - interval '1 minute' THEN
        v_average := v_cached.average;
        v_hours := v_cached.hours;
    ELSE
        v_hours := least(168, greatest(1, ceil(extract(epoch FROM v_hour_start - v_created)
                                                / 3600)));
        SELECT round(coalesce(sum(s.spent), 0) / v_hours, 4) INTO v_average FROM account_spend s
         WHERE s.account_id = p_account_id AND s.slot >= v_hour_start - interval '7 days'
           AND s.slot < v_hour_start;
        UPDATE account_spend s SET average = v_average, hours = v_hours, averaged_at = now()
         WHERE s.account_id = p_account_id AND s.slot = v_slot;
    END IF;
    IF v_last_hour < v_factor * v_average THEN
        RETURN NULL;
    END IF;
    v_detail := jsonb_build_object(
        'last_hour', v_last_hour::text, 'hourly_average', v_average::text,
        'factor', v_factor::text, 'hours_averaged', v_hours,
        'min_spend', v_min_spend::text, 'since', apolo_rfc3339(v_hour_start));
    SELECT * INTO v_open FROM fraud_alerts f
     WHERE f.account_id = p_account_id AND f.control = 'spend_spike' AND f.subject = ''
     ORDER BY f.id DESC LIMIT 1;
    IF v_open.id IS NOT NULL AND v_open.last_at > now() - interval '1 hour' THEN
        IF v_open.last_at <= now() - interval '1 minute' THEN
            UPDATE fraud_alerts SET occurrences = occurrences + 1, last_at = now(),
                   detail = v_detail
             WHERE id = v_open.id;
        END IF;
        RETURN v_open.id;
    END IF;
    INSERT INTO audit_log (actor, action, target, before, after)
    SELECT 'apolo:spend', 'fraud.spend_spike', 'account:' || a.number, NULL, v_detail
      FROM accounts a WHERE a.id = p_account_id;
    RETURN apolo_fraud_alert_open('spend_spike', p_account_id, '', v_detail);
END $$;

-- Every statement that writes call charges adds them to their accounts' slots and checks
-- for a spike (whoever charges: FreeSWITCH CDRs, CUCM files, anything using the ledger).
-- Writers hold the accounts' row locks already (apolo_settle_cdrs, move_balance callers).
CREATE FUNCTION apolo_ledger_spend() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_row record;
BEGIN
    FOR v_row IN
        INSERT INTO account_spend AS s (account_id, slot, spent)
        SELECT n.account_id, apolo_slot(n.created_at), -sum(n.amount)
          FROM new_rows n WHERE n.kind = 'call_charge'
         GROUP BY 1, 2
         ORDER BY 1, 2
        ON CONFLICT (account_id, slot) DO UPDATE SET spent = s.spent + excluded.spent
        RETURNING s.account_id, s.slot, s.xmax = 0 AS fresh
    LOOP
        IF v_row.fresh THEN  -- a new slot: forget what no limit or average reads any more
            DELETE FROM account_spend x
             WHERE x.account_id = v_row.account_id AND x.slot < now() - interval '8 days';
        END IF;
        IF v_row.slot = apolo_slot(now()) THEN
            PERFORM apolo_check_spend_spike(v_row.account_id);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_spend AFTER INSERT ON ledger REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_ledger_spend();

-- Charged since the account's local midnight, plus everything it holds reserved.
CREATE FUNCTION apolo_spent_today(a accounts) RETURNS numeric
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(s.spent), 0) + a.reserved
      FROM account_spend s
     WHERE s.account_id = a.id
       AND s.slot >= date_trunc('day', now() AT TIME ZONE a.time_zone) AT TIME ZONE a.time_zone
$$;

-- ------------------------------------------------------------------ enforcement

-- The destination rule that decides a call of account ``p_account_id`` (on plan
-- ``p_plan_id``) to ``p_number`` (digits): (verdict, prefix, level), or verdict
-- 'not_allowed' when no rule matches but the account or its plan restricts calls to its
-- allow rules; no row when the call is allowed.
-- An allow rule is an exception when a deny rule (of the account or the plan) has the same
-- or a shorter prefix (allow 0051 under deny 00; an account's allow 1900 over its plan's
-- deny 1900), and a restriction otherwise (allow 51 alone: only 51... may be called).
CREATE FUNCTION apolo_destination_rule(p_account_id bigint, p_plan_id bigint, p_number text)
RETURNS TABLE (verdict text, prefix text, level text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_prefixes text[];
BEGIN
    IF NOT EXISTS (SELECT 1 FROM destination_rules r
                    WHERE r.account_id = p_account_id OR r.plan_id = p_plan_id) THEN
        RETURN;  -- the usual case, one index probe: no rules at all
    END IF;
    v_prefixes := ARRAY(SELECT left(p_number, n) FROM generate_series(1, length(p_number)) n);
    RETURN QUERY
    SELECT r.verdict, r.prefix, CASE WHEN r.account_id IS NULL THEN 'plan' ELSE 'account' END
      FROM destination_rules r
     WHERE (r.account_id = p_account_id OR r.plan_id = p_plan_id)
       AND r.prefix = ANY (v_prefixes)
     ORDER BY length(r.prefix) DESC, (r.account_id IS NOT NULL) DESC
     LIMIT 1;
    IF NOT FOUND AND EXISTS (
        SELECT 1 FROM destination_rules r
         WHERE (r.account_id = p_account_id OR r.plan_id = p_plan_id) AND r.verdict = 'allow'
           AND NOT EXISTS (
               SELECT 1 FROM destination_rules d
                WHERE (d.account_id = p_account_id OR d.plan_id = p_plan_id)
                  AND d.verdict = 'deny' AND starts_with(r.prefix, d.prefix))
    ) THEN
        RETURN QUERY SELECT 'not_allowed'::text, NULL::text, NULL::text;
    END IF;
END $$;

-- Atomic balance check + reservation for one call, as in 001_core.sql, with the fraud
-- controls inside (same row lock, same statement): after the status, the destination rules
-- (destination_denied), the concurrent calls (concurrent_limit), the calls of the last
-- minute (calls_per_minute), the balance (insufficient_balance), and the daily spend limit
-- (daily_spend_limit: the reservation is cut to what is left of the day's limit, refused
-- below the first increment). A refusal by a fraud control writes its audit row and alert.
CREATE OR REPLACE FUNCTION apolo_reserve(
    p_account_id bigint, p_call_uuid text, p_want numeric, p_min numeric,
    p_seconds integer, p_grace interval, p_rate_id bigint, p_caller text, p_callee text
) RETURNS TABLE (reason text, reservation_id bigint, amount numeric, available numeric)
LANGUAGE plpgsql AS $$
DECLARE
    a          accounts%ROWTYPE;
    existing   reservations%ROWTYPE;
    v_avail    numeric;
    v_amount   numeric;
    v_expired  numeric;
    v_count    integer;
    v_id       bigint;
    v_rule     record;
    v_recent   timestamptz[];
    v_spent    numeric;
    v_left     numeric;
BEGIN
    SELECT * INTO a FROM accounts WHERE id = p_account_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'account_not_found'::text, NULL::bigint, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;

    SELECT * INTO existing FROM reservations r WHERE r.call_uuid = p_call_uuid;
    IF FOUND THEN
        IF existing.account_id = p_account_id AND existing.status = 'open' THEN
            RETURN QUERY SELECT 'authorized'::text, existing.id, existing.amount, NULL::numeric;
        ELSE
            RETURN QUERY SELECT 'duplicate_call'::text, existing.id, NULL::numeric, NULL::numeric;
        END IF;
        RETURN;
    END IF;

    WITH x AS (
        UPDATE reservations r SET status = 'expired', closed_at = now(),
               close_reason = 'expired before its CDR arrived'
         WHERE r.account_id = a.id AND r.status = 'open' AND r.expires_at < now()
        RETURNING r.amount
    ) SELECT coalesce(sum(x.amount), 0), count(*) INTO v_expired, v_count FROM x;
    IF v_count > 0 THEN
        UPDATE accounts SET reserved = reserved - v_expired,
                            active_calls = greatest(active_calls - v_count, 0)
         WHERE id = a.id RETURNING * INTO a;
    END IF;

    IF a.status <> 'active' THEN
        RETURN QUERY SELECT 'account_suspended'::text, NULL::bigint, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;

    SELECT * INTO v_rule FROM apolo_destination_rule(a.id, a.plan_id, coalesce(p_callee, ''));
    IF FOUND AND v_rule.verdict <> 'allow' THEN
        PERFORM apolo_fraud_event('destination_denied', a.id, '', jsonb_build_object(
            'call_uuid', p_call_uuid, 'caller', p_caller, 'callee', p_callee,
            'rule', CASE WHEN v_rule.verdict = 'deny'
                         THEN format('deny %s (%s)', v_rule.prefix, v_rule.level)
                         ELSE 'no allow rule matches' END), 'apolo:authorize');
        RETURN QUERY SELECT 'destination_denied'::text, NULL::bigint, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;

    IF a.max_calls IS NOT NULL AND a.active_calls >= a.max_calls THEN
        RETURN QUERY SELECT 'concurrent_limit'::text, NULL::bigint, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;

    IF a.max_calls_per_minute IS NOT NULL THEN
        v_recent := ARRAY(SELECT t FROM unnest(a.recent_calls) t
                           WHERE t > now() - interval '1 minute' ORDER BY t);
        IF cardinality(v_recent) >= a.max_calls_per_minute THEN
            PERFORM apolo_fraud_event('calls_per_minute', a.id, '', jsonb_build_object(
                'call_uuid', p_call_uuid, 'caller', p_caller, 'callee', p_callee,
                'limit', a.max_calls_per_minute, 'calls_last_minute', cardinality(v_recent)),
                'apolo:authorize');
            RETURN QUERY SELECT 'calls_per_minute'::text, NULL::bigint, NULL::numeric,
                                NULL::numeric;
            RETURN;
        END IF;
    END IF;

    v_avail := a.balance - a.reserved
               + CASE WHEN a.type = 'postpaid' THEN a.credit_limit ELSE 0 END;
    IF v_avail < p_min OR v_avail < 0 THEN
        RETURN QUERY SELECT 'insufficient_balance'::text, NULL::bigint, NULL::numeric, v_avail;
        RETURN;
    END IF;
    v_amount := least(v_avail, p_want);

    IF a.daily_spend_limit IS NOT NULL THEN
        v_spent := apolo_spent_today(a);
        v_left := a.daily_spend_limit - v_spent;
        IF v_left < p_min OR v_left < 0 THEN
            PERFORM apolo_fraud_event('daily_spend_limit', a.id, '', jsonb_build_object(
                'call_uuid', p_call_uuid, 'caller', p_caller, 'callee', p_callee,
                'limit', a.daily_spend_limit::text, 'spent_today', v_spent::text,
                'needed', round(p_min, 4)::text, 'time_zone', a.time_zone), 'apolo:authorize');
            RETURN QUERY SELECT 'daily_spend_limit'::text, NULL::bigint, NULL::numeric, v_avail;
            RETURN;
        END IF;
        v_amount := least(v_amount, v_left);
    END IF;

    INSERT INTO reservations (account_id, call_uuid, amount, rate_id, caller, callee, expires_at)
    VALUES (a.id, p_call_uuid, v_amount, p_rate_id, p_caller, p_callee,
            now() + p_grace + make_interval(secs => CASE WHEN p_want > 0
                THEN ceil(p_seconds * v_amount / p_want) ELSE p_seconds END))
    RETURNING id INTO v_id;
    UPDATE accounts SET reserved = reserved + v_amount, active_calls = active_calls + 1,
           recent_calls = CASE WHEN a.max_calls_per_minute IS NULL THEN NULL
                               ELSE v_recent || now() END
     WHERE id = a.id;
    RETURN QUERY SELECT 'authorized'::text, v_id, v_amount, v_avail - v_amount;
END $$;

-- apolo_extend() of 003_control.sql with the daily spend limit: an extension grows the
-- reservation only up to what is left of the day's limit (charged today plus reserved), and
-- is refused with daily_spend_limit (audit row and alert) when the balance would have paid
-- for it but the limit does not.
CREATE OR REPLACE FUNCTION apolo_extend(
    p_call_uuid text, p_want_total numeric, p_min_total numeric, p_seconds integer,
    p_grace interval
) RETURNS TABLE (reason text, reservation_id bigint, amount numeric, added numeric,
                 available numeric)
LANGUAGE plpgsql AS $$
DECLARE
    v_account  bigint;
    a          accounts%ROWTYPE;
    r          reservations%ROWTYPE;
    v_avail    numeric;
    v_extra    numeric;
    v_spent    numeric;
    v_left     numeric;
BEGIN
    SELECT x.account_id INTO v_account FROM reservations x WHERE x.call_uuid = p_call_uuid;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'reservation_not_found'::text, NULL::bigint, NULL::numeric,
                            NULL::numeric, NULL::numeric;
        RETURN;
    END IF;
    SELECT * INTO a FROM accounts WHERE id = v_account FOR UPDATE;
    SELECT * INTO r FROM reservations x WHERE x.call_uuid = p_call_uuid FOR UPDATE;
    v_avail := a.balance - a.reserved
               + CASE WHEN a.type = 'postpaid' THEN a.credit_limit ELSE 0 END;
    IF r.status <> 'open' THEN
        RETURN QUERY SELECT 'reservation_closed'::text, r.id, r.amount, 0::numeric, v_avail;
        RETURN;
    END IF;
    IF r.amount >= p_want_total THEN
        RETURN QUERY SELECT 'extended'::text, r.id, r.amount, 0::numeric, v_avail;
        RETURN;
    END IF;
    IF a.status <> 'active' THEN
        RETURN QUERY SELECT 'account_suspended'::text, r.id, r.amount, 0::numeric, v_avail;
        RETURN;
    END IF;
    v_extra := least(v_avail, p_want_total - r.amount);
    IF v_extra <= 0 OR r.amount + v_extra < p_min_total THEN
        RETURN QUERY SELECT 'insufficient_balance'::text, r.id, r.amount, 0::numeric, v_avail;
        RETURN;
    END IF;
    IF a.daily_spend_limit IS NOT NULL THEN
        v_spent := apolo_spent_today(a);
        v_left := a.daily_spend_limit - v_spent;
        IF v_left < v_extra THEN
            v_extra := v_left;
            IF v_extra <= 0 OR r.amount + v_extra < p_min_total THEN
                PERFORM apolo_fraud_event('daily_spend_limit', a.id, '', jsonb_build_object(
                    'call_uuid', p_call_uuid, 'caller', r.caller, 'callee', r.callee,
                    'limit', a.daily_spend_limit::text, 'spent_today', v_spent::text,
                    'needed', round(p_min_total - r.amount, 4)::text, 'time_zone', a.time_zone,
                    'extension', true), 'apolo:control');
                RETURN QUERY SELECT 'daily_spend_limit'::text, r.id, r.amount, 0::numeric,
                                    v_avail;
                RETURN;
            END IF;
        END IF;
    END IF;
    UPDATE reservations x SET amount = x.amount + v_extra, extensions = x.extensions + 1,
           expires_at = greatest(x.expires_at, now() + p_grace + make_interval(secs => p_seconds))
     WHERE x.id = r.id;
    UPDATE accounts SET reserved = reserved + v_extra, updated_at = now() WHERE id = a.id;
    RETURN QUERY SELECT 'extended'::text, r.id, r.amount + v_extra, v_extra, v_avail - v_extra;
END $$;
