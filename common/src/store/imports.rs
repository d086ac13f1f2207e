//! Bulk imports: counts, refused lines (the api's) and failed lines (the consumer's) of
//! each import. The consumer adds to `completed` in the transaction that inserts the
//! users (`users::insert_batch`).

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// Starts an import, or restarts one with the same id (a rerun: its lines keep their
/// registration ids, so the pipeline persists each once; `completed` keeps counting the
/// users the import has persisted, and the failures are recorded again).
pub async fn start(
    client: &impl GenericClient,
    id: Uuid,
    created_by: Option<Uuid>,
    source: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO imports (id, created_by, source) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET started_at = now(), finished_at = NULL, error = NULL,
                 lines = 0, accepted = 0, rejected = 0",
            &[&id, &created_by, &source],
        )
        .await?;
    for sql in [
        "DELETE FROM import_rejections WHERE import_id = $1",
        "DELETE FROM import_failures WHERE import_id = $1",
    ] {
        client.execute(sql, &[&id]).await?;
    }
    Ok(())
}

/// Records refused lines (`(line, errors)`).
pub async fn record_rejections(
    client: &impl GenericClient,
    id: Uuid,
    rejected: &[(i64, serde_json::Value)],
) -> Result<(), tokio_postgres::Error> {
    if rejected.is_empty() {
        return Ok(());
    }
    let lines: Vec<i64> = rejected.iter().map(|r| r.0).collect();
    let errors: Vec<&serde_json::Value> = rejected.iter().map(|r| &r.1).collect();
    client
        .execute(
            "INSERT INTO import_rejections (import_id, line, errors)
             SELECT $1, * FROM UNNEST($2::bigint[], $3::jsonb[])
             ON CONFLICT (import_id, line) DO UPDATE SET errors = EXCLUDED.errors",
            &[&id, &lines, &errors],
        )
        .await?;
    Ok(())
}

/// One imported line that the consumer could not turn into a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFailure {
    pub import_id: Uuid,
    pub line: i64,
    /// A registration failure reason (`EMAIL_TAKEN`, ...).
    pub reason: String,
}

/// Records failed lines (the consumer; an overwrite, so a redelivery changes nothing).
/// Lines of imports that no longer exist are ignored.
pub async fn record_failures(
    client: &impl GenericClient,
    failures: &[LineFailure],
) -> Result<(), tokio_postgres::Error> {
    if failures.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = failures.iter().map(|f| f.import_id).collect();
    let lines: Vec<i64> = failures.iter().map(|f| f.line).collect();
    let reasons: Vec<&str> = failures.iter().map(|f| f.reason.as_str()).collect();
    client
        .execute(
            "INSERT INTO import_failures (import_id, line, reason)
             SELECT t.i, t.l, t.r FROM UNNEST($1::uuid[], $2::bigint[], $3::text[]) AS t(i, l, r)
             WHERE EXISTS (SELECT 1 FROM imports WHERE id = t.i)
             ON CONFLICT (import_id, line) DO UPDATE SET reason = EXCLUDED.reason",
            &[&ids, &lines, &reasons],
        )
        .await?;
    Ok(())
}

/// Ends an import with its counts (and the error that stopped it, if one did).
pub async fn finish(
    client: &impl GenericClient,
    id: Uuid,
    lines: i64,
    accepted: i64,
    rejected: i64,
    error: Option<&str>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE imports SET finished_at = now(), lines = $2, accepted = $3, rejected = $4, error = $5
             WHERE id = $1",
            &[&id, &lines, &accepted, &rejected, &error],
        )
        .await?;
    Ok(())
}

/// Forgets an import that read no line.
pub async fn discard(client: &impl GenericClient, id: Uuid) -> Result<(), tokio_postgres::Error> {
    client
        .execute("DELETE FROM imports WHERE id = $1", &[&id])
        .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct ImportRecord {
    pub id: Uuid,
    pub created_by: Option<Uuid>,
    pub source: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub lines: i64,
    pub accepted: i64,
    pub rejected: i64,
    pub error: Option<String>,
    /// Accepted registrations persisted as users.
    pub completed: i64,
}

const IMPORT_COLUMNS: &str =
    "id, created_by, source, started_at, finished_at, lines, accepted, rejected, error, completed";

fn import_from_row(r: &tokio_postgres::Row) -> ImportRecord {
    ImportRecord {
        id: r.get(0),
        created_by: r.get(1),
        source: r.get(2),
        started_at: r.get(3),
        finished_at: r.get(4),
        lines: r.get(5),
        accepted: r.get(6),
        rejected: r.get(7),
        error: r.get(8),
        completed: r.get(9),
    }
}

pub async fn find(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<ImportRecord>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!("SELECT {IMPORT_COLUMNS} FROM imports WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(import_from_row))
}

/// Imports newest first, at most `limit`, started before `before` when given (keyset
/// paging on `(started_at, id)`).
pub async fn list(
    client: &impl GenericClient,
    limit: i64,
    before: Option<(DateTime<Utc>, Uuid)>,
) -> Result<Vec<ImportRecord>, tokio_postgres::Error> {
    let at = before.map(|b| b.0);
    let id = before.map(|b| b.1);
    let rows = client
        .query(
            &format!(
                "SELECT {IMPORT_COLUMNS} FROM imports
                 WHERE $1::timestamptz IS NULL OR (started_at, id) < ($1, $2::uuid)
                 ORDER BY started_at DESC, id DESC LIMIT $3"
            ),
            &[&at, &id, &limit],
        )
        .await?;
    Ok(rows.iter().map(import_from_row).collect())
}

/// Refused lines, in order, at most `limit`.
pub async fn rejections(
    client: &impl GenericClient,
    id: Uuid,
    limit: i64,
) -> Result<Vec<(i64, serde_json::Value)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT line, errors FROM import_rejections WHERE import_id = $1 ORDER BY line LIMIT $2",
            &[&id, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Failed lines by reason.
pub async fn failures_by_reason(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Vec<(String, i64)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT reason, count(*) FROM import_failures WHERE import_id = $1 GROUP BY reason ORDER BY reason",
            &[&id],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Failed lines, in order, at most `limit`: `(line, reason)`.
pub async fn failures(
    client: &impl GenericClient,
    id: Uuid,
    limit: i64,
) -> Result<Vec<(i64, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT line, reason FROM import_failures WHERE import_id = $1 ORDER BY line LIMIT $2",
            &[&id, &limit],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}
