-- Sessions get an absolute lifetime that refreshing does not extend: every refresh token
-- carries the start of its session (the login that began its family).
ALTER TABLE refresh_tokens ADD COLUMN session_started_at TIMESTAMPTZ;
UPDATE refresh_tokens r
   SET session_started_at = f.started
  FROM (SELECT family_id, min(created_at) AS started FROM refresh_tokens GROUP BY family_id) f
 WHERE r.family_id = f.family_id;
ALTER TABLE refresh_tokens ALTER COLUMN session_started_at SET DEFAULT now();
ALTER TABLE refresh_tokens ALTER COLUMN session_started_at SET NOT NULL;

-- Expired tokens are purged; this index finds them.
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);
