//! Bodies of the SCIM token admin API.

use chrono::{DateTime, Utc};
use common::store::scim::ScimToken;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /api/v1/admin/scim/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ScimTokenRequest {
    /// What the token is for, e.g. the identity provider: 1-100 characters.
    #[schema(example = "Okta production")]
    pub name: String,
    /// Days until the token stops working, 1-3650; absent: until revoked.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<u32>,
}

/// A SCIM token as the api shows it; `token` only at creation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScimTokenAnswer {
    pub id: Uuid,
    pub name: String,
    /// `scim_…`: shown this once; the provider sends it as `Authorization: Bearer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ScimTokenAnswer {
    pub fn new(t: ScimToken, token: Option<String>) -> Self {
        Self {
            id: t.id,
            name: t.name,
            token,
            created_by: t.created_by,
            created_at: t.created_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            revoked_at: t.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScimTokenEnvelope {
    pub success: bool,
    pub data: ScimTokenAnswer,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScimTokenListEnvelope {
    pub success: bool,
    pub data: Vec<ScimTokenAnswer>,
}
