//! Passkeys: add, list, rename and delete them (signed in); sign in with one; sign up
//! with one instead of a password; drop the password once a passkey exists.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::bodies::accounts::TokenAnswer;
use crate::bodies::passkeys::{
    PasskeyAnswer, PasskeyCeremonyRequest, PasskeyListAnswer, PasskeyOptionsAnswer,
    PasskeySignUpOptionsRequest, PasskeySignUpRequest, PasskeyView, RenamePasskeyRequest,
};
use crate::bodies::registration::RegistrationAccepted;
use crate::bodies::{ErrorEnvelope, MessageAnswer};
use crate::caller::{Caller, RequestContext};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::respond;
use crate::service::passkeys::{self, CeremonyOptions};
use crate::state::AppState;

impl From<CeremonyOptions> for PasskeyOptionsAnswer {
    fn from(c: CeremonyOptions) -> Self {
        Self {
            success: true,
            ceremony_id: c.ceremony_id,
            expires_in: c.expires_in.as_secs(),
            options: c.options,
        }
    }
}

fn passkey_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map_err(|_| ApiError::from(crate::service::ServiceError::NotFound("Passkey")))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/passkeys/options",
    tag = "passkeys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Options for `navigator.credentials.create()`; finish with `POST /api/v1/auth/passkeys` within `expiresIn` seconds, from the same session", body = PasskeyOptionsAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down", body = ErrorEnvelope),
    )
)]
pub async fn enrolment_options(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<PasskeyOptionsAnswer>, ApiError> {
    Ok(Json(passkeys::begin_enrolment(&app, &caller).await?.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/passkeys",
    tag = "passkeys",
    security(("bearer" = [])),
    request_body = PasskeyCeremonyRequest,
    responses(
        (status = 201, description = "The passkey is added to the caller's account", body = PasskeyAnswer),
        (status = 400, description = "Unknown, used or expired ceremony, a ceremony of another session, or an attestation that does not verify (origin, RP id, challenge, user verification)", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down", body = ErrorEnvelope),
    )
)]
pub async fn add(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    request: Result<ApiJson<PasskeyCeremonyRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let ApiJson(r) = request?;
    let record = passkeys::finish_enrolment(
        &app,
        &caller,
        &context,
        r.ceremony_id.as_deref(),
        r.credential,
        r.name.as_deref(),
    )
    .await?;
    let answer = PasskeyAnswer {
        success: true,
        data: record.into(),
    };
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/passkeys",
    tag = "passkeys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's passkeys, oldest first", body = PasskeyListAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<PasskeyListAnswer>, ApiError> {
    Ok(Json(list_answer(passkeys::list(&app, &caller).await?)))
}

#[utoipa::path(
    get,
    path = "/api/v1/users/{id}/passkeys",
    tag = "users",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)")),
    responses(
        (status = 200, description = "The user's passkeys, oldest first", body = PasskeyListAnswer),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
        (status = 404, description = "No such user", body = ErrorEnvelope),
    )
)]
pub async fn list_of_user(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<PasskeyListAnswer>, ApiError> {
    let id = crate::service::users::parse_user_id(&id)?;
    Ok(Json(list_answer(
        passkeys::list_of_user(&app, &caller, id).await?,
    )))
}

#[utoipa::path(
    patch,
    path = "/api/v1/auth/passkeys/{id}",
    tag = "passkeys",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Passkey id (UUID)")),
    request_body = RenamePasskeyRequest,
    responses(
        (status = 200, description = "Renamed", body = PasskeyAnswer),
        (status = 400, description = "Name missing or not 1-100 characters", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 404, description = "The caller has no such passkey", body = ErrorEnvelope),
    )
)]
pub async fn rename(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
    request: Result<ApiJson<RenamePasskeyRequest>, ApiError>,
) -> Result<Json<PasskeyAnswer>, ApiError> {
    let id = passkey_id(&id)?;
    let ApiJson(r) = request?;
    let record = passkeys::rename(&app, &caller, &context, id, r.name.as_deref()).await?;
    Ok(Json(PasskeyAnswer {
        success: true,
        data: record.into(),
    }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/auth/passkeys/{id}",
    tag = "passkeys",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Passkey id (UUID)")),
    responses(
        (status = 200, description = "Deleted; it signs in no more", body = MessageAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 404, description = "The caller has no such passkey", body = ErrorEnvelope),
        (status = 409, description = "LAST_SIGN_IN_METHOD: the account has no password and this is its last passkey", body = ErrorEnvelope),
    )
)]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
    Path(id): Path<String>,
) -> Result<Json<MessageAnswer>, ApiError> {
    let id = passkey_id(&id)?;
    passkeys::delete(&app, &caller, &context, id).await?;
    Ok(Json(MessageAnswer::new("Passkey deleted")))
}

