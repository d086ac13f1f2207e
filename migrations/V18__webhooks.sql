-- Webhooks (Standard Webhooks): endpoints admins register, and one delivery row per
-- event and endpoint. The consumer's webhook intake (its own group on user-events)
-- writes the deliveries; its dispatcher sends them, in order per endpoint and user,
-- retrying with backoff, and keeps the log the admin API reads.
CREATE TABLE webhook_endpoints (
    id                          UUID PRIMARY KEY,
    url                         TEXT NOT NULL,
    description                 TEXT NOT NULL DEFAULT '',
    -- Empty: every event type.
    event_types                 TEXT[] NOT NULL DEFAULT '{}',
    -- `whsec_` + base64 of 32 random bytes. Signing needs the secret itself, so it is
    -- kept as is (shown to the admin once, at creation or rotation).
    secret                      TEXT NOT NULL,
    -- After a rotation the old secret still signs (beside the new one) until then.
    previous_secret             TEXT,
    previous_secret_until       TIMESTAMPTZ,
    enabled                     BOOLEAN NOT NULL DEFAULT true,
    disabled_reason             TEXT,
    -- Since when every attempt failed; cleared by a success.
    failing_since               TIMESTAMPTZ,
    -- The admin who registered it: told when it is disabled. NULL: the CLI.
    owner_id                    UUID,
    version                     BIGINT NOT NULL DEFAULT 1,
    created_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                  TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at                  TIMESTAMPTZ
);

CREATE TABLE webhook_deliveries (
    id               BIGSERIAL PRIMARY KEY,
    endpoint_id      UUID NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_id         UUID NOT NULL,
    event_type       TEXT NOT NULL,
    -- The user the event is about: deliveries of one subject go out in order.
    subject          UUID NOT NULL,
    -- The body's JSON (`type`, `timestamp`, `data`); erasure removes the email.
    payload          JSONB NOT NULL,
    state            TEXT NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'in_flight', 'delivered', 'failed')),
    attempts         INT NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until      TIMESTAMPTZ,
    last_status      INT,
    last_error       TEXT,
    last_latency_ms  INT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at      TIMESTAMPTZ,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE state IN ('pending', 'in_flight');
CREATE INDEX webhook_deliveries_open_idx ON webhook_deliveries (endpoint_id, subject, id)
    WHERE state IN ('pending', 'in_flight');
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (endpoint_id, id DESC);
CREATE INDEX webhook_deliveries_subject_idx ON webhook_deliveries (subject);

-- The owner is told when an endpoint is disabled.
ALTER TABLE mail_outbox DROP CONSTRAINT mail_outbox_kind_check;
ALTER TABLE mail_outbox ADD CONSTRAINT mail_outbox_kind_check CHECK (kind IN (
    'verify_email', 'verify_new_email', 'email_change_notice', 'password_reset',
    'password_changed', 'second_factor_failures', 'registration_attempt',
    'second_factor_enabled', 'second_factor_disabled', 'second_factor_reset',
    'webhook_disabled'));
