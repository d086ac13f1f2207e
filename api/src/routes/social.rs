//! Social login's JSON side: upstream identity providers (admins), the providers a page
//! offers, the one-time code a frontend trades for a session, and the caller's linked
//! identities. (The browser round trip itself is `/oauth2/social/…`, in `hosted`.)

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::bodies::accounts::TokenAnswer;
use crate::bodies::social::{
    IdentityAnswer, IdentityListAnswer, IdentityProviderEnvelope, IdentityProviderListEnvelope,
    IdentityProviderRequest, IdentityProviderView, IdentityView, LinkIdentityRequest,
    OfferedProvider, OfferedProvidersAnswer, SocialExchangeRequest,
};
use crate::bodies::{ErrorEnvelope, MessageAnswer};
use crate::caller::{Caller, RequestContext};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::service::social::{self, ProviderSpec};
use crate::service::ServiceError;
use crate::state::AppState;

impl From<IdentityProviderRequest> for ProviderSpec {
    fn from(r: IdentityProviderRequest) -> Self {
        Self {
            id: r.id,
            name: r.name,
            issuer: r.issuer,
            client_id: r.client_id,
            client_secret: r.client_secret,
            scopes: r.scopes,
            claim_map: r.claim_map,
            enabled: r.enabled,
        }
    }
}

