-- Usernames and dates of birth (both optional). A username is lower-cased by the
-- application and unique across live and soft-deleted users, as emails are; erasure
-- clears it, which frees it.
ALTER TABLE users ADD COLUMN username TEXT CHECK (username = lower(username));
CREATE UNIQUE INDEX users_username_key ON users (username);
ALTER TABLE users ADD COLUMN date_of_birth DATE;
