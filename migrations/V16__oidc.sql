-- The OpenID Connect provider: registered clients, authorization codes, consents, and
-- what a session was opened for (a client, the scopes, how the user authenticated).

-- Relying parties. A confidential client's secret is stored only as its SHA-256 digest
-- (the secret is 32 random bytes, so a fast digest is enough). Redirect URIs match
-- exactly. `first_party` clients skip the consent screen.
CREATE TABLE oidc_clients (
    client_id                  TEXT PRIMARY KEY,
    name                       TEXT NOT NULL,
    confidential               BOOLEAN NOT NULL,
    secret_hash                BYTEA,
    redirect_uris              TEXT[] NOT NULL DEFAULT '{}',
    post_logout_redirect_uris  TEXT[] NOT NULL DEFAULT '{}',
    scopes                     TEXT[] NOT NULL,
    grant_types                TEXT[] NOT NULL,
    first_party                BOOLEAN NOT NULL DEFAULT false,
    id_token_alg               TEXT NOT NULL DEFAULT 'RS256' CHECK (id_token_alg IN ('RS256', 'EdDSA')),
    access_token_ttl_secs      INT NOT NULL,
    refresh_token_ttl_secs     INT NOT NULL,
    version                    BIGINT NOT NULL DEFAULT 1,
    created_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at                 TIMESTAMPTZ,
    CHECK (confidential = (secret_hash IS NOT NULL))
);

-- Authorization codes (SHA-256 digests), 60 s and single use. `family_id` is the session
-- the exchange created: a second use of the code revokes it.
CREATE TABLE oidc_codes (
    code_hash       BYTEA PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES oidc_clients (client_id),
    user_id         UUID NOT NULL REFERENCES users (id),
    redirect_uri    TEXT NOT NULL,
    scope           TEXT NOT NULL,
    nonce           TEXT,
    code_challenge  TEXT,
    auth_time       TIMESTAMPTZ NOT NULL,
    amr             TEXT[] NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ NOT NULL,
    used_at         TIMESTAMPTZ,
    family_id       UUID
);
CREATE INDEX oidc_codes_expires_idx ON oidc_codes (expires_at);

-- Scopes a user granted a third-party client (the consent screen is not shown again
-- while they cover the request).
CREATE TABLE oidc_consents (
    user_id     UUID NOT NULL REFERENCES users (id),
    client_id   TEXT NOT NULL REFERENCES oidc_clients (client_id),
    scopes      TEXT[] NOT NULL,
    granted_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, client_id)
);

-- What a session (a refresh-token family) was opened for. `client_id` NULL: the hosted
-- login page's browser session; otherwise the client the tokens were issued to.
CREATE TABLE oidc_sessions (
    family_id   UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id),
    client_id   TEXT REFERENCES oidc_clients (client_id),
    scope       TEXT NOT NULL DEFAULT '',
    auth_time   TIMESTAMPTZ NOT NULL,
    amr         TEXT[] NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX oidc_sessions_user_idx ON oidc_sessions (user_id);