fn view(app: &AppState, p: common::store::identities::ProviderRecord) -> IdentityProviderView {
    let redirect = social::callback_url(app).unwrap_or_default();
    IdentityProviderView::new(p, redirect)
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/identity-providers",
    tag = "social",
    security(("bearer" = [])),
    request_body = IdentityProviderRequest,
    responses(
        (status = 201, description = "Added (its issuer answered discovery); register `redirectUri` at the provider", body = IdentityProviderEnvelope),
        (status = 400, description = "A field breaks a rule, the id is taken, or the issuer does not answer discovery", body = ErrorEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    request: Result<ApiJson<IdentityProviderRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiJson(r) = request?;
    let p = social::create_provider(&app, Some(&caller), &context, r.into()).await?;
    let data = view(&app, p);
    Ok((
        StatusCode::CREATED,
        Json(IdentityProviderEnvelope {
            success: true,
            data,
        }),
    )
        .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/identity-providers",
    tag = "social",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Every provider, enabled or not", body = IdentityProviderListEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<IdentityProviderListEnvelope>, ApiError> {
    let data = social::list_providers(&app, Some(&caller))
        .await?
        .into_iter()
        .map(|p| view(&app, p))
        .collect();
    Ok(Json(IdentityProviderListEnvelope {
        success: true,
        data,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/identity-providers/{id}",
    tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The provider's id")),
    responses(
        (status = 200, description = "The provider", body = IdentityProviderEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, description = "No such provider", body = ErrorEnvelope),
    )
)]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<IdentityProviderEnvelope>, ApiError> {
    let p = social::get_provider(&app, Some(&caller), &id).await?;
    Ok(Json(IdentityProviderEnvelope {
        success: true,
        data: view(&app, p),
    }))
}

#[utoipa::path(
    patch,
    path = "/api/v1/admin/identity-providers/{id}",
    tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The provider's id")),
    request_body = IdentityProviderRequest,
    responses(
        (status = 200, description = "Changed", body = IdentityProviderEnvelope),
        (status = 400, description = "A field breaks a rule, or a new issuer does not answer discovery", body = ErrorEnvelope),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, description = "No such provider", body = ErrorEnvelope),
    )
)]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    request: Result<ApiJson<IdentityProviderRequest>, ApiError>,
) -> Result<Json<IdentityProviderEnvelope>, ApiError> {
    let ApiJson(r) = request?;
    if r.id.as_ref().is_some_and(|new| *new != id) {
        return Err(ServiceError::invalid("id", "cannot change").into());
    }
    let p = social::update_provider(&app, Some(&caller), &context, &id, r.into()).await?;
    Ok(Json(IdentityProviderEnvelope {
        success: true,
        data: view(&app, p),
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/identity-providers/{id}",
    tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The provider's id")),
    responses(
        (status = 200, description = "Deleted, with every identity linked at it", body = MessageAnswer),
        (status = 401, description = "Not signed in", body = ErrorEnvelope),
        (status = 403, description = "Not an admin", body = ErrorEnvelope),
        (status = 404, description = "No such provider", body = ErrorEnvelope),
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<MessageAnswer>, ApiError> {
    social::delete_provider(&app, Some(&caller), &context, &id).await?;
    Ok(Json(MessageAnswer::new("Identity provider deleted")))
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/identity-providers",
    tag = "social",
    responses(
        (status = 200, description = "The providers sign-in pages offer (none while OIDC_ISSUER is unset)", body = OfferedProvidersAnswer),
        (status = 503, description = "A dependency is down", body = ErrorEnvelope),
    )
)]
pub async fn offered(
    State(app): State<AppState>,
) -> Result<Json<OfferedProvidersAnswer>, ApiError> {
    let issuer = app
        .accounts
        .oidc
        .as_ref()
        .map(|p| p.issuer.clone())
        .unwrap_or_default();
    let data = social::offered(&app)
        .await?
        .into_iter()
        .map(|p| OfferedProvider {
            start_url: format!("{issuer}/oauth2/social/{}", p.id),
            id: p.id,
            name: p.name,
        })
        .collect();
    Ok(Json(OfferedProvidersAnswer {
        success: true,
        data,
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/social/exchange",
    tag = "social",
    request_body = SocialExchangeRequest,
    responses(
        (status = 200, description = "A session for the account the upstream identity signed in", body = TokenAnswer),
        (status = 400, description = "INVALID_OR_EXPIRED_TOKEN: the code is unknown, used or older than 60 seconds", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down", body = ErrorEnvelope),
    )
)]
pub async fn exchange(
    State(app): State<AppState>,
    context: RequestContext,
    request: Result<ApiJson<SocialExchangeRequest>, ApiError>,
) -> Result<Json<TokenAnswer>, ApiError> {
    let ApiJson(r) = request?;
    let tokens = social::redeem(&app, &context, r.code.as_deref()).await?;
    Ok(Json(tokens.into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/identities",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)")),
    responses(
        (status = 200, description = "The upstream identities linked to the user's account", body = IdentityListAnswer),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
        (status = 404, description = "No such user", body = ErrorEnvelope),
    )
)]
pub async fn identities_of_user(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<IdentityListAnswer>, ApiError> {
    let id = crate::service::users::parse_user_id(&id)?;
    Ok(Json(identity_list(
        social::identities_of_user(&app, &caller, id).await?,
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/identities",
    tag = "social",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The upstream identities linked to the caller's account", body = IdentityListAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
    )
)]
pub async fn identities(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<IdentityListAnswer>, ApiError> {
    Ok(Json(identity_list(
        social::identities_of(&app, &caller).await?,
    )))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/identities",
    tag = "social",
    security(("bearer" = [])),
    request_body = LinkIdentityRequest,
    responses(
        (status = 201, description = "Linked: the caller proved the account whose address the provider vouched for", body = IdentityAnswer),
        (status = 400, description = "The link token is unknown, used, expired, for another account's address, or its identity is linked already", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
    )
)]
pub async fn link(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    request: Result<ApiJson<LinkIdentityRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiJson(r) = request?;
    let record = social::link_for_caller(&app, &caller, &context, r.link_token.as_deref()).await?;
    let answer = IdentityAnswer {
        success: true,
        data: record.into(),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[utoipa::path(
    delete,
    path = "/api/v1/auth/identities/{id}",
    tag = "social",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Identity id (UUID)")),
    responses(
        (status = 200, description = "Unlinked: the identity signs in no more", body = MessageAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 404, description = "The caller has no such identity", body = ErrorEnvelope),
    )
)]
pub async fn unlink(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<MessageAnswer>, ApiError> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ServiceError::NotFound("Identity"))?;
    social::unlink(&app, &caller, &context, id).await?;
    Ok(Json(MessageAnswer::new("Identity unlinked")))
}

fn identity_list(records: Vec<common::store::identities::IdentityRecord>) -> IdentityListAnswer {
    IdentityListAnswer {
        success: true,
        data: records.into_iter().map(IdentityView::from).collect(),
    }
}
