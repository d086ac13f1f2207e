//! Bodies of social login: upstream identity providers (admins), the providers a page
//! offers, the one-time code a frontend trades for a session, and a user's identities.

use chrono::{DateTime, Utc};
use common::store::identities::{IdentityRecord, ProviderRecord};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /api/v1/admin/identity-providers` body (`PATCH`: any of the fields but `id`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IdentityProviderRequest {
    /// The provider's id in URLs: 1-32 of a-z, 0-9 and `-`.
    #[schema(example = "gitlab")]
    pub id: Option<String>,
    /// What sign-in pages show: "Continue with <name>".
    #[schema(example = "GitLab")]
    pub name: Option<String>,
    /// The upstream issuer; it must answer OpenID Connect discovery.
    #[schema(example = "https://gitlab.com")]
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    /// Stored sealed (MFA_ENCRYPTION_KEY) and never shown again; `""` removes it (a public
    /// client, PKCE alone).
    #[schema(value_type = Option<String>)]
    pub client_secret: Option<SecretString>,
    /// Must include `openid`; `openid email profile` when absent.
    pub scopes: Option<Vec<String>>,
    /// Which upstream claim fills which profile field, e.g.
    /// `{"firstName": "given_name", "lastName": "family_name", "username": "preferred_username"}`
    /// (the defaults).
    #[schema(value_type = Option<Object>)]
    pub claim_map: Option<serde_json::Map<String, serde_json::Value>>,
    pub enabled: Option<bool>,
}

/// A provider as admins see it: never its secret.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityProviderView {
    pub id: String,
    pub name: String,
    pub issuer: String,
    pub client_id: String,
    /// Whether a client secret is stored (it is never shown).
    pub has_client_secret: bool,
    pub scopes: Vec<String>,
    #[schema(value_type = Object)]
    pub claim_map: serde_json::Value,
    pub enabled: bool,
    /// The redirect URI to register at the provider.
    pub redirect_uri: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl IdentityProviderView {
    pub fn new(p: ProviderRecord, redirect_uri: String) -> Self {
        Self {
            has_client_secret: p.client_secret.is_some(),
            scopes: p.scopes.split_whitespace().map(str::to_owned).collect(),
            id: p.id,
            name: p.name,
            issuer: p.issuer,
            client_id: p.client_id,
            claim_map: p.claim_map,
            enabled: p.enabled,
            redirect_uri,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct IdentityProviderEnvelope {
    pub success: bool,
    pub data: IdentityProviderView,
}

#[derive(Serialize, ToSchema)]
pub struct IdentityProviderListEnvelope {
    pub success: bool,
    pub data: Vec<IdentityProviderView>,
}

/// A provider a sign-in page offers.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OfferedProvider {
    pub id: String,
    pub name: String,
    /// Send the browser here with `?returnTo=<this page>` (an allowed origin); it comes
    /// back with `#socialCode=…` (trade it at `POST /api/v1/auth/social/exchange`),
    /// `#socialLink=…` (sign in, then `POST /api/v1/auth/identities`) or `#socialError=…`.
    pub start_url: String,
}

#[derive(Serialize, ToSchema)]
pub struct OfferedProvidersAnswer {
    pub success: bool,
    pub data: Vec<OfferedProvider>,
}

/// `POST /api/v1/auth/social/exchange` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SocialExchangeRequest {
    /// The `socialCode` of the return fragment: single use, 60 seconds.
    #[schema(required = true, nullable = false)]
    pub code: Option<String>,
}

/// `POST /api/v1/auth/identities` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LinkIdentityRequest {
    /// The `socialLink` of the return fragment.
    #[schema(required = true, nullable = false)]
    pub link_token: Option<String>,
}

/// An upstream identity linked to the caller's account.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentityView {
    pub id: Uuid,
    pub provider: String,
    pub provider_name: String,
    /// The provider's `sub`.
    pub subject: String,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<IdentityRecord> for IdentityView {
    fn from(i: IdentityRecord) -> Self {
        Self {
            id: i.id,
            provider: i.provider_id,
            provider_name: i.provider_name,
            subject: i.subject,
            email: i.email,
            created_at: i.created_at,
            last_used_at: i.last_used_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct IdentityAnswer {
    pub success: bool,
    pub data: IdentityView,
}

#[derive(Serialize, ToSchema)]
pub struct IdentityListAnswer {
    pub success: bool,
    pub data: Vec<IdentityView>,
}
