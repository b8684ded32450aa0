-- Apolo core schema: rate plans, accounts, reservations, CDRs, ledger, API tokens, audit.
-- Money is NUMERIC everywhere. Balances and costs carry 4 decimals (cost is rounded
-- half-up to 4 decimals by the rating core); per-minute rates carry 6.

CREATE TABLE rate_plans (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name <> ''),
    currency    text NOT NULL DEFAULT 'USD',
    -- bumped by the statement triggers below whenever a rate of the plan changes;
    -- sidecar workers compare it with the version of the index they hold
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE rates (
    id                bigserial PRIMARY KEY,
    plan_id           bigint NOT NULL REFERENCES rate_plans(id) ON DELETE CASCADE,
    prefix            text NOT NULL CHECK (prefix ~ '^[0-9]{1,32}$'),
    name              text NOT NULL DEFAULT '',
    rate_per_minute   numeric(18,6) NOT NULL CHECK (rate_per_minute >= 0),
    connection_fee    numeric(18,6) NOT NULL DEFAULT 0 CHECK (connection_fee >= 0),
    initial_increment integer NOT NULL CHECK (initial_increment > 0),
    increment         integer NOT NULL CHECK (increment > 0),
    effective_start   timestamptz NOT NULL DEFAULT now(),
    effective_end     timestamptz CHECK (effective_end IS NULL OR effective_end > effective_start),
    priority          integer NOT NULL DEFAULT 0,
    enabled           boolean NOT NULL DEFAULT true
);
CREATE INDEX rates_plan_prefix ON rates (plan_id, prefix);

CREATE FUNCTION apolo_rates_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE rate_plans SET version = version + 1
         WHERE id IN (SELECT DISTINCT plan_id FROM old_rows);
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE rate_plans SET version = version + 1
         WHERE id IN (SELECT plan_id FROM new_rows UNION SELECT plan_id FROM old_rows);
    ELSE
        UPDATE rate_plans SET version = version + 1
         WHERE id IN (SELECT DISTINCT plan_id FROM new_rows);
    END IF;
    PERFORM pg_notify('apolo_rates', '');
    RETURN NULL;
END $$;

CREATE TRIGGER rates_changed_ins AFTER INSERT ON rates REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_rates_changed();
CREATE TRIGGER rates_changed_upd AFTER UPDATE ON rates
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_rates_changed();
CREATE TRIGGER rates_changed_del AFTER DELETE ON rates REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_rates_changed();

CREATE TABLE accounts (
    id                    bigserial PRIMARY KEY,
    number                text NOT NULL UNIQUE CHECK (number <> ''),
    name                  text NOT NULL DEFAULT '',
    plan_id               bigint NOT NULL REFERENCES rate_plans(id),
    type                  text NOT NULL CHECK (type IN ('prepaid', 'postpaid')),
    status                text NOT NULL DEFAULT 'active'
                          CHECK (status IN ('active', 'suspended', 'closed')),
    -- may go negative: a call priced after the fact (unreserved, late hang-up) is still charged
    balance               numeric(18,4) NOT NULL DEFAULT 0,
    credit_limit          numeric(18,4) NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    -- sum of the open reservations and their count, kept in step by apolo_reserve()
    -- and by CDR charging so that authorization needs no aggregate query
    reserved              numeric(18,4) NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    active_calls          integer NOT NULL DEFAULT 0 CHECK (active_calls >= 0),
    max_calls             integer CHECK (max_calls IS NULL OR max_calls > 0),
    low_balance_threshold numeric(18,4),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE account_anis (
    ani         text PRIMARY KEY CHECK (ani <> ''),
    account_id  bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE
);
CREATE INDEX account_anis_account ON account_anis (account_id);

CREATE TABLE reservations (
    id            bigserial PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES accounts(id),
    call_uuid     text NOT NULL UNIQUE,
    amount        numeric(18,4) NOT NULL CHECK (amount >= 0),
    rate_id       bigint,
    caller        text,
    callee        text,
    max_duration  integer,
    status        text NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'charged', 'released', 'expired')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    closed_at     timestamptz,
    close_reason  text
);
CREATE INDEX reservations_open ON reservations (account_id, expires_at) WHERE status = 'open';
CREATE INDEX reservations_open_expiry ON reservations (expires_at) WHERE status = 'open';

