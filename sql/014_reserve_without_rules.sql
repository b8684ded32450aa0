-- Authorization without a call of apolo_destination_rule() when there is no rule to apply.
--
-- apolo_reserve() of 009_fraud_controls.sql, unchanged but for one thing: it asks whether the
-- account or its plan has any destination rule (one index probe) before calling
-- apolo_destination_rule(), which answers no row in that case anyway. The call of a
-- set-returning PL/pgSQL function (its own executor, a tuplestore for its result) was about a
-- tenth of PostgreSQL's CPU per authorization (issue #17); an account with rules is decided
-- exactly as before, by the same function, in the same place of the order of checks.

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

    -- the usual case, no destination rule for the account or its plan, is one index probe
    -- here rather than a call of apolo_destination_rule() (which answers no row then)
    IF EXISTS (SELECT 1 FROM destination_rules r
                WHERE r.account_id = a.id OR r.plan_id = a.plan_id) THEN
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
