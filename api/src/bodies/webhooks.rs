//! Bodies of the webhook admin API: endpoints, the delivery log, redelivery.

use chrono::{DateTime, Utc};
use common::store::webhooks::{DeliveryRecord, WebhookEndpoint};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /api/v1/admin/webhooks` (`url` required) and `PATCH …/{id}` bodies.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WebhookRequest {
    /// `https://…` (or `http://`); internal addresses only where `WEBHOOK_ALLOW_NETWORKS`
    /// allows them.
    #[schema(example = "https://crm.example.com/hooks/registrar")]
    pub url: Option<String>,
    /// Up to 200 characters.
    pub description: Option<String>,
    /// The event types to send (`user.registered`, …); empty or absent: every type.
    pub event_types: Option<Vec<String>>,
    /// Changes only: false stops deliveries (they wait), true sends what waited.
    pub enabled: Option<bool>,
    /// Changes only: a new secret, in the answer this once; the old one keeps signing
    /// beside it for `secretOverlapSecs`.
    pub rotate_secret: Option<bool>,
    /// With `rotateSecret`: how long the old secret still signs, 0-604800 (default
    /// 86400).
    #[schema(minimum = 0, maximum = 604800)]
    pub secret_overlap_secs: Option<u64>,
}

/// An endpoint as the api shows it; `secret` only at creation and rotation.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAnswer {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// Empty: every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why it was disabled, when it was by the dispatcher.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// Since when every attempt failed (cleared by a success).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<DateTime<Utc>>,
    /// After a rotation: until when the previous secret still signs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// `whsec_…`: shown this once; verify deliveries with it (Standard Webhooks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookAnswer {
    pub fn new(e: WebhookEndpoint, secret: Option<String>) -> Self {
        Self {
            id: e.id,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            enabled: e.enabled,
            disabled_reason: e.disabled_reason,
            failing_since: e.failing_since,
            previous_secret_until: e.previous_secret_until.filter(|t| *t > Utc::now()),
            secret,
            version: e.version,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEnvelope {
    pub success: bool,
    pub data: WebhookAnswer,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookListEnvelope {
    pub success: bool,
    pub data: Vec<WebhookAnswer>,
}

/// One delivery of the log.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: i64,
    /// The `webhook-id` header: the event's id.
    pub event_id: Uuid,
    pub event_type: String,
    pub user_id: Uuid,
    /// pending | in_flight | delivered | failed (given up after the retry horizon)
    pub state: String,
    pub attempts: i32,
    /// The last answer's HTTP status.
    pub last_status: Option<i32>,
    /// What went wrong the last time (status and the start of the answer, or the error).
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i32>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<DeliveryRecord> for DeliveryView {
    fn from(d: DeliveryRecord) -> Self {
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            user_id: d.subject,
            state: d.state,
            attempts: d.attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            last_latency_ms: d.last_latency_ms,
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
            finished_at: d.finished_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryListEnvelope {
    pub success: bool,
    pub data: Vec<DeliveryView>,
    /// Pass as `before` for the next (older) page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// `POST …/{id}/redeliver`: the finished deliveries written in `[from, to)` go out
/// again, in order, with their ids.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverRequest {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RedeliverAnswer {
    pub success: bool,
    /// How many deliveries were queued.
    pub queued: u64,
}
