//! Per-user key/value data: `POST /api/data`, `GET /api/data`,
//! `GET|PUT|DELETE /api/data/{key}`, always the caller's own items.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

use crate::bodies::data::{
    CreateItemRequest, DataItemAnswer, DataItemView, DataListAnswer, ReplaceItemRequest,
};
use crate::bodies::{ErrorEnvelope, MessageAnswer, Pagination};
use crate::caller::{Caller, RequestContext};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::respond;
use crate::service::data::{self, MAX_VALUE_BYTES};
use crate::state::AppState;

/// Body limit of the data routes: the largest value plus its key and the JSON around.
pub const BODY_LIMIT_BYTES: usize = MAX_VALUE_BYTES + 4 * 1024;

fn item_answer(item: common::store::data::DataItem) -> DataItemAnswer {
    DataItemAnswer {
        success: true,
        data: DataItemView::from(item),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/data",
    tag = "data",
    security(("bearer" = [])),
    request_body = CreateItemRequest,
    responses(
        (status = 201, description = "Stored; Location names the item", body = DataItemAnswer),
        (status = 400, description = "key 1-128 characters, value any JSON up to 64 KiB", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 409, description = "DATA_KEY_EXISTS", body = ErrorEnvelope),
        (status = 413, description = "Body too large", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    body: Result<ApiJson<CreateItemRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiJson(body) = body?;
    let item = data::create_item(&app, &caller, &context, body.key, body.value).await?;
    let location = format!(
        "{}/data/{}",
        crate::versioning::CANONICAL,
        percent_encoding::utf8_percent_encode(&item.key, percent_encoding::NON_ALPHANUMERIC)
    );
    Ok(respond::with_status_and_header(
        StatusCode::CREATED,
        item_answer(item),
        header::LOCATION,
        &location,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<i64>,
    cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/data",
    tag = "data",
    security(("bearer" = [])),
    params(
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1-100, default 20"),
        ("cursor" = Option<String>, Query, description = "`nextCursor` of the previous page (the last key)"),
    ),
    responses(
        (status = 200, description = "The caller's items in key order", body = DataListAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<DataListAnswer>, ApiError> {
    let page = data::list_items(&app, &caller, params.limit, params.cursor.as_deref()).await?;
    Ok(Json(DataListAnswer {
        success: true,
        count: page.rows.len(),
        pagination: Pagination {
            limit: page.limit,
            offset: None,
            next_cursor: page.next_cursor,
        },
        data: page.rows.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/data/{key}",
    tag = "data",
    security(("bearer" = [])),
    params(("key" = String, Path, description = "The item's key")),
    responses(
        (status = 200, description = "The item", body = DataItemAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 404, description = "The caller has no such item", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<DataItemAnswer>, ApiError> {
    Ok(Json(item_answer(
        data::get_item(&app, &caller, &key).await?,
    )))
}

#[utoipa::path(
    put,
    path = "/api/v1/data/{key}",
    tag = "data",
    security(("bearer" = [])),
    params(("key" = String, Path, description = "The item's key")),
    request_body = ReplaceItemRequest,
    responses(
        (status = 200, description = "The updated item", body = DataItemAnswer),
        (status = 400, description = "value missing or over 64 KiB", body = ErrorEnvelope),
        (status = 404, description = "The caller has no such item", body = ErrorEnvelope),
    )
)]
pub async fn replace(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(key): Path<String>,
    body: Result<ApiJson<ReplaceItemRequest>, ApiError>,
) -> Result<Json<DataItemAnswer>, ApiError> {
    let ApiJson(body) = body?;
    let item = data::replace_item(&app, &caller, &context, &key, body.value).await?;
    Ok(Json(item_answer(item)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/data/{key}",
    tag = "data",
    security(("bearer" = [])),
    params(("key" = String, Path, description = "The item's key")),
    responses(
        (status = 200, description = "Deleted", body = MessageAnswer),
        (status = 404, description = "The caller has no such item", body = ErrorEnvelope),
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(key): Path<String>,
) -> Result<Json<MessageAnswer>, ApiError> {
    data::delete_item(&app, &caller, &context, &key).await?;
    Ok(Json(MessageAnswer::new("Data item deleted")))
}
