//! Bodies of the per-user key/value data routes.

use chrono::{DateTime, Utc};
use common::store::data::DataItem;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Pagination;

/// `POST /api/data` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateItemRequest {
    /// 1-128 characters.
    #[schema(example = "theme")]
    pub key: Option<String>,
    /// Any JSON but null, up to 64 KiB.
    #[schema(example = json!({"mode": "dark"}))]
    pub value: Option<serde_json::Value>,
}

/// `PUT /api/data/{key}` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceItemRequest {
    pub value: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataItemView {
    pub key: String,
    pub value: serde_json::Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<DataItem> for DataItemView {
    fn from(i: DataItem) -> Self {
        Self {
            key: i.key,
            value: i.value,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DataItemAnswer {
    pub success: bool,
    pub data: DataItemView,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DataListAnswer {
    pub success: bool,
    pub count: usize,
    pub data: Vec<DataItemView>,
    pub pagination: Pagination,
}
