-- Who pays: the facts a caller cannot forge (sidecar/identity.py has the rule).
--
-- trunks: networks the operator declared. A call whose INVITE came from an address inside a
-- trunk's CIDRs is that trunk's: billed to its account, or, only where allowed, by the
-- caller ID (ANI) or by the billing header the trunk sends. A trunk with neither an account
-- nor a trusted source could bill nobody and is refused.
CREATE TABLE trunks (
    id                    bigserial PRIMARY KEY,
    name                  text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
    account_id            bigint REFERENCES accounts(id) ON DELETE RESTRICT,
    trust_caller_id       boolean NOT NULL DEFAULT false,
    trust_billing_header  boolean NOT NULL DEFAULT false,
    created_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT trunk_bills_someone
        CHECK (account_id IS NOT NULL OR trust_caller_id OR trust_billing_header)
);
CREATE INDEX trunks_account ON trunks (account_id);

-- No address may belong to two trunks (nor twice to one): the GiST exclusion holds even for
-- two admins creating overlapping trunks at the same time.
CREATE TABLE trunk_cidrs (
    trunk_id  bigint NOT NULL REFERENCES trunks(id) ON DELETE CASCADE,
    cidr      cidr NOT NULL,
    PRIMARY KEY (trunk_id, cidr),
    CONSTRAINT trunk_cidrs_no_overlap EXCLUDE USING gist (cidr inet_ops WITH &&)
);

-- Authenticated SIP users (digest username @ directory domain, domain in lower case) mapped
-- to the account they bill, for directories whose users carry no accountcode.
CREATE TABLE account_sip_users (
    sip_user    text PRIMARY KEY CHECK (sip_user ~ '^[^@[:space:][:cntrl:]]{1,64}@[a-z0-9.:_-]{1,190}$'),
    account_id  bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE
);
CREATE INDEX account_sip_users_account ON account_sip_users (account_id);

-- The sidecar workers cache all of this with the other who-is-calling facts
-- (sql/006_account_notify.sql): any change drops their caches. They also remember numbers
-- that matched no account, so a new account has to be announced too.
CREATE TRIGGER trunks_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trunks
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_accounts_changed();
CREATE TRIGGER trunk_cidrs_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trunk_cidrs
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_accounts_changed();
CREATE TRIGGER account_sip_users_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON account_sip_users
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_accounts_changed();
CREATE TRIGGER accounts_created
    AFTER INSERT ON accounts
    FOR EACH STATEMENT EXECUTE FUNCTION apolo_accounts_changed();
