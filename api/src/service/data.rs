//! Per-user key/value data. Every statement is scoped to the caller: there is no way
//! to name another user's item. Changes are audited (the key, never the value).

use common::domain::registration::FieldError;
use common::store::data::{self as data_store, DataItem};
use common::store::users;
use serde_json::json;

use super::{accounts, page_limit, Page, ServiceError};
use crate::caller::{Caller, RequestContext};
use crate::state::AppState;

pub const MAX_KEY_CHARS: usize = 128;
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The most value bytes one page of `GET /api/data` carries.
pub const PAGE_MAX_BYTES: usize = 256 * 1024;

fn validate_key(key: Option<&str>) -> Result<String, FieldError> {
    let Some(key) = key else {
        return Err(FieldError::new("key", "is required"));
    };
    let chars = key.chars().count();
    if chars == 0 || chars > MAX_KEY_CHARS {
        return Err(FieldError::new(
            "key",
            format!("must be 1-{MAX_KEY_CHARS} characters"),
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(FieldError::new(
            "key",
            "must not contain control characters",
        ));
    }
    Ok(key.to_owned())
}

/// A key named in a path or a cursor: the same rules as a stored key.
fn path_key(field: &str, key: &str) -> Result<(), ServiceError> {
    validate_key(Some(key))
        .map(drop)
        .map_err(|e| ServiceError::invalid(field, e.message))
}

/// PostgreSQL cannot store U+0000 in text or JSONB; refuse it up front.
fn holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(holds_nul),
        serde_json::Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        _ => false,
    }
}

fn validate_value(value: Option<serde_json::Value>) -> Result<serde_json::Value, FieldError> {
    let Some(value) = value else {
        return Err(FieldError::new("value", "is required (any JSON but null)"));
    };
    if holds_nul(&value) {
        return Err(FieldError::new(
            "value",
            "must not contain U+0000 characters",
        ));
    }
    let size = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len());
    if size > MAX_VALUE_BYTES {
        return Err(FieldError::new("value", "must be at most 64 KiB of JSON"));
    }
    Ok(value)
}

/// Checks the caller's usage after a write, in its transaction: over the quota, the
/// error drops the transaction and the write with it. `ensure_current` locked nothing,
/// so the owner's row is locked here first: concurrent writes are counted one by one.
async fn within_quota(
    app: &AppState,
    tx: &deadpool_postgres::Transaction<'_>,
    caller: &Caller,
) -> Result<(), ServiceError> {
    users::lock_by_id(&**tx, caller.id).await?;
    let (items, bytes) = data_store::usage(&**tx, caller.id).await?;
    let (max_items, max_bytes) = app.accounts.data_quota;
    if items > max_items || bytes > max_bytes {
        tracing::info!(event = "data_quota_exceeded", user_id = %caller.id, items, bytes);
        return Err(ServiceError::DataQuotaExceeded);
    }
    Ok(())
}

/// Writes one audit row about `key` in the change's transaction.
async fn audit_key(
    tx: &deadpool_postgres::Transaction<'_>,
    caller: &Caller,
    context: &RequestContext,
    action: &str,
    key: &str,
) -> Result<(), ServiceError> {
    let audit = context.audit(Some(caller.id));
    Ok(users::audit(&**tx, caller.id, action, &audit, json!({ "key": key })).await?)
}

/// Stores a new item; an existing key is `DataKeyExists` (use replace).
pub async fn create_item(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    key: Option<String>,
    value: Option<serde_json::Value>,
) -> Result<DataItem, ServiceError> {
    let (key, value) = match (validate_key(key.as_deref()), validate_value(value)) {
        (Ok(k), Ok(v)) => (k, v),
        (k, v) => {
            return Err(ServiceError::Invalid(
                k.err().into_iter().chain(v.err()).collect(),
            ))
        }
    };
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    accounts::ensure_current(&*tx, caller).await?;
    let item = data_store::create(&*tx, caller.id, &key, &value)
        .await?
        .ok_or(ServiceError::DataKeyExists)?;
    within_quota(app, &tx, caller).await?;
    audit_key(&tx, caller, context, "data.created", &key).await?;
    tx.commit().await?;
    Ok(item)
}

/// The caller's items in key order; the cursor is the last key of the previous page.
pub async fn list_items(
    app: &AppState,
    caller: &Caller,
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<DataItem>, ServiceError> {
    let limit = page_limit(limit)?;
    if let Some(cursor) = cursor {
        path_key("cursor", cursor)?;
    }
    let client = app.db().await?;
    let mut items = data_store::list(&**client, caller.id, cursor, limit + 1).await?;
    // A page is bounded in bytes too: it ends before the item that would pass
    // `PAGE_MAX_BYTES` (but always holds one), and the next page starts there.
    let mut bytes = 0;
    let fits = items
        .iter()
        .position(|i| {
            bytes += i.key.len() + i.value.to_string().len();
            bytes > PAGE_MAX_BYTES
        })
        .map_or(items.len(), |at| at.max(1));
    let full = usize::try_from(limit).unwrap_or(usize::MAX);
    if fits <= full && fits < items.len() {
        items.truncate(fits);
        let next_cursor = items.last().map(|i| i.key.clone());
        return Ok(Page {
            rows: items,
            limit,
            offset: None,
            next_cursor,
        });
    }
    Ok(Page::from_fetch(items, limit, None, |i| i.key.clone()))
}

pub async fn get_item(
    app: &AppState,
    caller: &Caller,
    key: &str,
) -> Result<DataItem, ServiceError> {
    let client = app.db().await?;
    data_store::get(&**client, caller.id, key)
        .await?
        .ok_or(ServiceError::NotFound("Data item"))
}

/// Replaces the value of an existing item.
pub async fn replace_item(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    key: &str,
    value: Option<serde_json::Value>,
) -> Result<DataItem, ServiceError> {
    path_key("key", key)?;
    let value = validate_value(value).map_err(|e| ServiceError::Invalid(vec![e]))?;
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    accounts::ensure_current(&*tx, caller).await?;
    let item = data_store::update(&*tx, caller.id, key, &value)
        .await?
        .ok_or(ServiceError::NotFound("Data item"))?;
    within_quota(app, &tx, caller).await?;
    audit_key(&tx, caller, context, "data.updated", key).await?;
    tx.commit().await?;
    Ok(item)
}

pub async fn delete_item(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    key: &str,
) -> Result<(), ServiceError> {
    path_key("key", key)?;
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    accounts::ensure_current(&*tx, caller).await?;
    if !data_store::delete(&*tx, caller.id, key).await? {
        return Err(ServiceError::NotFound("Data item"));
    }
    audit_key(&tx, caller, context, "data.deleted", key).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_1_to_128_characters() {
        assert!(validate_key(Some("")).is_err());
        assert!(validate_key(Some(&"k".repeat(129))).is_err());
        assert!(validate_key(Some(&"ü".repeat(128))).is_ok());
        assert!(validate_key(None).is_err());
    }

    #[test]
    fn values_over_64_kib_are_refused() {
        let big = json!("x".repeat(MAX_VALUE_BYTES));
        assert!(validate_value(Some(big)).is_err());
        assert!(validate_value(Some(json!({"a": [1, 2, 3]}))).is_ok());
        assert!(validate_value(None).is_err());
    }

    #[test]
    fn a_nul_anywhere_in_a_value_is_refused() {
        assert!(validate_value(Some(json!({"a": ["ok", "x\u{0}"]}))).is_err());
        assert!(validate_value(Some(json!({"k\u{0}": 1}))).is_err());
        assert!(validate_value(Some(json!({"a": "fine"}))).is_ok());
    }
}
