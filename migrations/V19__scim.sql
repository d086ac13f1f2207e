-- SCIM 2.0 provisioning: identity providers (Okta, Entra ID, …) create, change and
-- deactivate accounts with bearer tokens an admin issued.

-- What a provider names the account by (`userName`; an account without one is named by
-- its email, and the name is unique among live accounts, case-insensitive), its own id
-- for it (`externalId`), the SCIM attributes there is no column for (a JSON object, as
-- the provider sent them), and deactivation (`active=false`): no sign-in, every session
-- ended.
ALTER TABLE users ADD COLUMN scim_user_name TEXT;
ALTER TABLE users ADD COLUMN external_id TEXT;
ALTER TABLE users ADD COLUMN scim_attributes JSONB;
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMPTZ;
CREATE UNIQUE INDEX users_scim_user_name_idx ON users (lower(COALESCE(scim_user_name, email)))
    WHERE deleted_at IS NULL;
CREATE INDEX users_external_id_idx ON users (external_id) WHERE external_id IS NOT NULL;

-- Bearer tokens of SCIM clients, stored as SHA-256 digests; shown once at creation.
CREATE TABLE scim_tokens (
    id            UUID PRIMARY KEY,
    name          TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    token_hash    BYTEA NOT NULL UNIQUE,
    -- The admin who issued it; NULL: the CLI.
    created_by    UUID,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);
