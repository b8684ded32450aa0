-- Mid-call control (apolo control): per-call spending cap, reservation extension by blocks,
-- what the worker knows about a reservation's channel, and the worker's audit trail.

-- the most one call may cost; NULL = no cap. The tighter of the account's and the plan's applies.
ALTER TABLE accounts ADD COLUMN max_call_cost numeric(18,4)
    CHECK (max_call_cost IS NULL OR max_call_cost > 0);
ALTER TABLE rate_plans ADD COLUMN max_call_cost numeric(18,4)
    CHECK (max_call_cost IS NULL OR max_call_cost > 0);

-- the switch (host:port of its event socket) and answer time the control worker saw
ALTER TABLE reservations ADD COLUMN node text;
ALTER TABLE reservations ADD COLUMN answered_at timestamptz;
ALTER TABLE reservations ADD COLUMN extensions integer NOT NULL DEFAULT 0;

-- what the control worker did on its own: orphaned reservations it released, calls it killed
CREATE TABLE control_audit (
    id              bigserial PRIMARY KEY,
    action          text NOT NULL CHECK (action IN ('orphan_released', 'overrun_killed')),
    call_uuid       text NOT NULL,
    node            text,
    reservation_id  bigint REFERENCES reservations(id),
    account_id      bigint REFERENCES accounts(id),
    amount          numeric(18,4),
    reason          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX control_audit_call ON control_audit (call_uuid);

-- Grow an open reservation to p_want_total (the cost of the next block of talk time, capped)
-- if the account can pay at least up to p_min_total (the cost of one more increment).
-- Same rule and lock order as apolo_reserve(): the account row is locked first, then the
-- reservation, so parallel extensions and authorizations of one account never overspend.
-- Idempotent: a reservation already at or above p_want_total is reported as extended by 0.
CREATE FUNCTION apolo_extend(
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
    UPDATE reservations x SET amount = x.amount + v_extra, extensions = x.extensions + 1,
           expires_at = greatest(x.expires_at, now() + p_grace + make_interval(secs => p_seconds))
     WHERE x.id = r.id;
    UPDATE accounts SET reserved = reserved + v_extra, updated_at = now() WHERE id = a.id;
    RETURN QUERY SELECT 'extended'::text, r.id, r.amount + v_extra, v_extra, v_avail - v_extra;
END $$;
