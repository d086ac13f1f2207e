-- The archive of sent user events needs no primary key: an event arrives there once,
-- moved by the relay's own delete from the outbox. Without it, moving an event writes
-- one B-tree entry (the user id, for erasure) and the BRIN summary of `sent_at`.
ALTER TABLE user_event_outbox_sent DROP CONSTRAINT user_event_outbox_sent_pkey;
