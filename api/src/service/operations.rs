//! What operators do in the console besides managing users: registrations in flight,
//! dead letters (the same use case as `consumer dlq`, in `common::ops::dead_letters`) and
//! the live pipeline figures.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use common::domain::email::Email;
use common::domain::Role;
use common::ops::dead_letters::{self, DeadLetterRecord, ReplayOutcome, Selection};
use common::store::registration_status::StatusRecord;
use serde::Serialize;
use uuid::Uuid;

use crate::caller::Caller;
use crate::service::ServiceError;
use crate::state::AppState;

/// The most keys one look at the registrations in flight reads per state.
pub const SCAN_LIMIT: usize = 10_000;
/// The most entries of a state the answer lists (the counts cover every key read).
pub const LIST_LIMIT: usize = 200;

async fn require(app: &AppState, caller: &Caller, role: Role) -> Result<(), ServiceError> {
    if caller.role < role {
        return Err(ServiceError::Forbidden);
    }
    let client = app.db().await?;
    super::accounts::ensure_current(&**client, caller).await
}

/// A registration Redis knows about.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub email: String,
    pub state: &'static str,
    pub record: StatusRecord,
}

/// Registrations in flight and the recent failures, newest first.
#[derive(Debug, Default)]
pub struct InFlight {
    pub pending: Vec<Tracked>,
    pub pending_total: usize,
    pub failed: Vec<Tracked>,
    pub failed_by_reason: BTreeMap<String, usize>,
    /// Every key was read (fewer than [`SCAN_LIMIT`] per state).
    pub complete: bool,
    /// A search's matches (any state); empty without a search.
    pub matches: Vec<Tracked>,
}

fn tracked(state: &'static str, entries: Vec<(String, StatusRecord)>) -> Vec<Tracked> {
    let mut out: Vec<Tracked> = entries
        .into_iter()
        .map(|(email, record)| Tracked {
            email,
            state,
            record,
        })
        .collect();
    out.sort_by_key(|t| std::cmp::Reverse(t.record.at_ms));
    out
}

/// Pending registrations, failures by reason and, with `search` (an email or a
/// registration id), where that registration stands. Moderators and admins.
pub async fn registrations(
    app: &AppState,
    caller: &Caller,
    search: Option<&str>,
) -> Result<InFlight, ServiceError> {
    require(app, caller, Role::Moderator).await?;
    let status = &app.stores.status;
    let (pending, pending_complete) = status
        .scan("pending", SCAN_LIMIT)
        .await
        .map_err(ServiceError::unavailable)?;
    let (failed, failed_complete) = status
        .scan("failed", SCAN_LIMIT)
        .await
        .map_err(ServiceError::unavailable)?;
    let mut answer = InFlight {
        pending_total: pending.len(),
        complete: pending_complete && failed_complete,
        ..InFlight::default()
    };
    for (_, record) in &failed {
        let reason = record.reason.map_or("UNKNOWN", |r| r.as_str()).to_owned();
        *answer.failed_by_reason.entry(reason).or_default() += 1;
    }
    answer.pending = tracked("pending", pending);
    answer.failed = tracked("failed", failed);
    if let Some(search) = search.map(str::trim).filter(|s| !s.is_empty()) {
        answer.matches = find(app, &answer, search).await?;
    }
    answer.pending.truncate(LIST_LIMIT);
    answer.failed.truncate(LIST_LIMIT);
    Ok(answer)
}

async fn find(app: &AppState, seen: &InFlight, search: &str) -> Result<Vec<Tracked>, ServiceError> {
    if let Ok(id) = Uuid::parse_str(search) {
        let (completed, _) = app
            .stores
            .status
            .scan("completed", SCAN_LIMIT)
            .await
            .map_err(ServiceError::unavailable)?;
        let mut hits: Vec<Tracked> = seen
            .pending
            .iter()
            .chain(&seen.failed)
            .filter(|t| t.record.registration_id == id)
            .cloned()
            .collect();
        hits.extend(
            tracked("completed", completed)
                .into_iter()
                .filter(|t| t.record.registration_id == id),
        );
        return Ok(hits);
    }
    let email = Email::parse(search)
        .map_err(|_| ServiceError::invalid("q", "must be an email address or a registration id"))?;
    let records = app
        .stores
        .status
        .records(&email)
        .await
        .map_err(ServiceError::unavailable)?;
    let mut hits = Vec::new();
    for (state, record) in [
        ("pending", records.pending),
        ("completed", records.completed),
        ("failed", records.failed),
    ] {
        if let Some(record) = record {
            hits.push(Tracked {
                email: email.as_str().to_owned(),
                state,
                record,
            });
        }
    }
    Ok(hits)
}

