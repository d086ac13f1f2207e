//! Social login: the upstream OpenID Connect providers (their client secrets only
//! sealed) and the identities at them that accounts are linked to.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// A configured upstream provider.
#[derive(Debug, Clone)]
pub struct ProviderRecord {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// `nonce || ciphertext` under `secret_key_id`; `None` for a public client.
    pub client_secret: Option<Vec<u8>>,
    pub secret_key_id: Option<String>,
    pub scopes: String,
    pub claim_map: serde_json::Value,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const PROVIDER_COLUMNS: &str = "id, name, issuer, client_id, client_secret, secret_key_id, scopes, claim_map, enabled, created_at, updated_at";

fn provider_from_row(r: &tokio_postgres::Row) -> ProviderRecord {
    ProviderRecord {
        id: r.get(0),
        name: r.get(1),
        issuer: r.get(2),
        client_id: r.get(3),
        client_secret: r.get(4),
        secret_key_id: r.get(5),
        scopes: r.get(6),
        claim_map: r.get(7),
        enabled: r.get(8),
        created_at: r.get(9),
        updated_at: r.get(10),
    }
}

/// Stores a provider; `false` when the id is taken.
pub async fn insert_provider(
    client: &impl GenericClient,
    p: &ProviderRecord,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "INSERT INTO identity_providers (id, name, issuer, client_id, client_secret, secret_key_id, scopes, claim_map, enabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
            &[
                &p.id,
                &p.name,
                &p.issuer,
                &p.client_id,
                &p.client_secret,
                &p.secret_key_id,
                &p.scopes,
                &p.claim_map,
                &p.enabled,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// Writes a provider's settings (all of them, as read and changed by the caller).
pub async fn update_provider(
    client: &impl GenericClient,
    p: &ProviderRecord,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE identity_providers SET name = $2, issuer = $3, client_id = $4, client_secret = $5,
                 secret_key_id = $6, scopes = $7, claim_map = $8, enabled = $9, updated_at = now()
             WHERE id = $1",
            &[
                &p.id,
                &p.name,
                &p.issuer,
                &p.client_id,
                &p.client_secret,
                &p.secret_key_id,
                &p.scopes,
                &p.claim_map,
                &p.enabled,
            ],
        )
        .await?;
    Ok(n == 1)
}

pub async fn provider(
    client: &impl GenericClient,
    id: &str,
) -> Result<Option<ProviderRecord>, tokio_postgres::Error> {
    let sql = format!("SELECT {PROVIDER_COLUMNS} FROM identity_providers WHERE id = $1");
    Ok(client
        .query_opt(&sql, &[&id])
        .await?
        .as_ref()
        .map(provider_from_row))
}

/// Every provider (`enabled_only`: those offered on sign-in pages), by name.
pub async fn providers(
    client: &impl GenericClient,
    enabled_only: bool,
) -> Result<Vec<ProviderRecord>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {PROVIDER_COLUMNS} FROM identity_providers WHERE enabled OR NOT $1 ORDER BY name, id"
    );
    Ok(client
        .query(&sql, &[&enabled_only])
        .await?
        .iter()
        .map(provider_from_row)
        .collect())
}

pub async fn delete_provider(
    client: &impl GenericClient,
    id: &str,
) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .execute("DELETE FROM identity_providers WHERE id = $1", &[&id])
        .await?
        == 1)
}

/// An account's identity at an upstream provider.
#[derive(Debug, Clone)]
pub struct IdentityRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub provider_id: String,
    pub provider_name: String,
    pub subject: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

const IDENTITY_COLUMNS: &str =
    "i.id, i.user_id, i.provider_id, p.name, i.subject, i.email, i.created_at, i.last_used_at";

fn identity_from_row(r: &tokio_postgres::Row) -> IdentityRecord {
    IdentityRecord {
        id: r.get(0),
        user_id: r.get(1),
        provider_id: r.get(2),
        provider_name: r.get(3),
        subject: r.get(4),
        email: r.get(5),
        created_at: r.get(6),
        last_used_at: r.get(7),
    }
}

/// Links an identity to an account; `false` when the identity is linked already (to
/// anyone).
pub async fn link(
    client: &impl GenericClient,
    user_id: Uuid,
    provider_id: &str,
    subject: &str,
    email: Option<&str>,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "INSERT INTO user_identities (id, user_id, provider_id, subject, email)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (provider_id, subject) DO NOTHING",
            &[&Uuid::now_v7(), &user_id, &provider_id, &subject, &email],
        )
        .await?;
    Ok(n == 1)
}

/// The account an identity is linked to, and records its use.
pub async fn use_identity(
    client: &impl GenericClient,
    provider_id: &str,
    subject: &str,
) -> Result<Option<Uuid>, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "UPDATE user_identities SET last_used_at = now()
             WHERE provider_id = $1 AND subject = $2 RETURNING user_id",
            &[&provider_id, &subject],
        )
        .await?
        .map(|r| r.get(0)))
}

pub async fn of_user(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Vec<IdentityRecord>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {IDENTITY_COLUMNS} FROM user_identities i JOIN identity_providers p ON p.id = i.provider_id
         WHERE i.user_id = $1 ORDER BY i.created_at, i.id"
    );
    Ok(client
        .query(&sql, &[&user_id])
        .await?
        .iter()
        .map(identity_from_row)
        .collect())
}

/// Unlinks one of a user's identities; `false` when the user has no such identity.
pub async fn unlink(
    client: &impl GenericClient,
    user_id: Uuid,
    id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .execute(
            "DELETE FROM user_identities WHERE id = $1 AND user_id = $2",
            &[&id, &user_id],
        )
        .await?
        == 1)
}
