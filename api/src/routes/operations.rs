//! The operators' routes behind the console: registrations in flight, dead letters and
//! their replay, imports' history and the live pipeline (Server-Sent Events).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use common::ops::dead_letters::Selection;
use futures::Stream;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::bodies::operations::{
    DeadLetterAnswer, DeadLetterListAnswer, DeadLetterView, ImportListAnswer, PipelineAnswer,
    RefusedReplay, RegistrationsAnswer, ReplayAnswer, ReplayRequest,
};
use crate::bodies::ErrorEnvelope;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::service::operations::{self, PipelineSampler};
use crate::service::{import, ServiceError};
use crate::state::AppState;

/// The most dead letters one answer lists (`total` counts them all).
pub const DEAD_LETTERS_LISTED: usize = 500;

/// How often the live view gets a sample.
pub const PIPELINE_TICK: Duration = Duration::from_secs(1);
/// A stream ends after this long (at most an access token's life): the page reconnects
/// with a fresh token, so a revoked admin stops watching.
pub const PIPELINE_STREAM_MAX: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RegistrationsQuery {
    /// An email address or a registration id.
    pub q: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/registrations",
    tag = "admin",
    security(("bearer" = [])),
    params(RegistrationsQuery),
    responses(
        (status = 200, description = "Registrations in flight, failures of the last 24 h by reason, and with `q` where one stands", body = RegistrationsAnswer),
        (status = 400, description = "q is neither an email address nor a registration id", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Moderators and admins only", body = ErrorEnvelope),
        (status = 503, description = "Redis is unavailable", body = ErrorEnvelope),
    )
)]
pub async fn registrations(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<RegistrationsQuery>,
) -> Result<Json<RegistrationsAnswer>, ApiError> {
    let q = query.q.as_deref();
    if q.is_some_and(|q| q.len() > 254) {
        return Err(ServiceError::invalid("q", "must be at most 254 characters").into());
    }
    Ok(Json(
        operations::registrations(&app, &caller, q).await?.into(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// Only this `error.kind` (undecodable, invalid, credential, unauthenticated).
    pub kind: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/dead-letters",
    tag = "admin",
    security(("bearer" = [])),
    params(DeadLetterQuery),
    responses(
        (status = 200, description = "The records of the dead-letter topic, newest first (at most 500; `total` counts all), with headers, error and decoded payload (never a credential)", body = DeadLetterListAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
        (status = 503, description = "Kafka is unavailable", body = ErrorEnvelope),
    )
)]
pub async fn dead_letters(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<DeadLetterQuery>,
) -> Result<Json<DeadLetterListAnswer>, ApiError> {
    let records = operations::dead_letters(&app, &caller, query.kind).await?;
    // The newest first, at most LIST_LIMIT of them (the DLQ's retention bounds the rest).
    let data: Vec<DeadLetterView> = records
        .iter()
        .rev()
        .take(DEAD_LETTERS_LISTED)
        .map(Into::into)
        .collect();
    Ok(Json(DeadLetterListAnswer {
        success: true,
        count: data.len(),
        total: records.len(),
        data,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/dead-letters/{position}",
    tag = "admin",
    security(("bearer" = [])),
    params(("position" = String, Path, description = "`<partition>:<offset>`")),
    responses(
        (status = 200, description = "One dead letter", body = DeadLetterAnswer),
        (status = 400, description = "Not `<partition>:<offset>`", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
        (status = 404, description = "No such dead letter", body = ErrorEnvelope),
        (status = 503, description = "Kafka is unavailable", body = ErrorEnvelope),
    )
)]
pub async fn dead_letter(
    State(app): State<AppState>,
    caller: Caller,
    Path(position): Path<String>,
) -> Result<Json<DeadLetterAnswer>, ApiError> {
    if operations::parse_position(&position).is_none() {
        return Err(ServiceError::invalid("position", "must be <partition>:<offset>").into());
    }
    let record = operations::dead_letter(&app, &caller, &position).await?;
    Ok(Json(DeadLetterAnswer {
        success: true,
        data: (&record).into(),
    }))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/dead-letters/replay",
    tag = "admin",
    security(("bearer" = [])),
    request_body = ReplayRequest,
    responses(
        (status = 200, description = "What went back on the registration topic (or would, with dryRun) and what was refused with why. A replayed registration keeps its id: it is persisted once", body = ReplayAnswer),
        (status = 400, description = "Neither positions nor all, or a position is not `<partition>:<offset>`", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE: the body exceeds 16 KiB", body = ErrorEnvelope),
        (status = 503, description = "Kafka is unavailable: nothing or part was replayed; replaying again is safe", body = ErrorEnvelope),
    )
)]
pub async fn replay(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> Result<Json<ReplayAnswer>, ApiError> {
    let positions = body.positions.unwrap_or_default();
    let dry_run = body.dry_run.unwrap_or(false);
    if positions.is_empty() && !body.all.unwrap_or(false) {
        return Err(ServiceError::invalid(
            "positions",
            "name the records, or set all to replay every one (of kind)",
        )
        .into());
    }
    if positions.len() > 500 {
        return Err(ServiceError::invalid("positions", "at most 500").into());
    }
    let selection = Selection {
        kind: body.kind.filter(|k| !k.is_empty()),
        positions,
    };
    let outcome = operations::replay(&app, &caller, selection, dry_run).await?;
    Ok(Json(ReplayAnswer {
        success: true,
        dry_run,
        replayed: outcome.replayed.iter().map(|r| r.position()).collect(),
        refused: outcome
            .refused
            .iter()
            .map(|(r, reason)| RefusedReplay {
                position: r.position(),
                reason: reason.clone(),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportHistoryQuery {
    /// 1-100, default 20.
    pub limit: Option<i64>,
    /// `nextBefore` of the previous page.
    pub before: Option<uuid::Uuid>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/imports",
    tag = "admin",
    security(("bearer" = [])),
    params(ImportHistoryQuery),
    responses(
        (status = 200, description = "Imports, newest first", body = ImportListAnswer),
        (status = 400, description = "Bad limit or before", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
    )
)]
pub async fn imports(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ImportHistoryQuery>,
) -> Result<Json<ImportListAnswer>, ApiError> {
    operations::may_watch_pipeline(&app, &caller).await?;
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ServiceError::invalid("limit", "must be 1-100").into());
    }
    let (rows, next) = import::history(&app, limit, query.before).await?;
    Ok(Json(ImportListAnswer {
        success: true,
        data: rows.into_iter().map(Into::into).collect(),
        next_before: next,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/pipeline",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One sample of the pipeline (rates are 0 or null: they need two samples; see the stream)", body = PipelineAnswer),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
    )
)]
pub async fn pipeline(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<PipelineAnswer>, ApiError> {
    operations::may_watch_pipeline(&app, &caller).await?;
    let data = PipelineSampler::new().sample(&app).await;
    Ok(Json(PipelineAnswer {
        success: true,
        data,
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/pipeline/stream",
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`text/event-stream`: a `pipeline` event each second whose data is a PipelineSnapshot (JSON): intake/s, persisted/s, failed/s, DLQ/s, lag per partition, hash and producer queues, outbox. Ends after 15 minutes or when the session is revoked; reconnect", content_type = "text/event-stream", body = crate::bodies::operations::PipelineEvent),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
    )
)]
pub async fn pipeline_stream(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    operations::may_watch_pipeline(&app, &caller).await?;
    let started = tokio::time::Instant::now();
    let mut ticker = tokio::time::interval(PIPELINE_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state = (app, caller, PipelineSampler::new(), ticker, 0u64);
    let stream = futures::stream::unfold(
        state,
        move |(app, caller, mut sampler, mut ticker, n)| async move {
            ticker.tick().await;
            if started.elapsed() > PIPELINE_STREAM_MAX || app.is_draining() {
                return None;
            }
            // Every 10 s: is the watcher still an admin with a live session?
            if n % 10 == 9
                && (operations::may_watch_pipeline(&app, &caller).await.is_err()
                    || app
                        .stores
                        .revoked_sessions
                        .is_revoked(caller.session_id)
                        .await
                        .unwrap_or(true))
            {
                return None;
            }
            let snapshot = sampler.sample(&app).await;
            let event = Event::default()
                .event("pipeline")
                .json_data(&snapshot)
                .unwrap_or_else(|_| Event::default().comment("unserialisable"));
            Some((Ok(event), (app, caller, sampler, ticker, n + 1)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
