-- Social login: upstream OpenID Connect providers an admin configures, and the
-- identities at them that accounts are linked to.
CREATE TABLE identity_providers (
    -- The provider's id in URLs (`/oauth2/social/<id>`): lower-case letters, digits, `-`.
    id              TEXT PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{0,31}$'),
    name            TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    issuer          TEXT NOT NULL,
    client_id       TEXT NOT NULL,
    -- The client secret, sealed with MFA_ENCRYPTION_KEY (XChaCha20-Poly1305, the
    -- provider's id as associated data); NULL: a public client (PKCE alone).
    client_secret   BYTEA,
    secret_key_id   TEXT,
    scopes          TEXT NOT NULL DEFAULT 'openid email profile',
    -- Which upstream claim fills which profile field: {"firstName": "given_name", ...}.
    claim_map       JSONB NOT NULL DEFAULT '{}',
    enabled         BOOLEAN NOT NULL DEFAULT true,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE user_identities (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider_id   TEXT NOT NULL REFERENCES identity_providers (id) ON DELETE CASCADE,
    -- The provider's `sub`: stable per person at that provider.
    subject       TEXT NOT NULL,
    -- The address the provider said (and verified) when the identity was linked.
    email         TEXT,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at  TIMESTAMPTZ,
    UNIQUE (provider_id, subject)
);
CREATE INDEX user_identities_user_id_idx ON user_identities (user_id);
