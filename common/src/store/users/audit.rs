//! The audit trail: one row per change, and reading a user's trail.

use super::*;

/// Who did what, from where: the context of an audit row.
#[derive(Debug, Clone, Default)]
pub struct AuditContext {
    pub actor_id: Option<Uuid>,
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<String>,
}

/// Writes one audit row. Call it on the transaction of the change it records.
pub async fn audit(
    client: &impl GenericClient,
    user_id: Uuid,
    action: &str,
    context: &AuditContext,
    details: serde_json::Value,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO user_audit_log (user_id, action, actor_id, ip, user_agent, details)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &user_id,
                &action,
                &context.actor_id,
                &context.ip,
                &context.user_agent,
                &details,
            ],
        )
        .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: i64,
    pub action: String,
    pub actor_id: Option<Uuid>,
    pub registration_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// A user's audit rows, newest first; `before` is a keyset cursor (an audit id).
pub async fn audit_trail(
    client: &impl GenericClient,
    user_id: Uuid,
    limit: i64,
    offset: i64,
    before: Option<i64>,
) -> Result<Vec<AuditRecord>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, action, actor_id, registration_id, ip, user_agent, details, created_at
             FROM user_audit_log
             WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3 OFFSET $4",
            &[&user_id, &before, &limit, &offset],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| AuditRecord {
            id: r.get(0),
            action: r.get(1),
            actor_id: r.get(2),
            registration_id: r.get(3),
            ip: r
                .get::<_, Option<std::net::IpAddr>>(4)
                .map(|ip| ip.to_string()),
            user_agent: r.get(5),
            details: r.get(6),
            created_at: r.get(7),
        })
        .collect())
}
