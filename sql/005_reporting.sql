-- Reporting, rerating and low-balance alerts.

-- CDR filters of GET /v1/cdrs and the reports (time range first, the id breaks ties for
-- keyset pagination); prefix searches on caller/callee/destination use text_pattern_ops.
CREATE INDEX cdrs_start_id ON cdrs (start_at, id);
CREATE INDEX cdrs_answer ON cdrs (answer_at) WHERE billing_status = 'charged';
CREATE INDEX cdrs_destination_prefix ON cdrs (destination text_pattern_ops);
CREATE INDEX cdrs_caller ON cdrs (caller text_pattern_ops);
CREATE INDEX cdrs_callee ON cdrs (callee text_pattern_ops);
CREATE INDEX cdrs_hangup_cause ON cdrs (hangup_cause);
CREATE INDEX ledger_cdr ON ledger (cdr_id) WHERE cdr_id IS NOT NULL;
CREATE INDEX rates_name ON rates (plan_id, lower(name) text_pattern_ops);

-- One rerating run (preview runs are not stored; an applied run is).
CREATE TABLE rerate_runs (
    id          bigserial PRIMARY KEY,
    actor       text NOT NULL,
    range_from  timestamptz NOT NULL,
    range_to    timestamptz NOT NULL,
    plan_id     bigint REFERENCES rate_plans(id) ON DELETE SET NULL,
    account_id  bigint REFERENCES accounts(id) ON DELETE CASCADE,
    cdrs        integer NOT NULL,
    total_delta numeric(18,4) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Each CDR a run re-priced: its cost before and after (the CDR row holds the new one).
CREATE TABLE rerate_items (
    run_id     bigint NOT NULL REFERENCES rerate_runs(id) ON DELETE CASCADE,
    cdr_id     bigint NOT NULL REFERENCES cdrs(id) ON DELETE CASCADE,
    old_cost   numeric(18,4) NOT NULL,
    new_cost   numeric(18,4) NOT NULL,
    old_rate_id bigint,
    new_rate_id bigint,
    PRIMARY KEY (run_id, cdr_id)
);
CREATE INDEX rerate_items_cdr ON rerate_items (cdr_id);

-- A downward crossing of an account's low_balance_threshold.
CREATE TABLE low_balance_alerts (
    id              bigserial PRIMARY KEY,
    account_id      bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    threshold       numeric(18,4) NOT NULL,
    balance_before  numeric(18,4) NOT NULL,
    balance_after   numeric(18,4) NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX low_balance_alerts_account ON low_balance_alerts (account_id, id);

-- Webhooks waiting to be delivered (transactional outbox: written in the transaction that
-- raised the alert, POSTed after commit by the delivery loop, retried with back-off).
CREATE TABLE webhook_outbox (
    id              bigserial PRIMARY KEY,
    alert_id        bigint REFERENCES low_balance_alerts(id) ON DELETE CASCADE,
    event           text NOT NULL,
    payload         jsonb NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE delivered_at IS NULL;
