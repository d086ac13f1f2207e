-- The audit trail keeps no foreign key to `users`. Every audit row is written in the
-- transaction that inserted or locked the user it names, and no code path deletes a
-- user row (soft delete and erasure keep it), so the key guarded nothing the service
-- can break, while it cost a row-locking lookup of the user per audit row
-- (`SELECT … FOR KEY SHARE`, a trigger per row): about 10 µs of PostgreSQL for every
-- new user, measured on the consumer's batch insert, where it was the dearest part of
-- the audit row. An audit log that does not depend on its subject's row is also what
-- an audit log should be.
ALTER TABLE user_audit_log DROP CONSTRAINT user_audit_log_user_id_fkey;
