//! Per-user key/value data (seed 003): `POST /api/data`, `GET /api/data`,
//! `GET|PUT|DELETE /api/data/{key}`. Every statement is scoped to the caller: there is
//! no way to name another user's item. Changes are audited (the key, never the value).

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::data_store;
use common::registration::FieldError;
use common::users;
use serde::Deserialize;
use serde_json::json;

use crate::auth::caller::{Caller, RequestContext};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::routes::auth::{actor, unavailable};
use crate::routes::users::page_limit;
use crate::state::AppState;

pub const MAX_KEY_CHARS: usize = 128;
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Body limit of the data routes: the largest value plus its key and the JSON around.
pub const BODY_LIMIT_BYTES: usize = MAX_VALUE_BYTES + 4 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateItem {
    key: Option<String>,
    value: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceItem {
    value: Option<serde_json::Value>,
}

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

fn validate_value(value: Option<serde_json::Value>) -> Result<serde_json::Value, FieldError> {
    let Some(value) = value else {
        return Err(FieldError::new("value", "is required (any JSON but null)"));
    };
    let size = serde_json::to_vec(&value).map_or(usize::MAX, |v| v.len());
    if size > MAX_VALUE_BYTES {
        return Err(FieldError::new("value", "must be at most 64 KiB of JSON"));
    }
    Ok(value)
}

fn item_answer(status: StatusCode, item: &data_store::DataItem) -> Response {
    (status, Json(json!({ "success": true, "data": item }))).into_response()
}

#[utoipa::path(
    post,
    path = "/api/data",
    tag = "data",
    security(("bearer" = [])),
    request_body = crate::openapi::DataBody,
    responses(
        (status = 201, description = "Stored; Location names the item", content_type = "application/json"),
        (status = 400, description = "key 1-128 characters, value any JSON up to 64 KiB", body = crate::openapi::ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = crate::openapi::ErrorEnvelope),
        (status = 409, description = "DATA_KEY_EXISTS", body = crate::openapi::ErrorEnvelope),
        (status = 413, description = "Body too large", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    body: Result<ApiJson<CreateItem>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiJson(body) = body?;
    let key = validate_key(body.key.as_deref());
    let value = validate_value(body.value);
    let (key, value) = match (key, value) {
        (Ok(k), Ok(v)) => (k, v),
        (k, v) => {
            return Err(ApiError::Validation(
                k.err().into_iter().chain(v.err()).collect(),
            ))
        }
    };
    let mut client = app.db().await?;
    let tx = client.transaction().await.map_err(unavailable)?;
    let item = data_store::create(&*tx, caller.id, &key, &value)
        .await
        .map_err(unavailable)?
        .ok_or(ApiError::DataKeyExists)?;
    users::audit(
        &*tx,
        caller.id,
        "data.created",
        &actor(&context, &caller),
        json!({ "key": key }),
    )
    .await
    .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    let mut response = item_answer(StatusCode::CREATED, &item);
    let location = format!(
        "/api/data/{}",
        percent_encoding::utf8_percent_encode(&key, percent_encoding::NON_ALPHANUMERIC)
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/data",
    tag = "data",
    security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, description = "1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page (the last key)"),
    ),
    responses(
        (status = 200, description = "The caller's items in key order", content_type = "application/json"),
        (status = 401, description = "No or invalid access token", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = page_limit(params.limit)?;
    let client = app.db().await?;
    let mut items = data_store::list(&**client, caller.id, params.cursor.as_deref(), limit + 1)
        .await
        .map_err(unavailable)?;
    let more = items.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = more.then(|| items.last().map(|i| i.key.clone())).flatten();
    Ok(Json(json!({
        "success": true,
        "count": items.len(),
        "data": items,
        "pagination": { "limit": limit, "nextCursor": next_cursor },
    })))
}

#[utoipa::path(
    get,
    path = "/api/data/{key}",
    tag = "data",
    security(("bearer" = [])),
    params(("key" = String, Path, description = "The item's key")),
    responses(
        (status = 200, description = "The item", content_type = "application/json"),
        (status = 401, description = "No or invalid access token", body = crate::openapi::ErrorEnvelope),
        (status = 404, description = "The caller has no such item", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    let client = app.db().await?;
    let item = data_store::get(&**client, caller.id, &key)
        .await
        .map_err(unavailable)?
        .ok_or(ApiError::NotFound("Data item"))?;
    Ok(item_answer(StatusCode::OK, &item))
}

#[utoipa::path(
    put,
    path = "/api/data/{key}",
    tag = "data",
    security(("bearer" = [])),
    params(("key" = String, Path, description = "The item's key")),
    request_body = crate::openapi::DataValueBody,
    responses(
        (status = 200, description = "The updated item", content_type = "application/json"),
        (status = 400, description = "value missing or over 64 KiB", body = crate::openapi::ErrorEnvelope),
        (status = 404, description = "The caller has no such item", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn replace(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(key): Path<String>,
    body: Result<ApiJson<ReplaceItem>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiJson(body) = body?;
    let value = validate_value(body.value).map_err(|e| ApiError::Validation(vec![e]))?;
    let mut client = app.db().await?;
    let tx = client.transaction().await.map_err(unavailable)?;
    let item = data_store::update(&*tx, caller.id, &key, &value)
        .await
        .map_err(unavailable)?
        .ok_or(ApiError::NotFound("Data item"))?;
    users::audit(
        &*tx,
        caller.id,
        "data.updated",
        &actor(&context, &caller),
        json!({ "key": key }),
    )
    .await
    .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    Ok(item_answer(StatusCode::OK, &item))
}

#[utoipa::path(
    delete,
    path = "/api/data/{key}",
    tag = "data",
    security(("bearer" = [])),
    params(("key" = String, Path, description = "The item's key")),
    responses(
        (status = 200, description = "Deleted", body = crate::openapi::MessageAnswer),
        (status = 404, description = "The caller has no such item", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(key): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut client = app.db().await?;
    let tx = client.transaction().await.map_err(unavailable)?;
    if !data_store::delete(&*tx, caller.id, &key)
        .await
        .map_err(unavailable)?
    {
        return Err(ApiError::NotFound("Data item"));
    }
    users::audit(
        &*tx,
        caller.id,
        "data.deleted",
        &actor(&context, &caller),
        json!({ "key": key }),
    )
    .await
    .map_err(unavailable)?;
    tx.commit().await.map_err(unavailable)?;
    Ok(Json(
        json!({ "success": true, "message": "Data item deleted" }),
    ))
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
}
