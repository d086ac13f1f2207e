-- Usernames are optional, and most accounts (every import without one) have none: the
-- unique index now holds only the accounts that have one, so a new account without a
-- username writes one index entry less. `username = $1` and the inserts' conflict check
-- (ON CONFLICT without a target checks every unique index, partial ones included) use it
-- as before; it keeps its name, which the api maps to USERNAME_TAKEN.
DROP INDEX users_username_key;
CREATE UNIQUE INDEX users_username_key ON users (username) WHERE username IS NOT NULL;
