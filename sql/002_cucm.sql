-- Cisco CUCM intake: the flat files received, the full CDR/CMR rows, Forced Authorization Codes.
-- Billed CUCM calls live in cdrs (source 'cucm', call_uuid 'cucm:<pkid>', leg 'a');
-- cucm_cdrs keeps every column of the original row next to it.

CREATE TABLE cucm_files (
    id              bigserial PRIMARY KEY,
    name            text NOT NULL CHECK (name <> ''),
    kind            text NOT NULL CHECK (kind IN ('cdr', 'cmr')),
    cluster         text NOT NULL,
    node            integer NOT NULL,
    file_time       timestamptz NOT NULL,
    seq             bigint NOT NULL,
    content_sha256  text NOT NULL CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes      integer NOT NULL,
    row_count       integer NOT NULL,
    new_rows        integer NOT NULL,
    summary         jsonb NOT NULL DEFAULT '{}',
    actor           text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    -- the same delivery twice (resend on failure, several billing servers) is one file
    UNIQUE (name, content_sha256)
);

CREATE TABLE cucm_cdrs (
    pkid                 uuid PRIMARY KEY,
    file_id              bigint NOT NULL REFERENCES cucm_files(id) ON DELETE CASCADE,
    cdr_id               bigint NOT NULL UNIQUE REFERENCES cdrs(id) ON DELETE CASCADE,
    callmanager_id       bigint NOT NULL,
    call_id              bigint NOT NULL,
    orig_leg             bigint NOT NULL,
    dest_leg             bigint NOT NULL,
    cluster              text NOT NULL,
    -- the FAC that applied (own or carried over), as HMAC-SHA256 under APOLO_FAC_KEY
    fac_hmac             text,
    fac_description      text,
    fac_from_pkid        uuid,
    -- every column of the row, typed; authorizationCodeValue is masked
    row                  jsonb NOT NULL
);
CREATE INDEX cucm_cdrs_call ON cucm_cdrs (callmanager_id, call_id);
CREATE INDEX cucm_cdrs_orig_leg ON cucm_cdrs (orig_leg) WHERE orig_leg <> 0;
CREATE INDEX cucm_cdrs_dest_leg ON cucm_cdrs (dest_leg) WHERE dest_leg <> 0;

-- call quality records: linked to their CDR by the global call id, never billed
CREATE TABLE cucm_cmrs (
    pkid            uuid PRIMARY KEY,
    file_id         bigint NOT NULL REFERENCES cucm_files(id) ON DELETE CASCADE,
    callmanager_id  bigint NOT NULL,
    call_id         bigint NOT NULL,
    cluster         text NOT NULL,
    row             jsonb NOT NULL
);
CREATE INDEX cucm_cmrs_call ON cucm_cmrs (callmanager_id, call_id);

CREATE TABLE fac_codes (
    id           bigserial PRIMARY KEY,
    -- HMAC-SHA256 of the code under APOLO_FAC_KEY; the code itself is never stored
    code_hmac    text NOT NULL UNIQUE CHECK (code_hmac ~ '^[0-9a-f]{64}$'),
    last_digits  text NOT NULL,
    code_length  integer NOT NULL CHECK (code_length BETWEEN 1 AND 16),
    -- matched against authCodeDescription when a CDR carries no code value
    name         text NOT NULL UNIQUE CHECK (name <> ''),
    level        integer NOT NULL DEFAULT 0 CHECK (level BETWEEN 0 AND 255),
    account_id   bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fac_codes_account ON fac_codes (account_id);
