//! Webhook endpoints, for admins: register, list, show, change (enable, rotate the
//! secret), delete; the delivery log, and sending deliveries again.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;
use serde::Deserialize;
use uuid::Uuid;

use crate::bodies::webhooks::{
    DeliveryListEnvelope, DeliveryView, RedeliverAnswer, RedeliverRequest, WebhookAnswer,
    WebhookEnvelope, WebhookListEnvelope, WebhookRequest,
};
use crate::bodies::ErrorEnvelope;
use crate::caller::{Caller, RequestContext};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::service::webhooks::{self, EndpointSpec, WithSecret};
use crate::service::ServiceError;
use crate::state::AppState;

fn spec(r: &WebhookRequest) -> EndpointSpec {
    EndpointSpec {
        url: r.url.clone(),
        description: r.description.clone(),
        event_types: r.event_types.clone(),
        enabled: r.enabled,
    }
}

/// An endpoint id from the path: anything that is not one names no endpoint (404 in
/// the envelope, not the extractor's plain-text 400).
fn endpoint_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ServiceError::NotFound("Webhook endpoint").into())
}

fn envelope(w: WithSecret) -> Json<WebhookEnvelope> {
    Json(WebhookEnvelope {
        success: true,
        data: WebhookAnswer::new(w.endpoint, w.secret.map(|s| s.expose_secret().to_owned())),
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/webhooks",
    tag = "webhooks",
    security(("bearer" = [])),
    request_body = WebhookRequest,
    responses(
        (status = 201, description = "Registered; its `secret` is in this answer only", body = WebhookEnvelope),
        (status = 400, description = "A field breaks a rule (an http(s) URL to an allowed address, known event types)", body = ErrorEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    ApiJson(request): ApiJson<WebhookRequest>,
) -> Result<Response, ApiError> {
    if request.rotate_secret.is_some() || request.secret_overlap_secs.is_some() {
        return Err(ServiceError::invalid("rotateSecret", "is for changes").into());
    }
    let created = webhooks::create(&app, Some(&caller), &context, spec(&request)).await?;
    Ok((StatusCode::CREATED, envelope(created)).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/webhooks",
    tag = "webhooks",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every endpoint, oldest first (no secrets)", body = WebhookListEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookListEnvelope>, ApiError> {
    let all = webhooks::list(&app, Some(&caller)).await?;
    Ok(Json(WebhookListEnvelope {
        success: true,
        data: all
            .into_iter()
            .map(|e| WebhookAnswer::new(e, None))
            .collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/webhooks/{id}",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint (no secret)", body = WebhookEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, description = "No such endpoint", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookEnvelope>, ApiError> {
    let id = endpoint_id(&id)?;
    let endpoint = webhooks::get(&app, Some(&caller), id).await?;
    Ok(envelope(WithSecret {
        endpoint,
        secret: None,
    }))
}

#[utoipa::path(
    patch,
    path = "/api/v1/admin/webhooks/{id}",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    request_body = WebhookRequest,
    responses(
        (status = 200, description = "Changed; with `rotateSecret`, the new `secret` is in this answer only", body = WebhookEnvelope),
        (status = 400, description = "A field breaks a rule", body = ErrorEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, description = "No such endpoint", body = ErrorEnvelope),
    )
)]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<WebhookRequest>,
) -> Result<Json<WebhookEnvelope>, ApiError> {
    let id = endpoint_id(&id)?;
    let rotate = match (request.rotate_secret, request.secret_overlap_secs) {
        (Some(true), overlap) => Some(overlap),
        (_, Some(_)) => {
            return Err(ServiceError::invalid("secretOverlapSecs", "goes with rotateSecret").into())
        }
        _ => None,
    };
    let changed =
        webhooks::update(&app, Some(&caller), &context, id, spec(&request), rotate).await?;
    Ok(envelope(changed))
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/webhooks/{id}",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 204, description = "Deleted with its deliveries; nothing more is sent"),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, description = "No such endpoint", body = ErrorEnvelope),
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = endpoint_id(&id)?;
    webhooks::delete(&app, Some(&caller), &context, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    state: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/webhooks/{id}/deliveries",
    tag = "webhooks",
    security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Endpoint id"),
        ("state" = Option<String>, Query, description = "pending | in_flight | delivered | failed"),
        ("before" = Option<i64>, Query, description = "`nextBefore` of the previous page"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1-100, default 20"),
    ),
    responses(
        (status = 200, description = "The delivery log, newest first: state, attempts, last status, latency", body = DeliveryListEnvelope),
        (status = 400, description = "A bad filter or limit", body = ErrorEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, description = "No such endpoint", body = ErrorEnvelope),
    )
)]
pub async fn deliveries(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveryQuery>,
) -> Result<Json<DeliveryListEnvelope>, ApiError> {
    let id = endpoint_id(&id)?;
    let limit = crate::service::page_limit(q.limit)?;
    let rows =
        webhooks::deliveries(&app, Some(&caller), id, q.state.as_deref(), q.before, limit).await?;
    let next_before = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|d| d.id))
        .flatten();
    Ok(Json(DeliveryListEnvelope {
        success: true,
        data: rows.into_iter().map(DeliveryView::from).collect(),
        next_before,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/webhooks/{id}/deliveries/{delivery}/redeliver",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), ("delivery" = i64, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued again; it goes out in order with its id", body = RedeliverAnswer),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, description = "No such endpoint, or no finished delivery of that id", body = ErrorEnvelope),
    )
)]
pub async fn redeliver_one(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&id)?;
    let delivery: i64 = delivery
        .parse()
        .map_err(|_| ApiError::from(ServiceError::NotFound("Delivery")))?;
    let queued =
        webhooks::redeliver(&app, Some(&caller), &context, id, Some(delivery), None).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RedeliverAnswer {
            success: true,
            queued,
        }),
    )
        .into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/webhooks/{id}/redeliver",
    tag = "webhooks",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    request_body = RedeliverRequest,
    responses(
        (status = 202, description = "The finished deliveries written in [from, to) are queued again", body = RedeliverAnswer),
        (status = 400, description = "`to` is not after `from`", body = ErrorEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, description = "No such endpoint", body = ErrorEnvelope),
    )
)]
pub async fn redeliver_range(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<RedeliverRequest>,
) -> Result<Response, ApiError> {
    let id = endpoint_id(&id)?;
    let queued = webhooks::redeliver(
        &app,
        Some(&caller),
        &context,
        id,
        None,
        Some((request.from, request.to)),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RedeliverAnswer {
            success: true,
            queued,
        }),
    )
        .into_response())
}
