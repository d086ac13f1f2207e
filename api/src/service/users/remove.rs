//! How a user leaves: soft delete (self or admin) and erasure (admin), each ending
//! every session, and erasure forgetting the address in Redis too.

use common::domain::Role;
use common::events::user::{UserEvent, UserEventType};
use common::store::sessions;
use common::store::user_events;
use common::store::users::{self, AuditContext};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::update::{keep_an_admin, reauthenticate};
use super::visible_user;
use crate::caller::{Caller, RequestContext};
use crate::service::committed::{after_commit, forget_email};
use crate::service::{accounts, ServiceError};
use crate::state::AppState;

/// How a user leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Soft delete: the row stays for audit and uniqueness; login is refused.
    Delete,
    /// GDPR erasure (admins only): personal data anonymised, the audit trail kept
    /// without it, data items and sessions removed.
    Erase,
}

/// Deletes (self or admin) or erases (admin) a user and ends every session. Deleting
/// one's own account needs `current_password`; the last admin cannot be removed.
pub async fn remove_user(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: Uuid,
    removal: Removal,
    current_password: Option<SecretString>,
) -> Result<(), ServiceError> {
    let erase = removal == Removal::Erase;
    if !caller.is_self_or_admin(id) || (erase && !caller.is_admin()) {
        return Err(ServiceError::Forbidden);
    }
    if caller.id == id {
        let own = visible_user(app, caller, id).await?;
        reauthenticate(app, context, current_password, &own).await?;
    }
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    accounts::ensure_current(&*tx, caller).await?;
    let user = users::lock_by_id(&*tx, id)
        .await?
        .ok_or(ServiceError::NotFound("User"))?;
    if user.role == Role::Admin && !user.is_deleted() {
        keep_an_admin(&tx, id).await?;
    }
    let revoked = match removal {
        Removal::Erase => {
            if !users::erase(&*tx, id).await? {
                return Err(ServiceError::NotFound("User"));
            }
            let revoked = sessions::delete_user(&*tx, id).await?;
            // The webhook log keeps nothing of the user; what still waits loses the email.
            common::store::webhooks::erase_subject(&*tx, id).await?;
            // The erasure row names the acting admin only: no address, no user agent.
            let audit = AuditContext {
                actor_id: Some(caller.id),
                ..Default::default()
            };
            users::audit(&*tx, id, "user.erased", &audit, json!({})).await?;
            let event =
                UserEvent::new(UserEventType::Erased, id, user.version + 1).actor(Some(caller.id));
            user_events::append(&*tx, &[event]).await?;
            revoked
        }
        Removal::Delete => {
            if !users::soft_delete(&*tx, id).await? {
                return Err(ServiceError::NotFound("User"));
            }
            let revoked = sessions::revoke_user(&*tx, id, None).await?;
            let audit = context.audit(Some(caller.id));
            users::audit(&*tx, id, "user.deleted", &audit, json!({})).await?;
            let event = context.event(
                UserEventType::Deleted,
                id,
                user.version + 1,
                Some(caller.id),
            );
            user_events::append(&*tx, &[event]).await?;
            revoked
        }
    };
    tx.commit().await?;
    after_commit(app, &revoked, Some(&user.email)).await;
    if removal == Removal::Erase {
        forget_email(app, &user.email).await;
    }
    tracing::info!(event = "user_deleted", user_id = %id, actor = %caller.id, erase);
    Ok(())
}
