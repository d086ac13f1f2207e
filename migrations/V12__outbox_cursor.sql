-- The user-events relay keeps a cursor instead of moving each published event, found by
-- the import benchmark (the move, a delete from the outbox and an insert into
-- `user_event_outbox_sent`, cost about a fifth of an imported user's time in
-- PostgreSQL):
--
-- * `user_event_relay.published_seq`: every event with `seq` at or below it was
--   published. Events stay in `user_event_outbox` after publishing, until the retention
--   purge; erasure deletes an account's published events and scrubs its unpublished ones.
-- * The cursor may only pass numbers no running transaction still holds. A statement
--   trigger takes a shared advisory lock before an insert draws its numbers (statement
--   triggers fire before the rows, and so the `seq` defaults, are computed); the relay
--   briefly takes the same lock exclusively, which waits for every transaction holding a
--   number to end, and then reads the sequence: all numbers up to that value are
--   committed or rolled back for good. The key is the relay's `OUTBOX_WRITERS_LOCK`.
-- * The event id's unique index: ids are UUIDv7 made by the service, and consumers
--   deduplicate on them; the index cost a B-tree entry per event and answered no query.

-- First, so that no transaction still inserts into the outbox while the cursor is set.
LOCK TABLE user_event_outbox IN ACCESS EXCLUSIVE MODE;

CREATE TABLE user_event_relay (
    id             BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    published_seq  BIGINT NOT NULL
);

-- Published: everything below the oldest unsent event (or everything moved out). An
-- event both sent and below that line comes back as published; one sent above it is
-- published again, with its id (at least once).
INSERT INTO user_event_relay (published_seq)
SELECT COALESCE(
    (SELECT min(seq) - 1 FROM user_event_outbox),
    (SELECT max(seq) FROM user_event_outbox_sent),
    0
);

INSERT INTO user_event_outbox (seq, event_id, user_id, type, payload, created_at)
SELECT seq, event_id, user_id, type, payload, created_at FROM user_event_outbox_sent
ON CONFLICT (seq) DO NOTHING;
DROP TABLE user_event_outbox_sent;

ALTER TABLE user_event_outbox DROP CONSTRAINT user_event_outbox_event_id_key;

CREATE FUNCTION user_event_outbox_writer_lock() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- 0x6f7574626f785f77: "outbox_w"
    PERFORM pg_advisory_xact_lock_shared(8031453476610924407);
    RETURN NULL;
END;
$$;

CREATE TRIGGER user_event_outbox_writer_lock
    BEFORE INSERT ON user_event_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION user_event_outbox_writer_lock();
