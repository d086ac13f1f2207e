-- The transactional outbox of the user-events topic: each event row is written in the
-- transaction of the change it describes (payload = the Avro single-object record); the
-- relay in the consumer publishes unsent rows in `seq` order and marks them sent; sent
-- rows are purged after USER_EVENTS_RETENTION_HOURS.
CREATE TABLE user_event_outbox (
    seq         BIGSERIAL PRIMARY KEY,
    event_id    UUID NOT NULL UNIQUE,
    user_id     UUID NOT NULL,
    type        TEXT NOT NULL,
    payload     BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at     TIMESTAMPTZ
);
CREATE INDEX user_event_outbox_unsent_idx ON user_event_outbox (seq) WHERE sent_at IS NULL;
CREATE INDEX user_event_outbox_sent_idx ON user_event_outbox (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX user_event_outbox_user_idx ON user_event_outbox (user_id);
