//! The OpenID Connect provider's protocol endpoints: discovery, keys, authorization,
//! token, userinfo, introspection, revocation and logout. They speak OAuth's formats
//! (form bodies, `{"error": …}` answers, redirects), not the api's JSON envelope; the
//! discovery document describes them.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::hosted;
use crate::caller::RequestContext;
use crate::error::ApiError;
use crate::service::oidc::authorize::{self, AuthorizeParams, Next};
use crate::service::oidc::token::{self, LoggedOut, TokenParams};
use crate::service::oidc::{provider, OAuthError, GRANTS, SCOPES};
use crate::state::AppState;

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST),
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(wait) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(wait));
        }
        if self.status == 401 {
            let challenge = if self.error == "invalid_token" {
                format!(
                    "Bearer error=\"invalid_token\", error_description=\"{}\"",
                    self.description
                )
            } else {
                "Basic realm=\"registrar\"".to_owned()
            };
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                headers.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        response
    }
}

/// `GET /.well-known/openid-configuration`
pub async fn discovery(State(app): State<AppState>) -> Result<Response, ApiError> {
    let p = provider(&app)?;
    let i = &p.issuer;
    let doc = json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/oauth2/authorize"),
        "token_endpoint": format!("{i}/oauth2/token"),
        "userinfo_endpoint": format!("{i}/oauth2/userinfo"),
        "jwks_uri": format!("{i}/oauth2/jwks"),
        "revocation_endpoint": format!("{i}/oauth2/revoke"),
        "introspection_endpoint": format!("{i}/oauth2/introspect"),
        "end_session_endpoint": format!("{i}/oauth2/logout"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": GRANTS,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
        "scopes_supported": SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "sid",
            "name", "given_name", "family_name", "preferred_username", "gender", "birthdate", "updated_at",
            "email", "email_verified"],
        "acr_values_supported": [crate::service::oidc::claims::ACR_ONE_FACTOR, crate::service::oidc::claims::ACR_TWO_FACTORS],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
    });
    Ok(cacheable(Json(doc).into_response()))
}

fn cacheable(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// `GET /oauth2/jwks`: the Ed25519 and RSA public keys.
pub async fn jwks(State(app): State<AppState>) -> Result<Response, ApiError> {
    let p = provider(&app)?;
    Ok(cacheable(Json(p.keys.jwks().clone()).into_response()))
}

/// `GET /oauth2/authorize` (and `POST`, form-encoded, OIDC Core §3.1.2.1: axum's
/// `Form` reads a GET's query string).
pub async fn authorize(
    State(app): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Form(params): Form<AuthorizeParams>,
) -> Response {
    if provider(&app).is_err() {
        return ApiError::RouteNotFound.into_response();
    }
    let checked = match authorize::check(&app, params).await {
        Ok(c) => c,
        Err(bad) => return hosted::error_page(StatusCode::BAD_REQUEST, &bad.0),
    };
    let request = match checked {
        Ok(r) => r,
        Err((request, e)) => {
            return hosted::redirect(&authorize::error_redirect(&app, &request, &e).0)
        }
    };
    let cookie = hosted::cookie(&headers, hosted::SESSION_COOKIE);
    let outcome = async {
        let session = authorize::browser_session(&app, cookie.as_deref(), request.max_age).await?;
        authorize::decide(&app, &context, request.clone(), session).await
    }
    .await;
    match outcome {
        Ok(Next::Redirect(r)) => hosted::redirect(&r.0),
        Ok(Next::Flow { id, binding }) => hosted::start_flow(&id, &binding),
        Err(e) => {
            let e = OAuthError::from(e);
            if e.status == 503 {
                hosted::error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is unavailable right now. Try again in a moment.",
                )
            } else {
                hosted::redirect(&authorize::error_redirect(&app, &request, &e).0)
            }
        }
    }
}

/// The client's credentials: `Authorization: Basic` (RFC 6749 §2.3.1, form-encoded id
/// and secret) or `client_id` and `client_secret` in the form; never both.
fn client_credentials(
    headers: &HeaderMap,
    form_id: Option<String>,
    form_secret: Option<SecretString>,
) -> Result<(String, Option<SecretString>), OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    match (basic, form_id) {
        (Some(b), None) => {
            let decoded = STANDARD
                .decode(b.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))?;
            let unescape = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            if form_secret.is_some() {
                return Err(OAuthError::invalid_request(
                    "client credentials given twice",
                ));
            }
            Ok((unescape(id), Some(SecretString::from(unescape(secret)))))
        }
        (None, Some(id)) => Ok((id, form_secret)),
        (Some(_), Some(_)) => Err(OAuthError::invalid_request(
            "client credentials given twice",
        )),
        (None, None) => Err(OAuthError::invalid_client("no client credentials")),
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// An answer with tokens or claims: never cached (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn form_error(e: axum::extract::rejection::FormRejection) -> OAuthError {
    OAuthError::invalid_request(format!("the body must be a form: {e}"))
}

