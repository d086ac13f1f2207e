//! Bodies of the OpenID Connect client registry (`/api/v1/admin/oidc/clients`).

use chrono::{DateTime, Utc};
use common::store::oidc::OidcClient;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A client to register, or the fields of one to change (absent: unchanged).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClientRequest {
    /// Shown on the consent screen. Required at registration.
    #[schema(example = "Example App")]
    pub name: Option<String>,
    /// Confidential (default, has a secret) or public (single-page and native apps:
    /// no secret, PKCE required). Fixed once registered.
    pub confidential: Option<bool>,
    /// Exact redirect URIs: `https`, or `http` on a loopback host.
    #[schema(example = json!(["https://app.example.com/callback"]))]
    pub redirect_uris: Option<Vec<String>>,
    /// Where RP-initiated logout may send the browser back to.
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Of `openid profile email offline_access`; default `openid profile email`.
    pub scopes: Option<Vec<String>>,
    /// Of `authorization_code refresh_token client_credentials`; default
    /// `authorization_code`.
    pub grant_types: Option<Vec<String>>,
    /// First-party clients skip the consent screen.
    pub first_party: Option<bool>,
    /// `RS256` (default) or `EdDSA`.
    pub id_token_alg: Option<String>,
    /// 60-86400, default 900.
    pub access_token_ttl_secs: Option<i32>,
    /// 60-7776000, default `REFRESH_TOKEN_TTL_SECS`.
    pub refresh_token_ttl_secs: Option<i32>,
    /// On a change: issue a new secret (shown once); the old one stops working.
    pub rotate_secret: Option<bool>,
}

/// A registered client. `clientSecret` is present only in the answer that created or
/// rotated it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientAnswer {
    pub client_id: String,
    pub name: String,
    pub confidential: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub grant_types: Vec<String>,
    pub first_party: bool,
    pub id_token_alg: String,
    pub access_token_ttl_secs: i32,
    pub refresh_token_ttl_secs: i32,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ClientAnswer {
    pub fn new(c: OidcClient, secret: Option<String>) -> Self {
        Self {
            client_id: c.client_id,
            name: c.name,
            confidential: c.confidential,
            client_secret: secret,
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            scopes: c.scopes,
            grant_types: c.grant_types,
            first_party: c.first_party,
            id_token_alg: c.id_token_alg,
            access_token_ttl_secs: c.access_token_ttl_secs,
            refresh_token_ttl_secs: c.refresh_token_ttl_secs,
            version: c.version,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// `{"success": true, "data": client}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientEnvelope {
    pub success: bool,
    pub data: ClientAnswer,
}

/// `{"success": true, "data": [client, …]}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientListEnvelope {
    pub success: bool,
    pub data: Vec<ClientAnswer>,
}
