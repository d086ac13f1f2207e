//! Changes to an existing user: profile, password, email, deletion and erasure.

use super::*;

/// The columns a profile change may set; `None` leaves a column as it is.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub gender: Option<String>,
    pub sex: Option<String>,
    pub occupation: Option<String>,
    pub username: Option<String>,
    pub date_of_birth: Option<chrono::NaiveDate>,
    pub role: Option<Role>,
    pub password_hash: Option<String>,
}

/// Applies `changes` to a live user and increments its version. Fails with a unique
/// violation when the new email or username belongs to another account
/// (`users_email_key`, `users_username_key`).
pub async fn update(
    client: &impl GenericClient,
    id: Uuid,
    changes: &UserChanges,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let sql = format!(
        "UPDATE users SET
            email = COALESCE($2, email),
            first_name = COALESCE($3, first_name),
            last_name = COALESCE($4, last_name),
            gender = COALESCE($5, gender),
            sex = COALESCE($6, sex),
            occupation = COALESCE($7, occupation),
            role = COALESCE($8, role),
            password_hash = COALESCE($9, password_hash),
            username = COALESCE($10, username),
            date_of_birth = COALESCE($11, date_of_birth),
            email_verified_at = CASE WHEN $2 IS NOT NULL AND $2 <> email THEN NULL ELSE email_verified_at END,
            version = version + 1,
            updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL
         RETURNING {USER_COLUMNS}"
    );
    let role = changes.role.map(Role::as_str);
    Ok(client
        .query_opt(
            &sql,
            &[
                &id,
                &changes.email,
                &changes.first_name,
                &changes.last_name,
                &changes.gender,
                &changes.sex,
                &changes.occupation,
                &role,
                &changes.password_hash,
                &changes.username,
                &changes.date_of_birth,
            ],
        )
        .await?
        .as_ref()
        .map(user_from_row))
}

/// Replaces a hash with a stronger one after a successful login, unless the password
/// changed meanwhile. Not a profile change: the version stays.
pub async fn upgrade_password_hash(
    client: &impl GenericClient,
    id: Uuid,
    old_hash: &str,
    new_hash: &str,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2 AND deleted_at IS NULL",
            &[&id, &old_hash, &new_hash],
        )
        .await?;
    Ok(n == 1)
}

/// Records a requested email change: the new address waits until it is verified.
pub async fn set_pending_email(
    client: &impl GenericClient,
    id: Uuid,
    pending: &str,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let sql = format!(
        "UPDATE users SET pending_email = $2, version = version + 1, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL RETURNING {USER_COLUMNS}"
    );
    Ok(client
        .query_opt(&sql, &[&id, &pending])
        .await?
        .as_ref()
        .map(user_from_row))
}

/// Marks `email` verified: the current address, or the pending one, which then becomes
/// the address. Fails with a unique violation when another account took the address
/// meanwhile. `None`: the user is gone or the address is neither of them any more.
pub async fn verify_email(
    client: &impl GenericClient,
    id: Uuid,
    email: &str,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    let sql = format!(
        "UPDATE users SET
            email = $2,
            pending_email = CASE WHEN pending_email = $2 THEN NULL ELSE pending_email END,
            email_verified_at = now(), version = version + 1, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL AND (email = $2 OR pending_email = $2)
         RETURNING {USER_COLUMNS}"
    );
    Ok(client
        .query_opt(&sql, &[&id, &email])
        .await?
        .as_ref()
        .map(user_from_row))
}

/// Sets a new password hash (a reset); the version moves, as for any change.
pub async fn set_password_hash(
    client: &impl GenericClient,
    id: Uuid,
    hash: &str,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE users SET password_hash = $2, version = version + 1, updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL",
            &[&id, &hash],
        )
        .await?;
    Ok(n == 1)
}

/// Soft delete: the row stays (for audit and uniqueness), login is refused.
pub async fn soft_delete(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE users SET deleted_at = now(), updated_at = now(), version = version + 1
             WHERE id = $1 AND deleted_at IS NULL",
            &[&id],
        )
        .await?;
    Ok(n == 1)
}

/// GDPR erasure: every personal field replaced, the password made unusable, the audit
/// trail kept without addresses, user agents or data keys, the user's data removed.
pub async fn erase(client: &impl GenericClient, id: Uuid) -> Result<bool, tokio_postgres::Error> {
    let placeholder = format!("erased-{}@erased.invalid", id.simple());
    let n = client
        .execute(
            "UPDATE users SET email = $2, first_name = NULL, last_name = NULL, gender = NULL,
                 sex = NULL, occupation = NULL, username = NULL, date_of_birth = NULL,
                 password_hash = '!erased', pending_email = NULL,
                 scim_user_name = NULL, external_id = NULL, scim_attributes = NULL,
                 deleted_at = COALESCE(deleted_at, now()), erased_at = now(),
                 updated_at = now(), version = version + 1
             WHERE id = $1 AND erased_at IS NULL",
            &[&id, &placeholder],
        )
        .await?;
    if n == 0 {
        return Ok(false);
    }
    client
        .execute(
            "UPDATE user_audit_log SET ip = NULL, user_agent = NULL, details = details - 'key' - 'requestId'
             WHERE user_id = $1 OR actor_id = $1",
            &[&id],
        )
        .await?;
    // Rows elsewhere that name the address: the account's events lose it (published
    // ones leave the outbox, the topic's own retention is the operator's; unpublished
    // ones are published without it, so their sequence has no gap). An import keeps
    // counts and line numbers, never addresses.
    scrub_unsent_events(client, id).await?;
    for sql in [
        "DELETE FROM data_store WHERE user_id = $1",
        "DELETE FROM account_tokens WHERE user_id = $1",
        "DELETE FROM mail_outbox WHERE user_id = $1",
        "DELETE FROM mfa_recovery_codes WHERE user_id = $1",
        "DELETE FROM user_mfa WHERE user_id = $1",
        "DELETE FROM passkeys WHERE user_id = $1",
        "DELETE FROM user_identities WHERE user_id = $1",
    ] {
        client.execute(sql, &[&id]).await?;
    }
    Ok(true)
}

/// Deletes the account's published events and rewrites its unpublished ones without
/// their email (erasure). One the relay publishes meanwhile stays, without the email,
/// until the retention purge.
async fn scrub_unsent_events(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    use crate::events::user::UserEvent;
    client
        .execute(
            "DELETE FROM user_event_outbox WHERE user_id = $1
             AND seq <= (SELECT published_seq FROM user_event_relay)",
            &[&id],
        )
        .await?;
    let rows = client
        .query(
            "SELECT seq, payload FROM user_event_outbox WHERE user_id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    for row in rows {
        let seq: i64 = row.get(0);
        let scrubbed = UserEvent::decode(row.get(1)).ok().and_then(|mut e| {
            e.email = None;
            e.encode().ok()
        });
        match scrubbed {
            Some(payload) => {
                client
                    .execute(
                        "UPDATE user_event_outbox SET payload = $2 WHERE seq = $1",
                        &[&seq, &payload],
                    )
                    .await?;
            }
            // Not an event this build reads: it cannot be scrubbed, so it goes.
            None => {
                client
                    .execute("DELETE FROM user_event_outbox WHERE seq = $1", &[&seq])
                    .await?;
            }
        }
    }
    Ok(())
}