/// Every dead letter (of `kind` when given). Admins.
pub async fn dead_letters(
    app: &AppState,
    caller: &Caller,
    kind: Option<String>,
) -> Result<Vec<DeadLetterRecord>, ServiceError> {
    require(app, caller, Role::Admin).await?;
    let selection = Selection {
        kind,
        positions: Vec::new(),
    };
    Ok(dead_letters::read_all(&app.operations.kafka)
        .await
        .map_err(ServiceError::unavailable)?
        .into_iter()
        .filter(|r| selection.matches(r))
        .collect())
}

/// One dead letter by `<partition>:<offset>`. Admins.
pub async fn dead_letter(
    app: &AppState,
    caller: &Caller,
    position: &str,
) -> Result<DeadLetterRecord, ServiceError> {
    let all = dead_letters(app, caller, None).await?;
    all.into_iter()
        .find(|r| r.position() == position)
        .ok_or(ServiceError::NotFound("Dead letter"))
}

/// Puts the selected dead letters back on the registration topic after the consumer's
/// checks, or with `dry_run` says what would go back. Admins.
pub async fn replay(
    app: &AppState,
    caller: &Caller,
    selection: Selection,
    dry_run: bool,
) -> Result<ReplayOutcome, ServiceError> {
    require(app, caller, Role::Admin).await?;
    if let Some(p) = selection
        .positions
        .iter()
        .find(|p| parse_position(p).is_none())
    {
        return Err(ServiceError::invalid(
            "positions",
            format!("{p:?} is not <partition>:<offset>"),
        ));
    }
    let outcome = dead_letters::replay(
        &app.operations.kafka,
        &app.operations.verifier,
        &selection,
        dry_run,
    )
    .await
    .map_err(ServiceError::unavailable)?;
    tracing::info!(
        event = "dlq_replay",
        actor = %caller.id,
        dry_run,
        replayed = outcome.replayed.len(),
        refused = outcome.refused.len()
    );
    Ok(outcome)
}

/// `<partition>:<offset>` as numbers.
pub fn parse_position(p: &str) -> Option<(i32, i64)> {
    let (partition, offset) = p.split_once(':')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

/// One second of the pipeline, as the console's live view draws it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSnapshot {
    /// Unix ms of the sample.
    pub at: i64,
    /// Registrations this api accepted per second since the previous sample.
    pub intake_per_sec: f64,
    /// Users the consumers persisted per second (`None`: no consumer metrics read).
    pub persisted_per_sec: Option<f64>,
    /// Registrations the consumers failed (email taken…) per second.
    pub failed_per_sec: Option<f64>,
    /// Records the consumers dead-lettered per second.
    pub dlq_per_sec: Option<f64>,
    /// Consumer-group lag per partition of the registration topic.
    pub lag: Vec<PartitionLag>,
    pub total_lag: i64,
    /// Logins and password changes waiting for this api's hashing workers.
    pub hash_queue: i64,
    /// Records this api's producer holds until the broker acknowledges them.
    pub producer_queue: i64,
    /// User events not yet relayed to `user-events`, and the oldest one's age.
    pub outbox_unsent: Option<f64>,
    pub outbox_oldest_seconds: Option<f64>,
    /// Mails waiting in the mail outbox.
    pub mail_unsent: Option<f64>,
    /// Consumer metrics endpoints read, out of those configured.
    pub consumers_read: usize,
    pub consumers_configured: usize,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PartitionLag {
    pub partition: i32,
    pub lag: i64,
}

/// Turns counters into rates between two samples.
pub struct PipelineSampler {
    last: Option<(Instant, HashMap<&'static str, f64>)>,
}

const INTAKE: &str = "intake";
const PERSISTED: &str = "registrar_consumer_users_persisted_total";
const FAILED: &str = "registrar_consumer_registrations_failed_total";
const DLQ: &str = "registrar_consumer_dlq_messages_total";
const OUTBOX: &str = "registrar_user_events_outbox_unsent";
const OUTBOX_AGE: &str = "registrar_user_events_outbox_oldest_unsent_seconds";
const MAIL: &str = "registrar_mail_outbox_unsent";

/// Sums (counters) or maxima (gauges of shared tables) of the named metrics in
/// Prometheus text format.
pub fn read_exposition(text: &str, totals: &mut HashMap<&'static str, f64>) {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let Some(value) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        for known in [PERSISTED, FAILED, DLQ] {
            if name == known {
                *totals.entry(known).or_default() += value;
            }
        }
        for known in [OUTBOX, OUTBOX_AGE, MAIL] {
            if name == known {
                let e = totals.entry(known).or_insert(value);
                *e = e.max(value);
            }
        }
    }
}

