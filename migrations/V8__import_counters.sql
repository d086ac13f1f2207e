-- Imports count their persisted users and record their failed lines where the consumer
-- persists them, instead of one bookkeeping row per accepted line written by the api:
-- that row cost as much PostgreSQL time as the user's audit row. The registration event
-- carries the import id and line (schema v6); the consumer adds each batch's new users to
-- `completed` in the transaction that inserts them, and upserts a failure row for a line
-- that cannot become a user (its email or username is taken, its role is unknown...).
ALTER TABLE imports ADD COLUMN completed BIGINT NOT NULL DEFAULT 0;

UPDATE imports i SET completed = (
    SELECT count(*) FROM import_registrations r JOIN users u ON u.registration_id = r.registration_id
    WHERE r.import_id = i.id
);

CREATE TABLE import_failures (
    import_id  UUID NOT NULL REFERENCES imports (id) ON DELETE CASCADE,
    line       BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    PRIMARY KEY (import_id, line)
);

DROP TABLE import_registrations;
