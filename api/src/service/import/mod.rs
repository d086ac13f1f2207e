//! Bulk import: NDJSON lines become registrations *through the pipeline* (the consumer
//! persists them like any other, with the same rules: a taken email fails with
//! `EMAIL_TAKEN`). A line carries `password` (sealed like a registration's) or
//! `passwordHash` (argon2id, argon2i, scrypt or bcrypt, stored as is and re-hashed at the
//! first login). The body is read as a stream, line by line; accepted lines are
//! published in chunks, each read and checked while the one before it is published and
//! published once every record of that one was acknowledged, so at most two chunks are
//! in memory whatever the file's size.
//!
//! Each line's registration id is derived from the import id and the line number (or
//! given as `id`): rerunning an import with its id persists each line once.

use std::collections::BTreeMap;

use axum::body::Bytes;
use common::events::registration::RegistrationEvent;
use common::store::imports;
use common::store::imports::ImportRecord;
use futures::{Stream, StreamExt};
use serde_json::json;
use uuid::Uuid;

use super::ServiceError;
use crate::bodies::import::{LineError, LineFailure};
use crate::bodies::ErrorDetail;
use crate::state::AppState;

mod line;

use line::parse_line;
pub use line::{registration_id, MAX_LINE_BYTES};

/// Records awaiting their acknowledgement at once.
const IN_FLIGHT: usize = 256;
/// How long a record waits for room in a full producer queue, or keeps being retried
/// after the broker did not acknowledge it in time, before the import stops.
const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// First pause before a record the broker did not acknowledge is sent again; doubles up
/// to [`RETRY_PAUSE_MAX`].
const RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
const RETRY_PAUSE_MAX: std::time::Duration = std::time::Duration::from_secs(2);
/// Refused lines returned in the answer.
const ANSWER_REJECTIONS: usize = 1000;

/// Where an import comes from (recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Api,
    Cli,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportSummary {
    pub id: Uuid,
    pub lines: i64,
    pub accepted: i64,
    pub rejected: i64,
    pub rejected_lines: Vec<LineError>,
}

/// Publishes one record. A full producer queue is back-pressure here (an import is
/// not a client to shed): the record waits for room. A record the broker did not
/// acknowledge in time (a produce timeout, a leader election) is sent again with a
/// growing pause: an import is resumable work, not a request with a client waiting, and
/// a resent record is harmless (the consumer treats a registration id it persisted as
/// done). Either way the import stops only after `wait` ([`QUEUE_WAIT`]) without success.
async fn publish_waiting(
    publisher: &dyn crate::publisher::RegistrationPublisher,
    key: &str,
    payload: &[u8],
    headers: crate::publisher::RecordHeaders<'_>,
    wait: std::time::Duration,
) -> Result<(), ServiceError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut pause = RETRY_PAUSE;
    loop {
        match publisher.publish(key, payload, headers).await {
            Err(crate::publisher::PublishError::QueueFull)
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            Err(crate::publisher::PublishError::Unavailable(e))
                if tokio::time::Instant::now() + pause < deadline =>
            {
                tracing::warn!(event = "import_publish_retried", error = %e, pause_ms = pause.as_millis() as u64);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_PAUSE_MAX);
            }
            other => return other.map_err(ServiceError::from),
        }
    }
}

/// Accepted lines waiting to be published, and refused ones waiting to be recorded.
#[derive(Default)]
struct Chunk {
    events: Vec<(i64, RegistrationEvent)>,
    rejected: Vec<(i64, Vec<ErrorDetail>)>,
}

struct Run<'a> {
    app: &'a AppState,
    id: Uuid,
    lines: i64,
    accepted: i64,
    rejected: i64,
    /// Lines that were not blank.
    seen: i64,
    answer: Vec<LineError>,
    chunk: Chunk,
    /// The chunk being published while the next one is read: its refused lines and
    /// the number of accepted ones, once every acknowledgement came.
    publishing: Option<tokio::task::JoinHandle<Result<Published, ServiceError>>>,
    /// When reading began: the pace (`IMPORT_RATE_PER_SEC`) counts from here.
    started: tokio::time::Instant,
    /// The admin's lease on one of their concurrent imports, renewed at each chunk.
    lease: Option<common::store::leases::Lease>,
}

/// A chunk whose accepted lines the broker acknowledged.
struct Published {
    accepted: usize,
    rejected: Vec<(i64, Vec<ErrorDetail>)>,
}

