//! Every JSON body the api reads or writes, as one type each. The handlers serialise
//! these and the OpenAPI document is generated from the same types, so the two cannot
//! drift apart.

pub mod accounts;
pub mod compat;
pub mod data;
pub mod health;
pub mod import;
pub mod oidc;
pub mod operations;
pub mod passkeys;
pub mod registration;
pub mod scim;
pub mod security;
pub mod social;
pub mod users;
pub mod webhooks;

use common::domain::registration::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub field: String,
    pub message: String,
}

impl From<FieldError> for ErrorDetail {
    fn from(e: FieldError) -> Self {
        Self {
            field: e.field,
            message: e.message,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// VALIDATION_ERROR, REGISTRATION_PENDING, RATE_LIMITED, SERVICE_UNAVAILABLE...
    pub code: &'static str,
    pub message: String,
    /// Per-field problems (validation errors only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<ErrorDetail>>,
}

/// The error envelope of every 4xx and 5xx answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always `false`.
    pub success: bool,
    pub error: ErrorBody,
}

/// A success that carries only a message (logout, delete).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MessageAnswer {
    pub success: bool,
    pub message: String,
}

impl MessageAnswer {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            success: true,
            message: message.into(),
        }
    }
}

/// Where a page ends and how to get the next one.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub limit: i64,
    /// Rows skipped (listings that take `offset` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}
