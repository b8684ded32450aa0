-- Access: dashboard/CLI users and the idempotency keys of money-moving requests.
-- (The admin account list pages by accounts.number, whose UNIQUE index serves the keyset.)

CREATE TABLE users (
    id             bigserial PRIMARY KEY,
    username       text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9._@-]{1,64}$'),
    role           text NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    -- argon2id, in the PHC string format argon2-cffi writes (parameters and salt included)
    password_hash  text NOT NULL CHECK (password_hash LIKE '$argon2%'),
    disabled_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- A retried request with the same key answers the stored response instead of acting again.
-- Keys are scoped per caller (actor), stored in the transaction that does the work, so a
-- request that fails leaves no key behind and may be retried.
CREATE TABLE idempotency_keys (
    actor        text NOT NULL,
    key          text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    -- SHA-256 of method, path and body: the same key with another request is a conflict
    fingerprint  text NOT NULL,
    status       integer,
    response     jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (actor, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Dashboard sessions: the cookie holds a random 256-bit value, stored here only as SHA-256.
-- Each session has its own CSRF token, required on every state-changing request it makes.
CREATE TABLE user_sessions (
    token_hash    text PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_sessions_user ON user_sessions (user_id);

-- Failed logins per username and per client address, in a fixed window;
-- written outside the request's transaction (a failed login answers 401, which rolls back).
CREATE TABLE login_failures (
    key           text PRIMARY KEY,
    failures      integer NOT NULL,
    window_start  timestamptz NOT NULL
);
