-- Accounts: sessions (refresh-token families), per-user data, optimistic concurrency
-- and GDPR erasure.

-- `version` backs the ETag of a user: every change increments it.
ALTER TABLE users ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
-- Set when an administrator erased the personal data (GDPR art. 17).
ALTER TABLE users ADD COLUMN erased_at TIMESTAMPTZ;
-- Accounts created by `api create-admin` and erased accounts have no profile
-- answers; registrations always carry them (the api and the consumer validate that).
ALTER TABLE users ALTER COLUMN first_name DROP NOT NULL;
ALTER TABLE users ALTER COLUMN last_name DROP NOT NULL;
ALTER TABLE users ALTER COLUMN gender DROP NOT NULL;
ALTER TABLE users ALTER COLUMN sex DROP NOT NULL;
ALTER TABLE users ALTER COLUMN occupation DROP NOT NULL;
ALTER TABLE users ADD CONSTRAINT users_erased_is_deleted CHECK (erased_at IS NULL OR deleted_at IS NOT NULL);

-- Name prefix search (`GET /api/users?q=`), case-insensitive.
CREATE INDEX users_first_name_prefix_idx ON users (lower(first_name) text_pattern_ops);
CREATE INDEX users_last_name_prefix_idx ON users (lower(last_name) text_pattern_ops);

-- Refresh tokens, stored only as SHA-256 of the opaque token. A login starts a family;
-- each refresh marks its token used and adds the next one. Presenting a used or
-- revoked token revokes the whole family.
CREATE TABLE refresh_tokens (
    id          UUID PRIMARY KEY,
    family_id   UUID NOT NULL,
    user_id     UUID NOT NULL REFERENCES users (id),
    token_hash  BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);

CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;

-- Per-user key/value data (seed 003), always scoped to its owner.
CREATE TABLE data_store (
    user_id     UUID NOT NULL REFERENCES users (id),
    key         TEXT NOT NULL CHECK (char_length(key) BETWEEN 1 AND 128),
    value       JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
