//! The OpenID Connect provider's tables: clients, authorization codes, consents, and
//! what each session was opened for. Secrets and codes are stored only as SHA-256
//! digests.

use chrono::{DateTime, Utc};
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

/// A registered relying party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcClient {
    pub client_id: String,
    pub name: String,
    pub confidential: bool,
    pub secret_hash: Option<Vec<u8>>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub grant_types: Vec<String>,
    pub first_party: bool,
    /// `RS256` or `EdDSA`.
    pub id_token_alg: String,
    pub access_token_ttl_secs: i32,
    pub refresh_token_ttl_secs: i32,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const CLIENT_COLUMNS: &str = "client_id, name, confidential, secret_hash, redirect_uris,
    post_logout_redirect_uris, scopes, grant_types, first_party, id_token_alg,
    access_token_ttl_secs, refresh_token_ttl_secs, version, created_at, updated_at";

fn client_from(r: &Row) -> OidcClient {
    OidcClient {
        client_id: r.get(0),
        name: r.get(1),
        confidential: r.get(2),
        secret_hash: r.get(3),
        redirect_uris: r.get(4),
        post_logout_redirect_uris: r.get(5),
        scopes: r.get(6),
        grant_types: r.get(7),
        first_party: r.get(8),
        id_token_alg: r.get(9),
        access_token_ttl_secs: r.get(10),
        refresh_token_ttl_secs: r.get(11),
        version: r.get(12),
        created_at: r.get(13),
        updated_at: r.get(14),
    }
}

pub async fn insert_client(
    client: &impl GenericClient,
    c: &OidcClient,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO oidc_clients (client_id, name, confidential, secret_hash, redirect_uris,
                post_logout_redirect_uris, scopes, grant_types, first_party, id_token_alg,
                access_token_ttl_secs, refresh_token_ttl_secs)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            &[
                &c.client_id,
                &c.name,
                &c.confidential,
                &c.secret_hash,
                &c.redirect_uris,
                &c.post_logout_redirect_uris,
                &c.scopes,
                &c.grant_types,
                &c.first_party,
                &c.id_token_alg,
                &c.access_token_ttl_secs,
                &c.refresh_token_ttl_secs,
            ],
        )
        .await?;
    Ok(())
}

/// A live (not deleted) client.
pub async fn find_client(
    client: &impl GenericClient,
    client_id: &str,
) -> Result<Option<OidcClient>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE client_id = $1 AND deleted_at IS NULL"
            ),
            &[&client_id],
        )
        .await?;
    Ok(row.as_ref().map(client_from))
}

/// Live clients, oldest first.
pub async fn list_clients(
    client: &impl GenericClient,
) -> Result<Vec<OidcClient>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT {CLIENT_COLUMNS} FROM oidc_clients WHERE deleted_at IS NULL ORDER BY created_at, client_id"
            ),
            &[],
        )
        .await?;
    Ok(rows.iter().map(client_from).collect())
}

/// Writes every changeable field of a client and bumps its version; the new version, or
/// `None` when there is no such client.
pub async fn update_client(
    client: &impl GenericClient,
    c: &OidcClient,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "UPDATE oidc_clients SET name = $2, secret_hash = $3, redirect_uris = $4,
                post_logout_redirect_uris = $5, scopes = $6, grant_types = $7, first_party = $8,
                id_token_alg = $9, access_token_ttl_secs = $10, refresh_token_ttl_secs = $11,
                version = version + 1, updated_at = now()
             WHERE client_id = $1 AND deleted_at IS NULL
             RETURNING version",
            &[
                &c.client_id,
                &c.name,
                &c.secret_hash,
                &c.redirect_uris,
                &c.post_logout_redirect_uris,
                &c.scopes,
                &c.grant_types,
                &c.first_party,
                &c.id_token_alg,
                &c.access_token_ttl_secs,
                &c.refresh_token_ttl_secs,
            ],
        )
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// A deleted client: its last version and the sessions that were opened for it, now
/// revoked.
pub struct DeletedClient {
    pub version: i64,
    pub sessions: Vec<Uuid>,
}

