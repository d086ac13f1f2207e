//! Bulk imports (admins): NDJSON in, registrations through the pipeline, a status to
//! follow.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::bodies::import::{ImportAnswer, ImportStatusAnswer};
use crate::bodies::ErrorEnvelope;
use crate::caller::Caller;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::service::import::{self, Source};
use crate::service::{accounts, ServiceError};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The import's id: rerunning an import with its id persists each line once.
    /// Default: a new id.
    pub id: Option<String>,
}

async fn require_admin(app: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if !caller.is_admin() {
        return Err(ServiceError::Forbidden.into());
    }
    let client = app.db().await?;
    accounts::ensure_current(&**client, caller).await?;
    Ok(())
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/imports",
    tag = "admin",
    security(("bearer" = [])),
    params(ImportQuery),
    request_body(
        description = "One registration per line (NDJSON; `text/plain` is read the same way): the registration fields, `password` or `passwordHash` (argon2id, argon2i, scrypt PHC or bcrypt), optional `role`, `createdAt` (RFC 3339), `emailVerified`, `id`. Read as a stream.",
        content(
            (String = "application/x-ndjson"),
            (String = "text/plain"),
        ),
    ),
    responses(
        (status = 202, description = "Every line read: accepted lines are in the pipeline, refused ones listed with their errors; follow Location", body = ImportAnswer),
        (status = 400, description = "VALIDATION_ERROR: id is not a UUID, the body holds no line or could not be read", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
        (status = 409, description = "IMPORT_IN_PROGRESS: the admin runs as many imports as IMPORTS_PER_ADMIN allows", body = ErrorEnvelope),
        (status = 413, description = "PAYLOAD_TOO_LARGE: a Content-Length above IMPORT_MAX_BYTES (nothing read), or the body grew past it or past IMPORT_MAX_LINES (the import stopped there: lines before it are in the pipeline; see its status)", body = ErrorEnvelope),
        (status = 503, description = "The broker or a store failed: the import stopped (see its status); rerun it with the same id", body = ErrorEnvelope),
    )
)]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ImportQuery>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Result<
    (
        StatusCode,
        [(header::HeaderName, String); 1],
        Json<ImportAnswer>,
    ),
    ApiError,
> {
    require_admin(&app, &caller).await?;
    let id = query
        .id
        .as_deref()
        .map(|raw| raw.parse::<uuid::Uuid>())
        .transpose()
        .map_err(|_| ServiceError::invalid("id", "must be a UUID"))?;
    // A body announced larger than the limit is refused before anything happens.
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = announced.filter(|l| *l > app.imports.max_bytes) {
        tracing::info!(
            event = "import_refused",
            reason = "too large",
            bytes = length
        );
        return Err(ServiceError::ImportTooLarge(format!(
            "{length} bytes, more than {} (IMPORT_MAX_BYTES)",
            app.imports.max_bytes
        ))
        .into());
    }
    let summary = import::run(
        &app,
        Some(caller.id),
        Source::Api,
        id,
        body.into_data_stream(),
        &|_, _| {},
    )
    .await?;
    let location = format!(
        "{}/admin/imports/{}",
        crate::versioning::CANONICAL,
        summary.id
    );
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(ImportAnswer {
            success: true,
            import_id: summary.id,
            lines: summary.lines,
            accepted: summary.accepted,
            rejected: summary.rejected,
            rejected_lines: summary.rejected_lines,
        }),
    ))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/imports/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Import id (UUID)")),
    responses(
        (status = 200, description = "Counts: accepted, refused, persisted (completed), failed by reason, pending", body = ImportStatusAnswer),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelope),
        (status = 401, description = "No or invalid access token", body = ErrorEnvelope),
        (status = 403, description = "Admins only", body = ErrorEnvelope),
        (status = 404, description = "No such import", body = ErrorEnvelope),
    )
)]
pub async fn status(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ImportStatusAnswer>, ApiError> {
    require_admin(&app, &caller).await?;
    let id = id
        .parse::<uuid::Uuid>()
        .map_err(|_| ServiceError::invalid("id", "must be a UUID"))?;
    let s = import::status(&app, id).await?;
    Ok(Json(ImportStatusAnswer {
        success: true,
        import_id: s.record.id,
        started_at: s.record.started_at,
        finished_at: s.record.finished_at,
        error: s.record.error,
        lines: s.record.lines,
        accepted: s.record.accepted,
        rejected: s.record.rejected,
        completed: s.record.completed,
        failed: s.failed,
        pending: s.pending,
        rejected_lines: s.rejected_lines,
        failed_lines: s.failed_lines,
    }))
}
