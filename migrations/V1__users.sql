-- Users and their audit trail. The consumer is the only writer of new users; emails are
-- stored lower-cased (the application normalises them) and unique across live and
-- soft-deleted users, so a deleted account's address cannot be taken over silently.
CREATE TABLE users (
    id              UUID PRIMARY KEY,
    registration_id UUID NOT NULL UNIQUE,
    email           TEXT NOT NULL UNIQUE CHECK (email = lower(email)),
    first_name      TEXT NOT NULL,
    last_name       TEXT NOT NULL,
    gender          TEXT NOT NULL CHECK (gender IN ('male', 'female', 'non-binary', 'prefer-not-to-say')),
    sex             TEXT NOT NULL CHECK (sex IN ('male', 'female', 'intersex')),
    occupation      TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'moderator', 'admin')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at      TIMESTAMPTZ
);

-- Listing newest first and keyset pagination.
CREATE INDEX users_created_at_id_idx ON users (created_at DESC, id DESC);
-- Email/name prefix search for operators.
CREATE INDEX users_email_prefix_idx ON users (email text_pattern_ops);

CREATE TABLE user_audit_log (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         UUID REFERENCES users (id),
    action          TEXT NOT NULL,
    actor_id        UUID,
    registration_id UUID,
    ip              INET,
    user_agent      TEXT,
    details         JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX user_audit_log_user_id_idx ON user_audit_log (user_id, created_at DESC);
CREATE INDEX user_audit_log_registration_id_idx ON user_audit_log (registration_id);