/// Publishes accepted lines, at most [`IN_FLIGHT`] awaiting acknowledgement at once.
async fn publish_chunk(
    publisher: std::sync::Arc<dyn crate::publisher::RegistrationPublisher>,
    chunk: Chunk,
) -> Result<Published, ServiceError> {
    let mut payloads = Vec::with_capacity(chunk.events.len());
    for (_, event) in &chunk.events {
        payloads.push(
            event
                .encode()
                .map_err(|e| ServiceError::Internal(e.into()))?,
        );
    }
    for (events, payloads) in chunk
        .events
        .chunks(IN_FLIGHT)
        .zip(payloads.chunks(IN_FLIGHT))
    {
        let results =
            futures::future::join_all(events.iter().zip(payloads).map(|((_, event), payload)| {
                publish_waiting(
                    &*publisher,
                    &event.email,
                    payload,
                    crate::publisher::RecordHeaders {
                        request_id: event.request_id.as_deref(),
                        prehashed: matches!(
                            event.credential,
                            common::events::registration::Credential::PasswordHash(_)
                        ),
                        purpose: common::events::signature::Purpose::Import,
                    },
                    QUEUE_WAIT,
                )
            }))
            .await;
        for result in results {
            result?;
        }
    }
    Ok(Published {
        accepted: chunk.events.len(),
        rejected: chunk.rejected,
    })
}

impl Run<'_> {
    fn take(&mut self, number: i64, raw: &[u8]) {
        self.lines = number;
        let trimmed = raw.trim_ascii();
        if trimmed.is_empty() {
            return;
        }
        self.seen += 1;
        match parse_line(self.app, self.id, number, trimmed) {
            Ok(event) => self.chunk.events.push((number, event)),
            Err(errors) => self.chunk.rejected.push((number, errors)),
        }
    }

    /// Starts publishing the chunk, after the one before it was acknowledged and
    /// recorded: reading and checking the next lines overlaps the broker's round trips,
    /// and at most two chunks are held in memory.
    async fn flush(&mut self) -> Result<(), ServiceError> {
        self.settle().await?;
        self.pace().await;
        if let Some(lease) = &self.lease {
            if !self.app.stores.leases.renew(lease).await? {
                tracing::warn!(event = "import_lease_lost", import_id = %self.id);
            }
        }
        let chunk = std::mem::take(&mut self.chunk);
        self.publishing = Some(tokio::spawn(publish_chunk(
            self.app.publisher.clone(),
            chunk,
        )));
        Ok(())
    }

    /// Holds the import to its own rate: the lines read so far may not run ahead of
    /// `IMPORT_RATE_PER_SEC` since the start, so a big import takes its share of the
    /// producer, the topic and the consumers, and sign-ups keep theirs.
    async fn pace(&self) {
        let rate = self.app.imports.rate_per_sec;
        if rate == 0 {
            return;
        }
        let lines = u64::try_from(self.lines).unwrap_or(0);
        let due = self.started + std::time::Duration::from_secs_f64(lines as f64 / f64::from(rate));
        tokio::time::sleep_until(due).await;
    }

    /// Waits for the chunk being published and records it.
    async fn settle(&mut self) -> Result<(), ServiceError> {
        let Some(publishing) = self.publishing.take() else {
            return Ok(());
        };
        let published = publishing
            .await
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("publishing a chunk: {e}")))??;
        let rejected: Vec<(i64, serde_json::Value)> = published
            .rejected
            .iter()
            .map(|(n, errors)| (*n, json!(errors)))
            .collect();
        if !rejected.is_empty() {
            let client = self.app.db().await?;
            imports::record_rejections(&**client, self.id, &rejected).await?;
        }
        self.accepted += i64::try_from(published.accepted).unwrap_or(0);
        self.rejected += i64::try_from(rejected.len()).unwrap_or(0);
        for (line, errors) in published.rejected {
            if self.answer.len() < ANSWER_REJECTIONS {
                self.answer.push(LineError { line, errors });
            }
        }
        Ok(())
    }
}

/// Runs an import from a stream of body chunks. `progress` hears `(lines, bytes)` after
/// each published chunk. A failing dependency stops the import (recorded on it); what
/// was published stays published, and a rerun with the same id completes it.
pub async fn run<S, E>(
    app: &AppState,
    actor: Option<Uuid>,
    source: Source,
    id: Option<Uuid>,
    body: S,
    progress: &(dyn Fn(i64, u64) + Send + Sync),
) -> Result<ImportSummary, ServiceError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let id = id.unwrap_or_else(Uuid::now_v7);
    let limits = app.imports;
    // One admin runs at most IMPORTS_PER_ADMIN imports over the api at once.
    let lease = match (source, actor) {
        (Source::Api, Some(admin)) => Some(
            app.stores
                .leases
                .acquire(&format!("imports:{admin}"), limits.per_admin, IMPORT_LEASE)
                .await?
                .ok_or(ServiceError::ImportInProgress)?,
        ),
        _ => None,
    };
    let result = run_leased(app, actor, source, id, lease.clone(), body, progress).await;
    if let Some(lease) = &lease {
        if let Err(e) = app.stores.leases.release(lease).await {
            // It expires on its own within IMPORT_LEASE.
            tracing::warn!(event = "import_lease_not_released", import_id = %id, error = %e);
        }
    }
    result
}

