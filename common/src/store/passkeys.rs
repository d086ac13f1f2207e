//! Passkeys (WebAuthn credentials): the credential webauthn-rs verifies against, kept
//! as its JSON, with the columns the list shows and each sign-in moves on (signature
//! counter, backup state, last use). A credential id is unique across every account.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// A stored passkey.
#[derive(Debug, Clone)]
pub struct PasskeyRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub credential_id: Vec<u8>,
    pub name: String,
    /// The credential as webauthn-rs serialises it (public key, counter, flags).
    pub credential: serde_json::Value,
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub transports: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A passkey to store, as a ceremony produced it.
#[derive(Debug, Clone)]
pub struct NewPasskey<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub credential_id: &'a [u8],
    pub name: &'a str,
    pub credential: &'a serde_json::Value,
    pub transports: &'a [String],
}

const COLUMNS: &str = "id, user_id, credential_id, name, credential, sign_count, backup_eligible, backup_state, transports, created_at, last_used_at";

fn from_row(r: &tokio_postgres::Row) -> PasskeyRecord {
    PasskeyRecord {
        id: r.get(0),
        user_id: r.get(1),
        credential_id: r.get(2),
        name: r.get(3),
        credential: r.get(4),
        sign_count: r.get(5),
        backup_eligible: r.get(6),
        backup_state: r.get(7),
        transports: r.get(8),
        created_at: r.get(9),
        last_used_at: r.get(10),
    }
}

/// What the list shows of a credential's JSON: `(counter, backup eligible, backup state)`.
pub fn credential_flags(credential: &serde_json::Value) -> (i64, bool, bool) {
    let cred = &credential["cred"];
    (
        cred["counter"].as_i64().unwrap_or(0),
        cred["backup_eligible"].as_bool().unwrap_or(false),
        cred["backup_state"].as_bool().unwrap_or(false),
    )
}

/// Stores a passkey; `false` when its credential id is registered already (to anyone).
pub async fn insert(
    client: &impl GenericClient,
    passkey: &NewPasskey<'_>,
) -> Result<bool, tokio_postgres::Error> {
    let (count, eligible, state) = credential_flags(passkey.credential);
    let n = client
        .execute(
            "INSERT INTO passkeys (id, user_id, credential_id, name, credential, sign_count, backup_eligible, backup_state, transports)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (credential_id) DO NOTHING",
            &[
                &passkey.id,
                &passkey.user_id,
                &passkey.credential_id,
                &passkey.name,
                passkey.credential,
                &count,
                &eligible,
                &state,
                &passkey.transports,
            ],
        )
        .await?;
    Ok(n == 1)
}

/// The passkeys of a user, oldest first.
pub async fn list(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Vec<PasskeyRecord>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE user_id = $1 ORDER BY created_at, id");
    Ok(client
        .query(&sql, &[&user_id])
        .await?
        .iter()
        .map(from_row)
        .collect())
}

/// How many passkeys a user has.
pub async fn count(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<i64, tokio_postgres::Error> {
    client
        .query_one(
            "SELECT count(*) FROM passkeys WHERE user_id = $1",
            &[&user_id],
        )
        .await
        .map(|r| r.get(0))
}

/// The credential ids a user has (excluded when they register another).
pub async fn credential_ids(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Vec<Vec<u8>>, tokio_postgres::Error> {
    Ok(client
        .query(
            "SELECT credential_id FROM passkeys WHERE user_id = $1",
            &[&user_id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Whether a credential id is registered (to anyone).
pub async fn exists(
    client: &impl GenericClient,
    credential_id: &[u8],
) -> Result<bool, tokio_postgres::Error> {
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM passkeys WHERE credential_id = $1)",
            &[&credential_id],
        )
        .await
        .map(|r| r.get(0))
}

/// The passkey with this credential id, locked for the sign-in that moves its counter
/// (two sign-ins with one assertion are serialised, and the second sees the counter
/// the first stored).
pub async fn lock_by_credential_id(
    client: &impl GenericClient,
    credential_id: &[u8],
) -> Result<Option<PasskeyRecord>, tokio_postgres::Error> {
    let sql = format!("SELECT {COLUMNS} FROM passkeys WHERE credential_id = $1 FOR UPDATE");
    Ok(client
        .query_opt(&sql, &[&credential_id])
        .await?
        .as_ref()
        .map(from_row))
}

/// After a sign-in: the credential as updated (counter, backup state) and its use.
pub async fn record_use(
    client: &impl GenericClient,
    id: Uuid,
    credential: &serde_json::Value,
) -> Result<(), tokio_postgres::Error> {
    let (count, eligible, state) = credential_flags(credential);
    client
        .execute(
            "UPDATE passkeys SET credential = $2, sign_count = $3, backup_eligible = $4,
                 backup_state = $5, last_used_at = now()
             WHERE id = $1",
            &[&id, credential, &count, &eligible, &state],
        )
        .await?;
    Ok(())
}

/// Renames one of a user's passkeys; `None` when the user has no such passkey.
pub async fn rename(
    client: &impl GenericClient,
    user_id: Uuid,
    id: Uuid,
    name: &str,
) -> Result<Option<PasskeyRecord>, tokio_postgres::Error> {
    let sql =
        format!("UPDATE passkeys SET name = $3 WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}");
    Ok(client
        .query_opt(&sql, &[&id, &user_id, &name])
        .await?
        .as_ref()
        .map(from_row))
}

/// Deletes one of a user's passkeys; `false` when the user has no such passkey.
pub async fn delete(
    client: &impl GenericClient,
    user_id: Uuid,
    id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "DELETE FROM passkeys WHERE id = $1 AND user_id = $2",
            &[&id, &user_id],
        )
        .await?;
    Ok(n == 1)
}