CREATE TABLE cdrs (
    id                 bigserial PRIMARY KEY,
    source             text NOT NULL DEFAULT 'freeswitch',
    call_uuid          text NOT NULL,
    leg                text NOT NULL CHECK (leg IN ('a', 'b')),
    core_uuid          text,
    switchname         text,
    direction          text,
    caller             text,
    callee             text,
    destination        text,
    account_id         bigint REFERENCES accounts(id),
    reservation_id     bigint REFERENCES reservations(id),
    start_at           timestamptz,
    answer_at          timestamptz,
    end_at             timestamptz,
    billusec           bigint NOT NULL DEFAULT 0 CHECK (billusec >= 0),
    billsec            integer NOT NULL DEFAULT 0 CHECK (billsec >= 0),
    fs_billsec         integer,
    hangup_cause       text,
    hangup_cause_q850  integer,
    rate_id            bigint,
    rate_prefix        text,
    rate_per_minute    numeric(18,6),
    connection_fee     numeric(18,6),
    billed_seconds     integer,
    cost               numeric(18,4),
    billing_status     text NOT NULL
                       CHECK (billing_status IN ('charged', 'unanswered', 'unrated', 'not_billed')),
    billing_note       text,
    linked_uuids       text[] NOT NULL DEFAULT '{}',
    apolo_vars         jsonb NOT NULL DEFAULT '{}',
    raw_xml            text,
    received_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (call_uuid, leg)
);
CREATE INDEX cdrs_account_time ON cdrs (account_id, start_at);
CREATE INDEX cdrs_start ON cdrs (start_at);

CREATE TABLE ledger (
    id              bigserial PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES accounts(id),
    kind            text NOT NULL CHECK (kind IN ('initial', 'recharge', 'call_charge', 'adjustment')),
    -- signed: positive credits the account, negative debits it
    amount          numeric(18,4) NOT NULL,
    balance_after   numeric(18,4) NOT NULL,
    cdr_id          bigint REFERENCES cdrs(id),
    reservation_id  bigint REFERENCES reservations(id),
    actor           text NOT NULL,
    note            text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_account ON ledger (account_id, id);
-- a CDR moves money at most once
CREATE UNIQUE INDEX ledger_one_charge_per_cdr ON ledger (cdr_id) WHERE kind = 'call_charge';

CREATE TABLE api_tokens (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer', 'switch')),
    -- SHA-256 of the token; tokens are 256-bit random strings, so a fast hash suffices
    token_hash    text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    actor       text NOT NULL,
    action      text NOT NULL,
    target      text NOT NULL,
    before      jsonb,
    after       jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Atomic balance check + reservation for one call (one round trip, row lock on the account).
-- Releases the account's expired reservations first, so a lost CDR cannot lock money forever.
-- Reserves least(available, p_want), p_want being the cost of p_seconds of talk; refuses when
-- available < p_min (the first increment). The reservation expires after the talk time it
-- pays for plus p_grace: p_seconds * amount / p_want is an upper bound of that time whatever
-- the connection fee and increments, since cost grows at least linearly with duration.
-- Idempotent per call uuid: authorizing the same uuid again returns the open reservation.
CREATE FUNCTION apolo_reserve(
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
    IF a.max_calls IS NOT NULL AND a.active_calls >= a.max_calls THEN
        RETURN QUERY SELECT 'concurrent_limit'::text, NULL::bigint, NULL::numeric, NULL::numeric;
        RETURN;
    END IF;

    v_avail := a.balance - a.reserved
               + CASE WHEN a.type = 'postpaid' THEN a.credit_limit ELSE 0 END;
    IF v_avail < p_min OR v_avail < 0 THEN
        RETURN QUERY SELECT 'insufficient_balance'::text, NULL::bigint, NULL::numeric, v_avail;
        RETURN;
    END IF;

    v_amount := least(v_avail, p_want);
    INSERT INTO reservations (account_id, call_uuid, amount, rate_id, caller, callee, expires_at)
    VALUES (a.id, p_call_uuid, v_amount, p_rate_id, p_caller, p_callee,
            now() + p_grace + make_interval(secs => CASE WHEN p_want > 0
                THEN ceil(p_seconds * v_amount / p_want) ELSE p_seconds END))
    RETURNING id INTO v_id;
    UPDATE accounts SET reserved = reserved + v_amount, active_calls = active_calls + 1
     WHERE id = a.id;
    RETURN QUERY SELECT 'authorized'::text, v_id, v_amount, v_avail - v_amount;
END $$;
