//! The OpenID Connect provider's use cases: client registration, the authorization
//! request and the hosted login behind it, and the token, userinfo, introspection,
//! revocation and logout endpoints. Accounts, passwords, second factors and sessions are
//! the api's own: a client's tokens belong to a session (a refresh-token family) like a
//! login's, so every revocation (password change, role change, "end my sessions",
//! deletion) ends them too.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::store::oidc::OidcClient;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::auth::oidc_keys::OidcProvider;
use crate::service::ServiceError;
use crate::state::AppState;

pub mod authorize;
pub mod claims;
pub mod clients;
pub mod token;

/// The scopes the provider knows.
pub const SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
/// The grants the token endpoint knows.
pub const GRANTS: [&str; 3] = ["authorization_code", "refresh_token", "client_credentials"];

/// An OAuth 2.0 error: the JSON body `{error, error_description}` of the token,
/// introspection and revocation endpoints (RFC 6749 §5.2), or the `error` parameters of
/// a redirect back to the client (§4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
    pub status: u16,
    /// Seconds to wait, for 429 and 503.
    pub retry_after: Option<u32>,
}

impl OAuthError {
    fn new(error: &'static str, status: u16, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
            status,
            retry_after: None,
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", 400, d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", 401, d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", 400, d)
    }
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new("unauthorized_client", 400, d)
    }
    pub fn unsupported_grant_type(d: impl Into<String>) -> Self {
        Self::new("unsupported_grant_type", 400, d)
    }
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new("invalid_scope", 400, d)
    }
    pub fn access_denied(d: impl Into<String>) -> Self {
        Self::new("access_denied", 400, d)
    }
    pub fn login_required(d: impl Into<String>) -> Self {
        Self::new("login_required", 400, d)
    }
    pub fn consent_required(d: impl Into<String>) -> Self {
        Self::new("consent_required", 400, d)
    }
    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new("invalid_token", 401, d)
    }
}

impl From<ServiceError> for OAuthError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::RateLimited { retry_after_secs } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new("slow_down", 429, "too many requests from this client")
            },
            ServiceError::Overloaded { retry_after_secs } => Self {
                retry_after: Some(retry_after_secs),
                ..Self::new("temporarily_unavailable", 503, "the service is overloaded")
            },
            ServiceError::Unavailable(_) => Self {
                retry_after: Some(1),
                ..Self::new(
                    "temporarily_unavailable",
                    503,
                    "a dependency is unavailable",
                )
            },
            ServiceError::InvalidToken => Self::invalid_grant("the token is invalid"),
            ServiceError::NotFound(what) => Self::invalid_request(format!("{what} not found")),
            other => {
                tracing::error!(event = "oidc_internal_error", error = %crate::error::error_chain(&other));
                Self::new("server_error", 500, "internal error")
            }
        }
    }
}

/// The provider, or 404 when `OIDC_ISSUER` is not set.
pub fn provider(app: &AppState) -> Result<&OidcProvider, ServiceError> {
    app.accounts
        .oidc
        .as_ref()
        .ok_or(ServiceError::NotFound("OpenID Connect provider"))
}

/// A random, URL-safe secret with a readable prefix (32 random bytes).
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Space-separated scopes, each known, deduplicated in request order.
pub fn parse_scope(raw: &str) -> Result<Vec<String>, OAuthError> {
    let mut out: Vec<String> = Vec::new();
    for s in raw.split(' ').filter(|s| !s.is_empty()) {
        if !SCOPES.contains(&s) {
            return Err(OAuthError::invalid_scope(format!("unknown scope {s}")));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    Ok(out)
}

/// Checks a client's credentials: a confidential client's secret (compared by digest in
/// constant time); a public client presents none. An unknown client and a wrong secret
/// are the same `invalid_client`.
pub async fn authenticate_client(
    app: &AppState,
    client_id: &str,
    secret: Option<&str>,
) -> Result<OidcClient, OAuthError> {
    if client_id.is_empty() || client_id.len() > 128 {
        return Err(OAuthError::invalid_client("unknown client or wrong secret"));
    }
    let db = app.db().await?;
    let client = common::store::oidc::find_client(&**db, client_id)
        .await
        .map_err(ServiceError::from)?;
    let Some(client) = client else {
        return Err(OAuthError::invalid_client("unknown client or wrong secret"));
    };
    match (&client.secret_hash, secret) {
        (Some(stored), Some(given)) => {
            let given = crate::service::accounts::digest(given);
            if bool::from(stored.as_slice().ct_eq(given.as_slice())) {
                Ok(client)
            } else {
                tracing::info!(event = "oidc_client_auth_failed", client_id);
                Err(OAuthError::invalid_client("unknown client or wrong secret"))
            }
        }
        (None, None) => Ok(client),
        (None, Some(_)) => Err(OAuthError::invalid_client("a public client has no secret")),
        (Some(_), None) => {
            tracing::info!(
                event = "oidc_client_auth_failed",
                client_id,
                reason = "no secret"
            );
            Err(OAuthError::invalid_client("unknown client or wrong secret"))
        }
    }
}

/// Counts a request of a client against `OIDC_CLIENT_RATE_PER_MINUTE`.
pub async fn limit_client(app: &AppState, client_id: &str) -> Result<(), OAuthError> {
    let limit = provider(app)?.client_rate_per_minute;
    if limit == 0 {
        return Ok(());
    }
    let (n, wait) = app
        .stores
        .auth_flows
        .count_request("oidc-client", client_id, std::time::Duration::from_secs(60))
        .await
        .map_err(ServiceError::from)?;
    if n > limit {
        tracing::warn!(event = "oidc_client_rate_limited", client_id);
        return Err(ServiceError::RateLimited {
            retry_after_secs: u32::try_from(wait).unwrap_or(60),
        }
        .into());
    }
    Ok(())
}