/// Deletes a client (kept for the audit trail and the codes that name it).
pub async fn delete_client(
    client: &impl GenericClient,
    client_id: &str,
) -> Result<Option<DeletedClient>, tokio_postgres::Error> {
    let Some(row) = client
        .query_opt(
            "UPDATE oidc_clients SET deleted_at = now(), version = version + 1, updated_at = now()
             WHERE client_id = $1 AND deleted_at IS NULL
             RETURNING version",
            &[&client_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let rows = client
        .query(
            "UPDATE refresh_tokens r SET revoked_at = now()
             FROM oidc_sessions s
             WHERE s.client_id = $1 AND r.family_id = s.family_id AND r.revoked_at IS NULL
             RETURNING r.family_id",
            &[&client_id],
        )
        .await?;
    let mut sessions: Vec<Uuid> = rows.iter().map(|r| r.get(0)).collect();
    sessions.sort();
    sessions.dedup();
    Ok(Some(DeletedClient {
        version: row.get(0),
        sessions,
    }))
}

/// An authorization code as issued.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    pub code_hash: &'a [u8],
    pub client_id: &'a str,
    pub user_id: Uuid,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub nonce: Option<&'a str>,
    pub code_challenge: Option<&'a str>,
    pub auth_time: DateTime<Utc>,
    pub amr: &'a [String],
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_code(
    client: &impl GenericClient,
    code: &NewCode<'_>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO oidc_codes (code_hash, client_id, user_id, redirect_uri, scope, nonce,
                code_challenge, auth_time, amr, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &code.code_hash,
                &code.client_id,
                &code.user_id,
                &code.redirect_uri,
                &code.scope,
                &code.nonce,
                &code.code_challenge,
                &code.auth_time,
                &code.amr,
                &code.expires_at,
            ],
        )
        .await?;
    Ok(())
}

/// A presented authorization code, locked until the transaction ends.
#[derive(Debug, Clone)]
pub struct PresentedCode {
    pub client_id: String,
    pub user_id: Uuid,
    pub redirect_uri: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
    /// The session its first exchange opened.
    pub family_id: Option<Uuid>,
}

pub async fn lock_code(
    client: &impl GenericClient,
    code_hash: &[u8],
) -> Result<Option<PresentedCode>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT client_id, user_id, redirect_uri, scope, nonce, code_challenge, auth_time, amr,
                    expires_at, used_at IS NOT NULL, family_id
             FROM oidc_codes WHERE code_hash = $1 FOR UPDATE",
            &[&code_hash],
        )
        .await?;
    Ok(row.map(|r| PresentedCode {
        client_id: r.get(0),
        user_id: r.get(1),
        redirect_uri: r.get(2),
        scope: r.get(3),
        nonce: r.get(4),
        code_challenge: r.get(5),
        auth_time: r.get(6),
        amr: r.get(7),
        expires_at: r.get(8),
        used: r.get(9),
        family_id: r.get(10),
    }))
}

/// Marks a code used by the exchange that opened `family_id`.
pub async fn use_code(
    client: &impl GenericClient,
    code_hash: &[u8],
    family_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE oidc_codes SET used_at = now(), family_id = $2 WHERE code_hash = $1",
            &[&code_hash, &family_id],
        )
        .await?;
    Ok(())
}

/// Deletes codes that expired before `before` (a used code is kept as long as it could
/// be replayed, which is until it expires).
pub async fn purge_codes(
    client: &impl GenericClient,
    before: DateTime<Utc>,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute("DELETE FROM oidc_codes WHERE expires_at < $1", &[&before])
        .await
}