#[utoipa::path(
    delete,
    path = "/api/v1/auth/password",
    tag = "passkeys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account has no password any more: it signs in with its passkeys (a password-reset mail can set one again)", body = MessageAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 409, description = "LAST_SIGN_IN_METHOD: the account has no passkey", body = ErrorEnvelope),
    )
)]
pub async fn remove_password(
    State(app): State<AppState>,
    caller: Caller,
    context: RequestContext,
) -> Result<Json<MessageAnswer>, ApiError> {
    passkeys::remove_password(&app, &caller, &context).await?;
    Ok(Json(MessageAnswer::new("Password removed")))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/passkey/login/options",
    tag = "passkeys",
    responses(
        (status = 200, description = "Options for `navigator.credentials.get()` (any of the site's passkeys; `mediation: conditional` for the login field's autofill)", body = PasskeyOptionsAnswer),
        (status = 429, description = "Rate limited", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down", body = ErrorEnvelope),
    )
)]
pub async fn sign_in_options(
    State(app): State<AppState>,
) -> Result<Json<PasskeyOptionsAnswer>, ApiError> {
    Ok(Json(passkeys::begin_sign_in(&app).await?.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/passkey/login",
    tag = "passkeys",
    request_body = PasskeyCeremonyRequest,
    responses(
        (status = 200, description = "A session: the passkey (with user verification) is both factors, so no second-factor step follows", body = TokenAnswer),
        (status = 400, description = "ceremonyId or credential missing or malformed", body = ErrorEnvelope),
        (status = 401, description = "PASSKEY_REJECTED: unknown passkey, bad signature, other origin or RP id, a counter that went back, a used or expired challenge", body = ErrorEnvelope),
        (status = 403, description = "EMAIL_NOT_VERIFIED (REQUIRE_VERIFIED_EMAIL)", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down", body = ErrorEnvelope),
    )
)]
pub async fn sign_in(
    State(app): State<AppState>,
    context: RequestContext,
    request: Result<ApiJson<PasskeyCeremonyRequest>, ApiError>,
) -> Result<Json<TokenAnswer>, ApiError> {
    let result = match request {
        Ok(ApiJson(r)) => {
            passkeys::finish_sign_in(&app, &context, r.ceremony_id.as_deref(), r.credential)
                .await
                .map_err(ApiError::from)
        }
        Err(e) => Err(e),
    };
    let outcome = match &result {
        Ok(_) => "passkey",
        Err(e) => e.code(),
    };
    app.metrics.logins.with_label_values(&[outcome]).inc();
    Ok(Json(result?.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/passkey/register/options",
    tag = "passkeys",
    request_body = PasskeySignUpOptionsRequest,
    responses(
        (status = 200, description = "Options for `navigator.credentials.create()`: the new account's passkey; finish with `POST /api/v1/auth/passkey/register`", body = PasskeyOptionsAnswer),
        (status = 400, description = "Email missing or malformed", body = ErrorEnvelope),
        (status = 429, description = "Rate limited", body = ErrorEnvelope),
        (status = 503, description = "A dependency is down", body = ErrorEnvelope),
    )
)]
pub async fn sign_up_options(
    State(app): State<AppState>,
    request: Result<ApiJson<PasskeySignUpOptionsRequest>, ApiError>,
) -> Result<Json<PasskeyOptionsAnswer>, ApiError> {
    let ApiJson(r) = request?;
    let options =
        passkeys::begin_sign_up(&app, r.email.as_deref(), r.display_name.as_deref()).await?;
    Ok(Json(options.into()))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/passkey/register",
    tag = "passkeys",
    request_body = PasskeySignUpRequest,
    responses(
        (status = 202, description = "Accepted with the passkey as its credential; poll the Location as for any registration (nothing to hash, so it completes in milliseconds)", body = RegistrationAccepted),
        (status = 400, description = "Validation failed; an unknown, used or expired ceremony; another address than the ceremony's; an attestation that does not verify", body = ErrorEnvelope),
        (status = 409, description = "REGISTRATION_PENDING: a registration of this email is pending", body = ErrorEnvelope),
        (status = 429, description = "Rate limited", body = ErrorEnvelope),
        (status = 503, description = "Overloaded or a dependency is down; nothing accepted", body = ErrorEnvelope),
    )
)]
pub async fn sign_up(
    State(app): State<AppState>,
    headers: HeaderMap,
    request: Result<ApiJson<PasskeySignUpRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let result = match request {
        Ok(ApiJson(r)) => passkeys::finish_sign_up(
            &app,
            r.profile(app.accounts.required_profile_fields),
            r.ceremony_id.as_deref(),
            r.credential,
            r.passkey_name.as_deref(),
            respond::request_id(&headers),
        )
        .await
        .map_err(ApiError::from),
        Err(e) => Err(e),
    };
    crate::intake::answer(&app, result)
}

fn list_answer(records: Vec<common::store::passkeys::PasskeyRecord>) -> PasskeyListAnswer {
    let data: Vec<PasskeyView> = records.into_iter().map(PasskeyView::from).collect();
    PasskeyListAnswer {
        success: true,
        count: data.len(),
        data,
    }
}
