-- The console's users list at scale (bench: users-list, 1M accounts). Filters by role
-- walk this index newest first instead of every account; deleted accounts, a few among
-- many, have a partial index of their own.
CREATE INDEX users_role_created_at_id_idx ON users (role, created_at DESC, id DESC);
CREATE INDEX users_deleted_created_at_id_idx ON users (created_at DESC, id DESC)
    WHERE deleted_at IS NOT NULL;