/// The scopes the user granted the client, if any.
pub async fn consent(
    client: &impl GenericClient,
    user_id: Uuid,
    client_id: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT scopes FROM oidc_consents WHERE user_id = $1 AND client_id = $2",
            &[&user_id, &client_id],
        )
        .await?;
    Ok(row.map(|r| r.get(0)).unwrap_or_default())
}

/// Records a grant; the scopes add to what was granted before.
pub async fn grant_consent(
    client: &impl GenericClient,
    user_id: Uuid,
    client_id: &str,
    scopes: &[String],
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO oidc_consents (user_id, client_id, scopes) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, client_id) DO UPDATE
             SET scopes = ARRAY(SELECT DISTINCT unnest(oidc_consents.scopes || EXCLUDED.scopes)),
                 granted_at = now()",
            &[&user_id, &client_id, &scopes],
        )
        .await?;
    Ok(())
}

/// What a session was opened for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionGrant {
    pub family_id: Uuid,
    pub user_id: Uuid,
    /// `None`: the hosted login page's browser session.
    pub client_id: Option<String>,
    pub scope: String,
    pub auth_time: DateTime<Utc>,
    pub amr: Vec<String>,
}

pub async fn insert_session(
    client: &impl GenericClient,
    s: &SessionGrant,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO oidc_sessions (family_id, user_id, client_id, scope, auth_time, amr)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &s.family_id,
                &s.user_id,
                &s.client_id,
                &s.scope,
                &s.auth_time,
                &s.amr,
            ],
        )
        .await?;
    Ok(())
}

pub async fn session(
    client: &impl GenericClient,
    family_id: Uuid,
) -> Result<Option<SessionGrant>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT family_id, user_id, client_id, scope, auth_time, amr
             FROM oidc_sessions WHERE family_id = $1",
            &[&family_id],
        )
        .await?;
    Ok(row.map(|r| SessionGrant {
        family_id: r.get(0),
        user_id: r.get(1),
        client_id: r.get(2),
        scope: r.get(3),
        auth_time: r.get(4),
        amr: r.get(5),
    }))
}

/// The live session a browser's cookie names: its token unused, unrevoked and
/// unexpired, its session begun after `started_after` (`max_age`).
pub async fn live_browser_session(
    client: &impl GenericClient,
    token_hash: &[u8],
    started_after: Option<DateTime<Utc>>,
) -> Result<Option<SessionGrant>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT s.family_id, s.user_id, s.client_id, s.scope, s.auth_time, s.amr
             FROM refresh_tokens r JOIN oidc_sessions s ON s.family_id = r.family_id
             WHERE r.token_hash = $1 AND r.revoked_at IS NULL AND r.used_at IS NULL
               AND r.expires_at > now() AND ($2::timestamptz IS NULL OR r.session_started_at > $2)
               AND s.client_id IS NULL",
            &[&token_hash, &started_after],
        )
        .await?;
    Ok(row.map(|r| SessionGrant {
        family_id: r.get(0),
        user_id: r.get(1),
        client_id: r.get(2),
        scope: r.get(3),
        auth_time: r.get(4),
        amr: r.get(5),
    }))
}

/// Whether a session (any family) is still live: some token neither revoked nor past
/// its expiry.
pub async fn family_live(
    client: &impl GenericClient,
    family_id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM refresh_tokens
                            WHERE family_id = $1 AND revoked_at IS NULL AND expires_at > now())",
            &[&family_id],
        )
        .await?;
    Ok(row.get(0))
}

/// An audit row of a change to a client, in the acting admin's trail (`actor` `None`:
/// the operator, through the CLI).
pub async fn audit_client_change(
    client: &impl GenericClient,
    actor: Option<Uuid>,
    action: &str,
    context: &crate::store::users::AuditContext,
    details: serde_json::Value,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO user_audit_log (user_id, action, actor_id, ip, user_agent, details)
             VALUES ($1, $2, $1, $3, $4, $5)",
            &[&actor, &action, &context.ip, &context.user_agent, &details],
        )
        .await?;
    Ok(())
}