/// How long an import's lease lasts without a renewal (one per chunk): a crashed api's
/// imports stop counting against their admin after this.
const IMPORT_LEASE: std::time::Duration = std::time::Duration::from_secs(120);

async fn run_leased<S, E>(
    app: &AppState,
    actor: Option<Uuid>,
    source: Source,
    id: Uuid,
    lease: Option<common::store::leases::Lease>,
    mut body: S,
    progress: &(dyn Fn(i64, u64) + Send + Sync),
) -> Result<ImportSummary, ServiceError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let limits = app.imports;
    {
        let client = app.db().await?;
        let source = match source {
            Source::Api => "api",
            Source::Cli => "cli",
        };
        imports::start(&**client, id, actor, source).await?;
    }
    tracing::info!(event = "import_started", import_id = %id, ?actor);
    let mut run = Run {
        app,
        id,
        lines: 0,
        accepted: 0,
        rejected: 0,
        seen: 0,
        answer: Vec::new(),
        chunk: Chunk::default(),
        publishing: None,
        started: tokio::time::Instant::now(),
        lease,
    };
    let mut buffer: Vec<u8> = Vec::new();
    let mut bytes_read: u64 = 0;
    let mut number: i64 = 0;
    let outcome: Result<(), ServiceError> = async {
        while let Some(piece) = body.next().await {
            let piece = piece
                .map_err(|e| ServiceError::invalid("body", format!("could not be read: {e}")))?;
            bytes_read += piece.len() as u64;
            if bytes_read > limits.max_bytes {
                return Err(ServiceError::ImportTooLarge(format!(
                    "more than {} bytes (IMPORT_MAX_BYTES)",
                    limits.max_bytes
                )));
            }
            buffer.extend_from_slice(&piece);
            let mut start = 0;
            while let Some(end) = buffer[start..].iter().position(|b| *b == b'\n') {
                number += 1;
                if u64::try_from(number).unwrap_or(u64::MAX) > limits.max_lines {
                    return Err(too_many_lines(limits.max_lines));
                }
                run.take(number, &buffer[start..start + end]);
                start += end + 1;
                if run.chunk.events.len() + run.chunk.rejected.len() >= limits.chunk_lines {
                    run.flush().await?;
                    progress(run.lines, bytes_read);
                }
            }
            buffer.drain(..start);
            if buffer.len() > MAX_LINE_BYTES {
                // A line that never ends: refuse it, skip to its end.
                number += 1;
                run.take(number, &buffer);
                buffer.clear();
                let mut skipping = true;
                while skipping {
                    match body.next().await {
                        Some(Ok(piece)) => {
                            bytes_read += piece.len() as u64;
                            if let Some(end) = piece.iter().position(|b| *b == b'\n') {
                                buffer.extend_from_slice(&piece[end + 1..]);
                                skipping = false;
                            }
                        }
                        Some(Err(e)) => {
                            return Err(ServiceError::invalid(
                                "body",
                                format!("could not be read: {e}"),
                            ))
                        }
                        None => skipping = false,
                    }
                }
            }
        }
        if !buffer.trim_ascii().is_empty() {
            number += 1;
            if u64::try_from(number).unwrap_or(u64::MAX) > limits.max_lines {
                return Err(too_many_lines(limits.max_lines));
            }
            run.take(number, &buffer);
        }
        if run.seen == 0 {
            return Err(ServiceError::invalid(
                "body",
                "holds no lines: one registration per line (NDJSON)",
            ));
        }
        run.flush().await?;
        run.settle().await?;
        progress(run.lines, bytes_read);
        Ok(())
    }
    .await;
    // Stopped early: what is still being published finishes (its lines count) or fails.
    let outcome = match run.settle().await {
        Err(e) if outcome.is_ok() => Err(e),
        _ => outcome,
    };
    let client = app.db().await?;
    if run.seen == 0 {
        // Nothing to import: no record of it.
        imports::discard(&**client, id).await?;
        return Err(outcome
            .err()
            .unwrap_or_else(|| ServiceError::invalid("body", "holds no lines")));
    }
    let error = outcome.as_ref().err().map(|e| e.to_string());
    imports::finish(
        &**client,
        id,
        run.lines,
        run.accepted,
        run.rejected,
        error.as_deref(),
    )
    .await?;
    match outcome {
        Ok(()) => {
            tracing::info!(event = "import_published", import_id = %id, lines = run.lines, accepted = run.accepted, rejected = run.rejected);
            Ok(ImportSummary {
                id,
                lines: run.lines,
                accepted: run.accepted,
                rejected: run.rejected,
                rejected_lines: run.answer,
            })
        }
        Err(e) => {
            tracing::warn!(event = "import_stopped", import_id = %id, lines = run.lines, error = %e);
            Err(e)
        }
    }
}