/// `POST /oauth2/token`
pub async fn token(
    State(app): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, OAuthError> {
    let Form(f) = form.map_err(form_error)?;
    let (id, secret) = client_credentials(
        &headers,
        f.client_id,
        f.client_secret.map(SecretString::from),
    )?;
    let params = TokenParams {
        grant_type: f.grant_type,
        code: f.code,
        redirect_uri: f.redirect_uri,
        code_verifier: f.code_verifier,
        refresh_token: f.refresh_token.map(SecretString::from),
        scope: f.scope,
    };
    let grant = match params.grant_type.as_deref() {
        Some(g) if crate::service::oidc::GRANTS.contains(&g) => g.to_owned(),
        _ => "other".to_owned(),
    };
    let result = token::token(
        &app,
        &context,
        &id,
        secret.as_ref().map(|s| s.expose_secret()),
        params,
    )
    .await;
    app.metrics
        .oidc_tokens
        .with_label_values(&[
            grant.as_str(),
            result.as_ref().map_or_else(|e| e.error, |_| "ok"),
        ])
        .inc();
    let t = result?;
    let mut body = json!({
        "access_token": t.access_token,
        "token_type": "Bearer",
        "expires_in": t.expires_in,
        "scope": t.scope,
    });
    if let Some(id_token) = t.id_token {
        body["id_token"] = json!(id_token);
    }
    if let Some(r) = t.refresh_token {
        body["refresh_token"] = json!(r.expose_secret());
    }
    Ok(no_store(Json(body).into_response()))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// `GET`/`POST /oauth2/userinfo`
pub async fn userinfo(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    provider(&app)?;
    let claims = token::userinfo(&app, bearer(&headers)).await?;
    Ok(no_store(Json(claims).into_response()))
}

#[derive(Debug, Default, Deserialize)]
pub struct TokenOnlyForm {
    token: Option<String>,
    #[allow(dead_code)]
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// `POST /oauth2/introspect`
pub async fn introspect(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenOnlyForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, OAuthError> {
    let Form(f) = form.map_err(form_error)?;
    let (id, secret) = client_credentials(
        &headers,
        f.client_id,
        f.client_secret.map(SecretString::from),
    )?;
    let answer = token::introspect(
        &app,
        &id,
        secret.as_ref().map(|s| s.expose_secret()),
        f.token.as_deref(),
    )
    .await?;
    Ok(no_store(Json(answer).into_response()))
}

/// `POST /oauth2/revoke`: 200 whether or not the token was known.
pub async fn revoke(
    State(app): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    form: Result<Form<TokenOnlyForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, OAuthError> {
    let Form(f) = form.map_err(form_error)?;
    let (id, secret) = client_credentials(
        &headers,
        f.client_id,
        f.client_secret.map(SecretString::from),
    )?;
    token::revoke(
        &app,
        &context,
        &id,
        secret.as_ref().map(|s| s.expose_secret()),
        f.token.as_deref(),
    )
    .await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    /// Set by the provider's own confirmation form.
    confirm: Option<String>,
}

/// `GET`/`POST /oauth2/logout` (RP-initiated logout 1.0). Without an ID token this
/// provider signed as `id_token_hint`, a request (a link or an image any site can embed)
/// only asks the user to confirm; the confirmation is a same-site POST, which carries the
/// session cookie a cross-site POST would not.
pub async fn logout(
    State(app): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Form(p): Form<LogoutParams>,
) -> Response {
    if provider(&app).is_err() {
        return ApiError::RouteNotFound.into_response();
    }
    if p.confirm.as_deref() != Some("yes") && !token::valid_hint(&app, p.id_token_hint.as_deref()) {
        let hidden: Vec<(&str, String)> = [
            ("client_id", p.client_id.clone()),
            (
                "post_logout_redirect_uri",
                p.post_logout_redirect_uri.clone(),
            ),
            ("state", p.state.clone()),
            ("confirm", Some("yes".to_owned())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        return hosted::confirm_page(
            "Sign out?",
            "Sign out of Registrar on this browser?",
            "/oauth2/logout",
            &hidden,
            "Sign out",
            p.post_logout_redirect_uri.as_deref(),
        );
    }
    let cookie = hosted::cookie(&headers, hosted::SESSION_COOKIE);
    let result = token::end_session(
        &app,
        &context,
        cookie.as_deref(),
        p.id_token_hint.as_deref(),
        p.client_id.as_deref(),
        p.post_logout_redirect_uri.as_deref(),
        p.state.as_deref(),
    )
    .await;
    let mut response = match result {
        Ok(LoggedOut::Redirect(uri)) => hosted::redirect(&uri),
        Ok(LoggedOut::Page) => hosted::message_page("Signed out", "You are signed out."),
        Err(_) => {
            return hosted::error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is unavailable right now. Try again in a moment.",
            )
        }
    };
    hosted::clear_cookie(&mut response, hosted::SESSION_COOKIE, "/");
    response
}
