-- Changes of OpenID Connect clients are published like account changes: appended to the
-- same outbox in the transaction of the change and relayed in `seq` order, but to their
-- own topic (CLIENT_EVENTS_TOPIC) keyed by the client id. A row is either an account's
-- event (`user_id`) or a client's (`client_id`), never both.
ALTER TABLE user_event_outbox ALTER COLUMN user_id DROP NOT NULL;
ALTER TABLE user_event_outbox ADD COLUMN client_id TEXT;
ALTER TABLE user_event_outbox ADD CONSTRAINT user_event_outbox_one_subject
    CHECK ((user_id IS NULL) <> (client_id IS NULL)) NOT VALID;
ALTER TABLE user_event_outbox VALIDATE CONSTRAINT user_event_outbox_one_subject;
