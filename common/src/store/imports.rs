//! Bulk imports: counts, refused lines and accepted registrations of each import.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// Starts an import, or restarts one with the same id (a rerun: its lines keep their
/// registration ids, so the pipeline persists each once).
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
    client
        .execute("DELETE FROM import_rejections WHERE import_id = $1", &[&id])
        .await?;
    Ok(())
}

/// Records accepted lines (`(line, registration_id, email)`) and refused ones
/// (`(line, errors)`).
pub async fn record(
    client: &impl GenericClient,
    id: Uuid,
    accepted: &[(i64, Uuid, String)],
    rejected: &[(i64, serde_json::Value)],
) -> Result<(), tokio_postgres::Error> {
    if !accepted.is_empty() {
        let lines: Vec<i64> = accepted.iter().map(|a| a.0).collect();
        let ids: Vec<Uuid> = accepted.iter().map(|a| a.1).collect();
        let emails: Vec<&str> = accepted.iter().map(|a| a.2.as_str()).collect();
        client
            .execute(
                "INSERT INTO import_registrations (import_id, line, registration_id, email)
                 SELECT $1, * FROM UNNEST($2::bigint[], $3::uuid[], $4::text[])
                 ON CONFLICT (import_id, line) DO UPDATE SET registration_id = EXCLUDED.registration_id, email = EXCLUDED.email",
                &[&id, &lines, &ids, &emails],
            )
            .await?;
    }
    if !rejected.is_empty() {
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
    }
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

pub async fn find(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<ImportRecord>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT i.id, i.created_by, i.source, i.started_at, i.finished_at, i.lines, i.accepted, i.rejected, i.error,
                    (SELECT count(*) FROM import_registrations r JOIN users u ON u.registration_id = r.registration_id
                     WHERE r.import_id = i.id)
             FROM imports i WHERE i.id = $1",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| ImportRecord {
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
    }))
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

/// Accepted registrations not persisted (yet, or ever): `(line, registration_id, email)`.
pub async fn unfinished(
    client: &impl GenericClient,
    id: Uuid,
    limit: i64,
) -> Result<Vec<(i64, Uuid, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT r.line, r.registration_id, r.email FROM import_registrations r
             WHERE r.import_id = $1 AND NOT EXISTS (SELECT 1 FROM users u WHERE u.registration_id = r.registration_id)
             ORDER BY r.line LIMIT $2",
            &[&id, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}
