-- Passkeys (WebAuthn credentials). A user signs in with one instead of a password, and
-- a sign-up may bring one instead of a password (the consumer writes it with the user).
-- The WebAuthn user handle of every account is its registration id: known to the api
-- before the account exists, and no personal data.
CREATE TABLE passkeys (
    id               UUID PRIMARY KEY,
    user_id          UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The authenticator's credential id: unique across every account.
    credential_id    BYTEA NOT NULL UNIQUE,
    name             TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- The credential as webauthn-rs keeps it: the COSE public key, the signature
    -- counter, the backup flags and the registration policy.
    credential       JSONB NOT NULL,
    -- Copies of what the list shows and what each sign-in checks and moves on.
    sign_count       BIGINT NOT NULL DEFAULT 0,
    backup_eligible  BOOLEAN NOT NULL DEFAULT false,
    backup_state     BOOLEAN NOT NULL DEFAULT false,
    transports       TEXT[] NOT NULL DEFAULT '{}',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at     TIMESTAMPTZ
);
CREATE INDEX passkeys_user_id_idx ON passkeys (user_id);
