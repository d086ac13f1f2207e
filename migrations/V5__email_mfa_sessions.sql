-- Email verification, password reset, TOTP two-factor and session listing.

-- When the address in `email` was verified (a link from a mail was followed). An email
-- change leaves `email` as it is and waits in `pending_email` until the new address is
-- verified.
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ;
ALTER TABLE users ADD COLUMN pending_email TEXT;

-- Single-use tokens mailed to a user (verification links, password resets), stored only
-- as SHA-256 digests. `email` is the address the token proves (for a change, the new one).
CREATE TABLE account_tokens (
    token_hash  BYTEA PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    email       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX account_tokens_user_idx ON account_tokens (user_id, purpose);
CREATE INDEX account_tokens_expires_idx ON account_tokens (expires_at);

-- Mails to send, written in the transaction of the change that calls for them (the
-- consumer's batch insert, a reset request, an email change). The mailer claims rows
-- with FOR UPDATE SKIP LOCKED, creates a mail's token only when it sends it (so no token
-- is ever stored in the clear) and retries with backoff; `failed_at` marks a mail that
-- kept failing (`MAIL_MAX_ATTEMPTS`).
CREATE TABLE mail_outbox (
    id               UUID PRIMARY KEY,
    user_id          UUID NOT NULL REFERENCES users (id),
    kind             TEXT NOT NULL CHECK (kind IN ('verify_email', 'verify_new_email', 'email_change_notice', 'password_reset', 'password_changed')),
    recipient        TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts         INT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_error       TEXT,
    sent_at          TIMESTAMPTZ,
    failed_at        TIMESTAMPTZ
);
CREATE INDEX mail_outbox_due_idx ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX mail_outbox_user_idx ON mail_outbox (user_id);

-- TOTP second factor. The secret is encrypted (XChaCha20-Poly1305 under
-- MFA_ENCRYPTION_KEY, named by `key_id`); `enabled_at` is set once a code confirmed the
-- enrolment; `last_step` is the last accepted time step, so no code is accepted twice.
CREATE TABLE user_mfa (
    user_id           UUID PRIMARY KEY REFERENCES users (id),
    key_id            TEXT NOT NULL,
    secret_sealed     BYTEA NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    enabled_at        TIMESTAMPTZ,
    last_step         BIGINT NOT NULL DEFAULT 0
);

-- Single-use recovery codes, stored only as SHA-256 digests.
CREATE TABLE mfa_recovery_codes (
    user_id    UUID NOT NULL REFERENCES users (id),
    code_hash  BYTEA NOT NULL,
    used_at    TIMESTAMPTZ,
    PRIMARY KEY (user_id, code_hash)
);

-- Where each refresh token was issued (login or refresh), for the session list.
ALTER TABLE refresh_tokens ADD COLUMN ip TEXT;
ALTER TABLE refresh_tokens ADD COLUMN user_agent TEXT;
