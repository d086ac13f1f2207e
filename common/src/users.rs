//! The users repository: every SQL statement about `users` and `user_audit_log`.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::registration::Profile;

/// A registration ready to be persisted: validated profile and a PHC hash.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub registration_id: Uuid,
    pub profile: Profile,
    pub password_hash: String,
    pub submitted_at: DateTime<Utc>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// A new row (and its audit row) was written.
    Created { user_id: Uuid },
    /// This registration was persisted before (a redelivery): nothing written.
    AlreadyPersisted { user_id: Uuid },
    /// Another registration owns this email; the existing user is untouched.
    EmailTaken,
}

/// Writes a batch of users and their `user.registered` audit rows in one transaction.
/// Idempotent: rerunning the same batch writes nothing new and reports the same users.
/// Outcomes come back in input order.
pub async fn insert_batch(
    client: &mut deadpool_postgres::Client,
    users: &[NewUser],
) -> Result<Vec<InsertOutcome>, tokio_postgres::Error> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = users.iter().map(|_| Uuid::now_v7()).collect();
    let registration_ids: Vec<Uuid> = users.iter().map(|u| u.registration_id).collect();
    let emails: Vec<&str> = users.iter().map(|u| u.profile.email.as_str()).collect();
    let first: Vec<&str> = users
        .iter()
        .map(|u| u.profile.first_name.as_str())
        .collect();
    let last: Vec<&str> = users.iter().map(|u| u.profile.last_name.as_str()).collect();
    let gender: Vec<&str> = users.iter().map(|u| u.profile.gender.as_str()).collect();
    let sex: Vec<&str> = users.iter().map(|u| u.profile.sex.as_str()).collect();
    let occupation: Vec<&str> = users
        .iter()
        .map(|u| u.profile.occupation.as_str())
        .collect();
    let hashes: Vec<&str> = users.iter().map(|u| u.password_hash.as_str()).collect();

    let tx = client.transaction().await?;
    // ON CONFLICT DO NOTHING without a target covers both unique keys: a redelivered
    // registration_id and an email someone else owns. Rows of one statement are
    // inserted in order, so within a batch the earlier registration of an email wins,
    // as it would across batches.
    let inserted = tx
        .query(
            "INSERT INTO users (id, registration_id, email, first_name, last_name, gender, sex, occupation, password_hash)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
             ON CONFLICT DO NOTHING
             RETURNING id, registration_id",
            &[&ids, &registration_ids, &emails, &first, &last, &gender, &sex, &occupation, &hashes],
        )
        .await?;
    let created: std::collections::HashMap<Uuid, Uuid> = inserted
        .iter()
        .map(|r| (r.get::<_, Uuid>(1), r.get::<_, Uuid>(0)))
        .collect();

    let missing: Vec<Uuid> = registration_ids
        .iter()
        .copied()
        .filter(|r| !created.contains_key(r))
        .collect();
    let existing: std::collections::HashMap<Uuid, Uuid> = if missing.is_empty() {
        Default::default()
    } else {
        tx.query(
            "SELECT registration_id, id FROM users WHERE registration_id = ANY($1)",
            &[&missing],
        )
        .await?
        .iter()
        .map(|r| (r.get::<_, Uuid>(0), r.get::<_, Uuid>(1)))
        .collect()
    };

    let mut audit_users = Vec::new();
    let mut audit_registrations = Vec::new();
    let mut audit_details = Vec::new();
    let outcomes = users
        .iter()
        .map(|u| {
            if let Some(&user_id) = created.get(&u.registration_id) {
                audit_users.push(user_id);
                audit_registrations.push(u.registration_id);
                audit_details.push(serde_json::json!({
                    "source": "registration",
                    "submittedAt": u.submitted_at.to_rfc3339(),
                    "requestId": u.request_id,
                }));
                InsertOutcome::Created { user_id }
            } else if let Some(&user_id) = existing.get(&u.registration_id) {
                InsertOutcome::AlreadyPersisted { user_id }
            } else {
                InsertOutcome::EmailTaken
            }
        })
        .collect();

    if !audit_users.is_empty() {
        tx.execute(
            "INSERT INTO user_audit_log (user_id, action, actor_id, registration_id, details)
             SELECT u, 'user.registered', u, r, d FROM UNNEST($1::uuid[], $2::uuid[], $3::jsonb[]) AS t(u, r, d)",
            &[&audit_users, &audit_registrations, &audit_details],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Registrations in `ids` that are already persisted, so the consumer can skip hashing
/// redelivered messages.
pub async fn persisted_registrations(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, tokio_postgres::Error> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let rows = client
        .query(
            "SELECT registration_id FROM users WHERE registration_id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A live user's registration, for the polling endpoint's fallback.
#[derive(Debug, Clone)]
pub struct RegisteredUser {
    pub user_id: Uuid,
    pub registration_id: Uuid,
    pub created_at: DateTime<Utc>,
}

pub async fn find_registered_by_email(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<RegisteredUser>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT id, registration_id, created_at FROM users WHERE email = $1 AND deleted_at IS NULL",
            &[&email],
        )
        .await?;
    Ok(row.map(|r| RegisteredUser {
        user_id: r.get(0),
        registration_id: r.get(1),
        created_at: r.get(2),
    }))
}
