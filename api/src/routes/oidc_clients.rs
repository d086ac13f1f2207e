//! The OpenID Connect client registry, for admins: register, list, show, change (and
//! rotate a secret), delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use secrecy::ExposeSecret;

use crate::bodies::oidc::{ClientAnswer, ClientEnvelope, ClientListEnvelope, ClientRequest};
use crate::bodies::ErrorEnvelope;
use crate::caller::{Caller, RequestContext};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::service::oidc::clients::{self, ClientSpec, WithSecret};
use crate::state::AppState;

fn spec(r: ClientRequest) -> (ClientSpec, bool) {
    (
        ClientSpec {
            name: r.name,
            confidential: r.confidential,
            redirect_uris: r.redirect_uris,
            post_logout_redirect_uris: r.post_logout_redirect_uris,
            scopes: r.scopes,
            grant_types: r.grant_types,
            first_party: r.first_party,
            id_token_alg: r.id_token_alg,
            access_token_ttl_secs: r.access_token_ttl_secs,
            refresh_token_ttl_secs: r.refresh_token_ttl_secs,
        },
        r.rotate_secret.unwrap_or(false),
    )
}

fn envelope(w: WithSecret) -> Json<ClientEnvelope> {
    Json(ClientEnvelope {
        success: true,
        data: ClientAnswer::new(w.client, w.secret.map(|s| s.expose_secret().to_owned())),
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/oidc/clients",
    tag = "oidc",
    request_body = ClientRequest,
    responses(
        (status = 201, description = "Registered; a confidential client's `clientSecret` is in this answer only", body = ClientEnvelope),
        (status = 400, description = "A field breaks a rule (redirect URIs https or loopback http, known scopes and grants, lifetimes)", body = ErrorEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    ApiJson(request): ApiJson<ClientRequest>,
) -> Result<Response, ApiError> {
    let (spec, rotate) = spec(request);
    if rotate {
        return Err(crate::service::ServiceError::invalid(
            "rotateSecret",
            "is for changes; a new client gets a secret anyway",
        )
        .into());
    }
    let created = clients::create(&app, Some(&caller), &context, spec).await?;
    Ok((StatusCode::CREATED, envelope(created)).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/oidc/clients",
    tag = "oidc",
    responses(
        (status = 200, description = "Every registered client, oldest first (no secrets)", body = ClientListEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<ClientListEnvelope>, ApiError> {
    let all = clients::list(&app, Some(&caller)).await?;
    Ok(Json(ClientListEnvelope {
        success: true,
        data: all
            .into_iter()
            .map(|c| ClientAnswer::new(c, None))
            .collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/oidc/clients/{id}",
    tag = "oidc",
    params(("id" = String, Path, description = "Client id")),
    responses(
        (status = 200, description = "The client (no secret)", body = ClientEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, description = "No such client", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ClientEnvelope>, ApiError> {
    let client = clients::get(&app, Some(&caller), &id).await?;
    Ok(envelope(WithSecret {
        client,
        secret: None,
    }))
}

#[utoipa::path(
    patch,
    path = "/api/v1/admin/oidc/clients/{id}",
    tag = "oidc",
    params(("id" = String, Path, description = "Client id")),
    request_body = ClientRequest,
    responses(
        (status = 200, description = "Changed; with `rotateSecret`, the new `clientSecret` is in this answer only", body = ClientEnvelope),
        (status = 400, description = "A field breaks a rule", body = ErrorEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, description = "No such client", body = ErrorEnvelope),
    )
)]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<ClientRequest>,
) -> Result<Json<ClientEnvelope>, ApiError> {
    let (spec, rotate) = spec(request);
    let changed = clients::update(&app, Some(&caller), &context, &id, spec, rotate).await?;
    Ok(envelope(changed))
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/oidc/clients/{id}",
    tag = "oidc",
    params(("id" = String, Path, description = "Client id")),
    responses(
        (status = 204, description = "Deleted; every session opened for it has ended"),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, description = "No such client", body = ErrorEnvelope),
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    clients::delete(&app, Some(&caller), &context, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
