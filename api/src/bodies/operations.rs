//! Bodies of the operators' routes: registrations in flight, dead letters, imports'
//! history, the pipeline's figures.

use chrono::{DateTime, TimeZone, Utc};
use common::events::registration::{Credential, RegistrationEvent};
use common::ops::dead_letters::DeadLetterRecord;
use common::store::imports::ImportRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::service::operations::{InFlight, Tracked};

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A registration Redis knows about.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackedRegistration {
    pub email: String,
    pub registration_id: Uuid,
    /// pending | completed | failed
    pub status: &'static str,
    /// When it reached this status.
    pub at: DateTime<Utc>,
    /// Why it failed (`EMAIL_TAKEN`…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl From<&Tracked> for TrackedRegistration {
    fn from(t: &Tracked) -> Self {
        Self {
            email: t.email.clone(),
            registration_id: t.record.registration_id,
            status: t.state,
            at: at(t.record.at_ms),
            reason: t.record.reason.map(|r| r.as_str()),
        }
    }
}

/// `GET /api/v1/admin/registrations`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationsAnswer {
    pub success: bool,
    /// Registrations in flight, newest first (at most 200 listed).
    pub pending: Vec<TrackedRegistration>,
    pub pending_total: usize,
    /// Failed registrations of the last 24 hours, newest first (at most 200 listed).
    pub failed: Vec<TrackedRegistration>,
    /// Failed registrations of the last 24 hours by reason.
    pub failed_by_reason: std::collections::BTreeMap<String, usize>,
    /// False when more than 10 000 keys of a status exist: counts cover the first 10 000.
    pub complete: bool,
    /// With `q`: where that registration (or that email's registrations) stand.
    pub matches: Vec<TrackedRegistration>,
}

impl From<InFlight> for RegistrationsAnswer {
    fn from(f: InFlight) -> Self {
        Self {
            success: true,
            pending: f.pending.iter().map(Into::into).collect(),
            pending_total: f.pending_total,
            failed: f.failed.iter().map(Into::into).collect(),
            failed_by_reason: f.failed_by_reason,
            complete: f.complete,
            matches: f.matches.iter().map(Into::into).collect(),
        }
    }
}

/// A record header, as text.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeaderView {
    pub name: String,
    pub value: String,
}

/// What a dead letter's payload says, without its credential (only its kind).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecodedRegistration {
    pub registration_id: Uuid,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub role: Option<String>,
    /// sealed-password | password-hash | none | passkey: never the credential itself.
    pub credential: &'static str,
    pub submitted_at: DateTime<Utc>,
    pub import_id: Option<Uuid>,
    pub import_line: Option<i64>,
    /// The identity provider of a social sign-up.
    pub identity_provider: Option<String>,
}

impl From<RegistrationEvent> for DecodedRegistration {
    fn from(e: RegistrationEvent) -> Self {
        Self {
            registration_id: e.registration_id,
            email: e.email,
            first_name: e.first_name,
            last_name: e.last_name,
            username: e.username,
            role: e.role,
            credential: match e.credential {
                Credential::Sealed(_) => "sealed-password",
                Credential::PasswordHash(_) => "password-hash",
                Credential::NoPassword => "none",
                Credential::Passkey(_) => "passkey",
            },
            submitted_at: at(e.submitted_at_ms),
            import_id: e.import.map(|i| i.import_id),
            import_line: e.import.map(|i| i.line),
            identity_provider: e.identity.map(|i| i.provider),
        }
    }
}

/// One record of `<topic>.dlq`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    /// `<partition>:<offset>`: how replay names it.
    pub position: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<DateTime<Utc>>,
    /// undecodable | invalid | credential | unauthenticated…
    pub kind: String,
    /// Why it was dead-lettered.
    pub error: Option<String>,
    /// Every header; the signature's MAC is shortened to its key id.
    pub headers: Vec<HeaderView>,
    pub payload_bytes: usize,
    /// The payload, when it decodes as a registration.
    pub registration: Option<DecodedRegistration>,
    /// Why it does not, when it does not.
    pub decode_error: Option<String>,
}

impl From<&DeadLetterRecord> for DeadLetterView {
    fn from(r: &DeadLetterRecord) -> Self {
        use common::events::kafka::dlq_headers;
        use common::events::signature::SIGNATURE_HEADER;
        let (registration, decode_error) = match RegistrationEvent::decode(&r.payload) {
            Ok(e) => (Some(e.into()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Self {
            position: r.position(),
            partition: r.partition,
            offset: r.offset,
            timestamp: r.timestamp_ms.map(at),
            kind: r.kind().to_owned(),
            error: r.header(dlq_headers::ERROR).map(str::to_owned),
            headers: r
                .headers
                .iter()
                .map(|(name, value)| HeaderView {
                    name: name.clone(),
                    value: if name == SIGNATURE_HEADER {
                        // v1.<purpose>.<key id>.<mac>: the MAC says nothing to a reader.
                        value
                            .rsplit_once('.')
                            .map_or("", |(head, _)| head)
                            .to_owned()
                            + ".…"
                    } else {
                        value.clone()
                    },
                })
                .collect(),
            payload_bytes: r.payload.len(),
            registration,
            decode_error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterListAnswer {
    pub success: bool,
    /// Records in this answer (the newest, at most 500).
    pub count: usize,
    /// Records in the topic (of `kind`).
    pub total: usize,
    pub data: Vec<DeadLetterView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetterAnswer {
    pub success: bool,
    pub data: DeadLetterView,
}

/// `POST /api/v1/admin/dead-letters/replay`: `positions`, or `all` (of `kind` when
/// given). `dryRun` says what would go back without sending anything.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReplayRequest {
    /// `<partition>:<offset>` of each record.
    #[schema(max_items = 500)]
    pub positions: Option<Vec<String>>,
    /// Every dead letter (of `kind`): required when `positions` is empty.
    pub all: Option<bool>,
    pub kind: Option<String>,
    /// Say what would be replayed and refused, and send nothing.
    pub dry_run: Option<bool>,
}

/// A record refused by replay and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefusedReplay {
    pub position: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplayAnswer {
    pub success: bool,
    pub dry_run: bool,
    /// Put back on the registration topic (or, with `dryRun`, would be).
    pub replayed: Vec<String>,
    pub refused: Vec<RefusedReplay>,
}

/// One import in the history.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportSummary {
    pub import_id: Uuid,
    /// The admin who ran it.
    pub created_by: Option<Uuid>,
    /// api | cli
    pub source: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub lines: i64,
    pub accepted: i64,
    pub rejected: i64,
    pub completed: i64,
    pub error: Option<String>,
}

impl From<ImportRecord> for ImportSummary {
    fn from(r: ImportRecord) -> Self {
        Self {
            import_id: r.id,
            created_by: r.created_by,
            source: r.source,
            started_at: r.started_at,
            finished_at: r.finished_at,
            lines: r.lines,
            accepted: r.accepted,
            rejected: r.rejected,
            completed: r.completed,
            error: r.error,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportListAnswer {
    pub success: bool,
    pub data: Vec<ImportSummary>,
    /// Pass as `before` for older imports; null on the last page.
    pub next_before: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineAnswer {
    pub success: bool,
    pub data: crate::service::operations::PipelineSnapshot,
}

/// One Server-Sent Event of `GET /api/v1/admin/pipeline/stream`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PipelineEvent {
    /// Always `pipeline`.
    #[schema(example = "pipeline")]
    pub event: String,
    /// A `PipelineSnapshot` as JSON.
    #[schema(content_media_type = "application/json")]
    pub data: String,
}