fn too_many_lines(max: u64) -> ServiceError {
    ServiceError::ImportTooLarge(format!("more than {max} lines (IMPORT_MAX_LINES)"))
}

/// An import's state: counts, persisted users, failures by reason, refused lines.
pub struct ImportStatus {
    pub record: ImportRecord,
    pub failed: BTreeMap<String, i64>,
    pub pending: i64,
    pub rejected_lines: Vec<LineError>,
    pub failed_lines: Vec<LineFailure>,
}

pub async fn status(app: &AppState, id: Uuid) -> Result<ImportStatus, ServiceError> {
    let client = app.db().await?;
    let record = imports::find(&**client, id)
        .await?
        .ok_or(ServiceError::NotFound("Import"))?;
    let rejected_lines = imports::rejections(&**client, id, 100)
        .await?
        .into_iter()
        .map(|(line, errors)| LineError {
            line,
            errors: serde_json::from_value(errors).unwrap_or_default(),
        })
        .collect();
    let failed: BTreeMap<String, i64> = imports::failures_by_reason(&**client, id)
        .await?
        .into_iter()
        .collect();
    let failed_lines = imports::failures(&**client, id, 100)
        .await?
        .into_iter()
        .map(|(line, reason)| LineFailure { line, reason })
        .collect();
    let failed_count: i64 = failed.values().sum();
    let pending = (record.accepted - record.completed - failed_count).max(0);
    Ok(ImportStatus {
        record,
        failed,
        pending,
        rejected_lines,
        failed_lines,
    })
}

/// Imports newest first, `limit` of them, older than the import `before` when given.
/// Returns the page and the id to pass for the next one.
pub async fn history(
    app: &AppState,
    limit: i64,
    before: Option<Uuid>,
) -> Result<(Vec<ImportRecord>, Option<Uuid>), ServiceError> {
    let client = app.db().await?;
    let after = match before {
        Some(id) => Some(
            imports::find(&**client, id)
                .await?
                .map(|r| (r.started_at, r.id))
                .ok_or_else(|| ServiceError::invalid("before", "no such import"))?,
        ),
        None => None,
    };
    let mut rows = imports::list(&**client, limit + 1, after).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id)
    } else {
        None
    };
    Ok((rows, next))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use futures::future::BoxFuture;

    use super::publish_waiting;
    use crate::publisher::{PublishError, RecordHeaders, RegistrationPublisher};

    /// Fails the first `failures` sends as a broker timeout would, then acknowledges.
    struct Flaky {
        failures: usize,
        sends: AtomicUsize,
    }

    impl RegistrationPublisher for Flaky {
        fn publish<'a>(
            &'a self,
            _key: &'a str,
            _payload: &'a [u8],
            _headers: RecordHeaders<'a>,
        ) -> BoxFuture<'a, Result<(), PublishError>> {
            let n = self.sends.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n < self.failures {
                    Err(PublishError::Unavailable(anyhow::anyhow!(
                        "Local: Message timed out"
                    )))
                } else {
                    Ok(())
                }
            })
        }
        fn check(&self, _timeout: Duration) -> BoxFuture<'_, anyhow::Result<()>> {
            Box::pin(async { Ok(()) })
        }
        fn flush(&self, _timeout: Duration) -> BoxFuture<'_, ()> {
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn an_import_record_the_broker_timed_out_is_sent_again_instead_of_stopping_the_import() {
        let flaky = Flaky {
            failures: 3,
            sends: AtomicUsize::new(0),
        };
        let wait = Duration::from_secs(30);
        publish_waiting(
            &flaky,
            "a@example.com",
            b"x",
            RecordHeaders::default(),
            wait,
        )
        .await
        .expect("a transient timeout does not stop the import");
        assert_eq!(flaky.sends.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn an_import_stops_once_the_broker_stays_unavailable_for_the_whole_wait() {
        let down = Flaky {
            failures: usize::MAX,
            sends: AtomicUsize::new(0),
        };
        let wait = Duration::from_millis(1500);
        let result =
            publish_waiting(&down, "a@example.com", b"x", RecordHeaders::default(), wait).await;
        assert!(result.is_err(), "a broker that stays down stops the import");
        // 100 + 200 + 400 + 800 ms of pauses fit in the wait only up to the fourth send.
        assert_eq!(down.sends.load(Ordering::SeqCst), 4);
    }
}
