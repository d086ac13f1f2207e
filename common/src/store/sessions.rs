//! Refresh-token families in PostgreSQL. Tokens are stored only as SHA-256 digests; a
//! login starts a family (its id is the `sid` claim of every access token it yields),
//! each refresh uses one token and adds the next.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// One refresh token of a session (a family).
pub struct NewToken<'a> {
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub token_hash: &'a [u8],
    pub expires_at: DateTime<Utc>,
    /// When the session began (its login); refreshing never moves it.
    pub session_started_at: DateTime<Utc>,
    /// Where the token was issued from (shown in the session list).
    pub ip: Option<String>,
    pub user_agent: Option<&'a str>,
}

pub async fn insert(
    client: &impl GenericClient,
    token: &NewToken<'_>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO refresh_tokens (id, family_id, user_id, token_hash, expires_at, session_started_at, ip, user_agent)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &Uuid::now_v7(),
                &token.family_id,
                &token.user_id,
                &token.token_hash,
                &token.expires_at,
                &token.session_started_at,
                &token.ip,
                &token.user_agent,
            ],
        )
        .await?;
    Ok(())
}

/// The user a token belongs to, read without a lock: the caller locks that user's row
/// first, as every path that revokes sessions does, then the token.
pub async fn owner(
    client: &impl GenericClient,
    token_hash: &[u8],
) -> Result<Option<Uuid>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT user_id FROM refresh_tokens WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// Deletes tokens that expired before `before`; returns how many.
pub async fn purge_expired(
    client: &impl GenericClient,
    before: DateTime<Utc>,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM refresh_tokens WHERE expires_at < $1",
            &[&before],
        )
        .await
}

/// A presented refresh token, locked until the transaction ends.
#[derive(Debug, Clone)]
pub struct PresentedToken {
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub session_started_at: DateTime<Utc>,
    pub used: bool,
    pub revoked: bool,
}

pub async fn lock(
    client: &impl GenericClient,
    token_hash: &[u8],
) -> Result<Option<PresentedToken>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT family_id, user_id, expires_at, session_started_at, used_at IS NOT NULL,
                    revoked_at IS NOT NULL
             FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
            &[&token_hash],
        )
        .await?;
    Ok(row.map(|r| PresentedToken {
        family_id: r.get(0),
        user_id: r.get(1),
        expires_at: r.get(2),
        session_started_at: r.get(3),
        used: r.get(4),
        revoked: r.get(5),
    }))
}

pub async fn mark_used(
    client: &impl GenericClient,
    token_hash: &[u8],
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1",
            &[&token_hash],
        )
        .await?;
    Ok(())
}

/// Revokes every token of a family.
pub async fn revoke_family(
    client: &impl GenericClient,
    family_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
            &[&family_id],
        )
        .await?;
    Ok(())
}

/// Revokes every family of a user except `keep`; returns the families that may still
/// have access tokens alive (not expired), so their `sid`s can be revoked too.
pub async fn revoke_user(
    client: &impl GenericClient,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<Vec<Uuid>, tokio_postgres::Error> {
    let rows = client
        .query(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR family_id <> $2)
             RETURNING family_id",
            &[&user_id, &keep],
        )
        .await?;
    let mut families: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    families.sort();
    families.dedup();
    Ok(families)
}

/// Removes every token of a user (GDPR erasure).
pub async fn delete_user(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Vec<Uuid>, tokio_postgres::Error> {
    let rows = client
        .query(
            "DELETE FROM refresh_tokens WHERE user_id = $1 RETURNING family_id",
            &[&user_id],
        )
        .await?;
    let mut families: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    families.sort();
    families.dedup();
    Ok(families)
}

/// A live session of a user, as its list shows it.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    /// When its latest token was issued (the login or the last refresh).
    pub last_used_at: DateTime<Utc>,
    /// Address and user agent of that latest token.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// The user's sessions that can still be refreshed: not revoked, with an unexpired
/// unused token. Newest first.
pub async fn active(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Vec<ActiveSession>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT family_id, session_started_at, created_at, ip, user_agent, expires_at
             FROM refresh_tokens
             WHERE user_id = $1 AND revoked_at IS NULL AND used_at IS NULL AND expires_at > now()
             ORDER BY created_at DESC",
            &[&user_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ActiveSession {
            id: r.get(0),
            created_at: r.get(1),
            last_used_at: r.get(2),
            ip: r.get(3),
            user_agent: r.get(4),
            expires_at: r.get(5),
        })
        .collect())
}

/// Revokes one session of a user; false when the user has no such live session.
pub async fn revoke_session_of(
    client: &impl GenericClient,
    user_id: Uuid,
    family_id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE user_id = $1 AND family_id = $2 AND revoked_at IS NULL",
            &[&user_id, &family_id],
        )
        .await?;
    Ok(n > 0)
}
