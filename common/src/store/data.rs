//! Per-user key/value data: every statement takes the owner's id, so one
//! user can never reach another's items.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct DataItem {
    pub key: String,
    pub value: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A row as an item. `try_get`: the value is the user's JSON, so a value the decoder
/// cannot read back is an error, never a panic.
fn item(r: &tokio_postgres::Row) -> Result<DataItem, tokio_postgres::Error> {
    Ok(DataItem {
        key: r.try_get(0)?,
        value: r.try_get(1)?,
        created_at: r.try_get(2)?,
        updated_at: r.try_get(3)?,
    })
}

/// Inserts an item; `None` when the owner already has this key.
pub async fn create(
    client: &impl GenericClient,
    owner: Uuid,
    key: &str,
    value: &serde_json::Value,
) -> Result<Option<DataItem>, tokio_postgres::Error> {
    client
        .query_opt(
            "INSERT INTO data_store (user_id, key, value) VALUES ($1, $2, $3)
             ON CONFLICT (user_id, key) DO NOTHING
             RETURNING key, value, created_at, updated_at",
            &[&owner, &key, value],
        )
        .await?
        .as_ref()
        .map(item)
        .transpose()
}

pub async fn get(
    client: &impl GenericClient,
    owner: Uuid,
    key: &str,
) -> Result<Option<DataItem>, tokio_postgres::Error> {
    client
        .query_opt(
            "SELECT key, value, created_at, updated_at FROM data_store WHERE user_id = $1 AND key = $2",
            &[&owner, &key],
        )
        .await?
        .as_ref()
        .map(item)
        .transpose()
}

/// Replaces the value of an existing item; `None` when there is none.
pub async fn update(
    client: &impl GenericClient,
    owner: Uuid,
    key: &str,
    value: &serde_json::Value,
) -> Result<Option<DataItem>, tokio_postgres::Error> {
    client
        .query_opt(
            "UPDATE data_store SET value = $3, updated_at = now() WHERE user_id = $1 AND key = $2
             RETURNING key, value, created_at, updated_at",
            &[&owner, &key, value],
        )
        .await?
        .as_ref()
        .map(item)
        .transpose()
}

pub async fn delete(
    client: &impl GenericClient,
    owner: Uuid,
    key: &str,
) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .execute(
            "DELETE FROM data_store WHERE user_id = $1 AND key = $2",
            &[&owner, &key],
        )
        .await?
        == 1)
}

/// The owner's items in key order, a page at a time (`after` is the last key seen).
pub async fn list(
    client: &impl GenericClient,
    owner: Uuid,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<DataItem>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT key, value, created_at, updated_at FROM data_store
             WHERE user_id = $1 AND ($2::text IS NULL OR key > $2)
             ORDER BY key LIMIT $3",
            &[&owner, &after, &limit],
        )
        .await?;
    rows.iter().map(item).collect()
}

/// What an owner stores: item count and bytes (keys plus values as stored).
pub async fn usage(
    client: &impl GenericClient,
    owner: Uuid,
) -> Result<(i64, i64), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*), COALESCE(sum(octet_length(key) + octet_length(value::text)), 0)::bigint
             FROM data_store WHERE user_id = $1",
            &[&owner],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
