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
    /// 1-128 characters, no control characters.
    #[schema(required = true, nullable = false, value_type = String, min_length = 1, max_length = 128, example = "theme")]
    pub key: Option<String>,
    /// Any JSON but null, up to 64 KiB.
    #[schema(required = true, schema_with = any_json_but_null, example = json!({"mode": "dark"}))]
    pub value: Option<serde_json::Value>,
}

/// `PUT /api/data/{key}` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceItemRequest {
    /// Any JSON but null, up to 64 KiB.
    #[schema(required = true, schema_with = any_json_but_null)]
    pub value: Option<serde_json::Value>,
}

/// `{"type": ["object", "array", "string", "number", "boolean"]}`: any JSON value but null.
fn any_json_but_null() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([
            Type::Object,
            Type::Array,
            Type::String,
            Type::Number,
            Type::Boolean,
        ]))
        .build()
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