impl Default for PipelineSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl PipelineSampler {
    pub fn new() -> Self {
        Self { last: None }
    }

    /// Reads this api's registry and every consumer's `/metrics` once.
    pub async fn sample(&mut self, app: &AppState) -> PipelineSnapshot {
        let now = Instant::now();
        let mut totals: HashMap<&'static str, f64> = HashMap::new();
        let metrics = &app.metrics;
        let accepted = metrics.registrations.with_label_values(&["accepted"]).get();
        totals.insert(INTAKE, accepted as f64);
        let mut lag = Vec::new();
        for family in metrics.registry.gather() {
            if family.name() != "registrar_consumer_lag" {
                continue;
            }
            for m in family.get_metric() {
                let partition = m
                    .get_label()
                    .iter()
                    .find(|l| l.name() == "partition")
                    .and_then(|l| l.value().parse().ok());
                if let Some(partition) = partition {
                    lag.push(PartitionLag {
                        partition,
                        lag: m.get_gauge().get_value() as i64,
                    });
                }
            }
        }
        lag.sort_by_key(|l| l.partition);
        let ops = &app.operations;
        let reads = ops.consumer_metrics.iter().map(|url| async move {
            let response = ops.http.get(url).send().await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            response.text().await.ok()
        });
        let pages = futures::future::join_all(reads).await;
        let consumers_read = pages.iter().filter(|p| p.is_some()).count();
        for page in pages.iter().flatten() {
            read_exposition(page, &mut totals);
        }
        let rate = |name: &'static str| -> Option<f64> {
            let (then, before) = self.last.as_ref()?;
            let secs = now.duration_since(*then).as_secs_f64().max(0.001);
            let (now_v, before_v) = (totals.get(name)?, before.get(name)?);
            // A consumer restarted (its counters start again): no rate this once.
            (now_v >= before_v).then(|| (now_v - before_v) / secs)
        };
        let consumer = |v: Option<f64>| v.filter(|_| consumers_read > 0);
        let snapshot = PipelineSnapshot {
            at: chrono::Utc::now().timestamp_millis(),
            intake_per_sec: rate(INTAKE).unwrap_or(0.0),
            persisted_per_sec: consumer(rate(PERSISTED)),
            failed_per_sec: consumer(rate(FAILED)),
            dlq_per_sec: consumer(rate(DLQ)),
            total_lag: lag.iter().map(|l| l.lag).sum(),
            lag,
            hash_queue: metrics.hash_queue_depth.get(),
            producer_queue: metrics.producer_queue.get(),
            outbox_unsent: consumer(totals.get(OUTBOX).copied()),
            outbox_oldest_seconds: consumer(totals.get(OUTBOX_AGE).copied()),
            mail_unsent: consumer(totals.get(MAIL).copied()),
            consumers_read,
            consumers_configured: ops.consumer_metrics.len(),
        };
        self.last = Some((now, totals));
        snapshot
    }
}

/// May `caller` watch the pipeline (admins)?
pub async fn may_watch_pipeline(app: &AppState, caller: &Caller) -> Result<(), ServiceError> {
    require(app, caller, Role::Admin).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_counters_are_summed_and_shared_gauges_take_the_largest() {
        let mut totals = HashMap::new();
        read_exposition(
            "# HELP registrar_consumer_users_persisted_total Users\n\
             registrar_consumer_users_persisted_total 10\n\
             registrar_consumer_dlq_messages_total{kind=\"undecodable\"} 2\n\
             registrar_consumer_dlq_messages_total{kind=\"invalid\"} 3\n\
             registrar_user_events_outbox_unsent 4\n",
            &mut totals,
        );
        read_exposition(
            "registrar_consumer_users_persisted_total 5\nregistrar_user_events_outbox_unsent 1\n",
            &mut totals,
        );
        assert_eq!(totals[PERSISTED], 15.0);
        assert_eq!(totals[DLQ], 5.0);
        assert_eq!(totals[OUTBOX], 4.0);
        assert!(!totals.contains_key(FAILED));
    }

    #[test]
    fn a_position_is_partition_colon_offset() {
        assert_eq!(parse_position("2:17"), Some((2, 17)));
        assert_eq!(parse_position("2"), None);
        assert_eq!(parse_position("a:1"), None);
    }
}
