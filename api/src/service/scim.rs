//! SCIM provisioning use cases: SCIM tokens (admins), and Users and Groups as identity
//! providers change them.
//!
//! A created user goes through the registration pipeline like any other: the api
//! publishes a registration without a password (signed with the import key, since only
//! an admin or a provider may create an account that way), the consumer persists it with
//! its audit row and `user.registered`, and the api answers 201 once it is persisted.
//! Changes are written here, in one transaction with their audit row and events:
//! deactivation (`active=false`) ends every session at once.

use std::time::Duration;

use common::domain::registration::{new_registration_id, FailureReason};
use common::domain::Role;
use common::events::registration::{Credential, Provisioning, RegistrationEvent};
use common::events::user::{UserEvent, UserEventType};
use common::store::registration_status::RegistrationStatus;
use common::store::scim::{self as store, Condition, ScimToken, Sort};
use common::store::users::{self, AuditContext, UserChanges, UserRecord};
use common::store::{sessions, user_events};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::committed::after_commit;
use super::{accounts, registration, ServiceError};
use crate::caller::{Caller, RequestContext};
use crate::scim::user::ScimUser;
use crate::scim::ScimError;
use crate::state::AppState;

/// The roles a Group stands for; `user` is no group.
pub const GROUP_ROLES: [Role; 2] = [Role::Admin, Role::Moderator];

// --- tokens ---------------------------------------------------------------------------

/// Issues a SCIM token; the token is in the answer only.
pub async fn create_token(
    app: &AppState,
    actor: Option<&Caller>,
    context: &RequestContext,
    name: &str,
    expires_in_days: Option<u32>,
) -> Result<(ScimToken, SecretString), ServiceError> {
    super::require_admin(actor)?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ServiceError::invalid("name", "must be 1-100 characters"));
    }
    let expires_at = match expires_in_days {
        Some(0) | Some(3651..) => {
            return Err(ServiceError::invalid("expiresInDays", "must be 1-3650"))
        }
        Some(days) => Some(chrono::Utc::now() + chrono::Duration::days(i64::from(days))),
        None => None,
    };
    let secret = super::oidc::random_token("scim_");
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    if let Some(c) = actor {
        accounts::ensure_current(&*tx, c).await?;
    }
    let token = store::insert_token(
        &*tx,
        Uuid::now_v7(),
        name,
        &accounts::digest(&secret),
        actor.map(|c| c.id),
        expires_at,
    )
    .await?;
    let ctx = context.audit(actor.map(|c| c.id));
    common::store::oidc::audit_client_change(
        &*tx,
        actor.map(|c| c.id),
        "scim.token_created",
        &ctx,
        json!({ "tokenId": token.id, "name": token.name, "expiresAt": token.expires_at }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(event = "scim_token_created", token = %token.id, actor = ?actor.map(|c| c.id));
    Ok((token, SecretString::from(secret)))
}

pub async fn list_tokens(
    app: &AppState,
    actor: Option<&Caller>,
) -> Result<Vec<ScimToken>, ServiceError> {
    super::require_admin(actor)?;
    let db = app.db().await?;
    Ok(store::list_tokens(&**db).await?)
}

pub async fn revoke_token(
    app: &AppState,
    actor: Option<&Caller>,
    context: &RequestContext,
    id: Uuid,
) -> Result<(), ServiceError> {
    super::require_admin(actor)?;
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    if let Some(c) = actor {
        accounts::ensure_current(&*tx, c).await?;
    }
    let token = store::revoke_token(&*tx, id)
        .await?
        .ok_or(ServiceError::NotFound("SCIM token"))?;
    common::store::oidc::audit_client_change(
        &*tx,
        actor.map(|c| c.id),
        "scim.token_revoked",
        &context.audit(actor.map(|c| c.id)),
        json!({ "tokenId": token.id, "name": token.name }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(event = "scim_token_revoked", token = %id);
    Ok(())
}

/// The live token a SCIM request presents, if any.
pub async fn authenticate(app: &AppState, token: &str) -> Result<Option<ScimToken>, ServiceError> {
    if !token.starts_with("scim_") || token.len() > 200 {
        return Ok(None);
    }
    let db = app.db().await?;
    Ok(store::authenticate(&**db, &accounts::digest(token)).await?)
}

/// Counts a request of a token against `SCIM_RATE_PER_MINUTE`.
pub async fn limit(app: &AppState, token: &ScimToken) -> Result<(), ServiceError> {
    let limit = app.scim.rate_per_minute;
    if limit == 0 {
        return Ok(());
    }
    let (n, wait) = app
        .stores
        .auth_flows
        .count_request("scim-token", &token.id.to_string(), Duration::from_secs(60))
        .await?;
    if n > limit {
        tracing::warn!(event = "scim_token_rate_limited", token = %token.id);
        return Err(ServiceError::RateLimited {
            retry_after_secs: u32::try_from(wait).unwrap_or(60),
        });
    }
    Ok(())
}

// --- users ----------------------------------------------------------------------------

/// Who made a SCIM change, for audit rows: no acting user, the token in the details.
fn audit_context(context: &RequestContext) -> AuditContext {
    context.audit(None)
}

fn by_token(token: &ScimToken) -> serde_json::Value {
    json!({ "scimToken": token.id, "scimTokenName": token.name })
}

/// Creates an account through the pipeline and waits (`SCIM_CREATE_WAIT_MS`) until the
/// consumer persisted it.
pub async fn create_user(
    app: &AppState,
    token: &ScimToken,
    context: &RequestContext,
    user: ScimUser,
) -> Result<UserRecord, ScimError> {
    {
        let db = app.db().await?;
        if store::find_by_user_name(&**db, &user.user_name)
            .await?
            .is_some()
        {
            return Err(ScimError::uniqueness("another account has this userName"));
        }
        if users::find_by_email(&**db, user.email.as_str())
            .await?
            .is_some()
        {
            return Err(ScimError::uniqueness(
                "another account has this email address",
            ));
        }
    }
    let registration_id = new_registration_id();
    let email = &user.email;
    let event = RegistrationEvent {
        registration_id,
        email: email.as_str().to_owned(),
        first_name: user.given_name.clone(),
        last_name: user.family_name.clone(),
        gender: None,
        sex: None,
        occupation: user.title.clone(),
        credential: Credential::NoPassword,
        submitted_at_ms: chrono::Utc::now().timestamp_millis(),
        request_id: context.request_id.clone(),
        username: None,
        date_of_birth: None,
        role: None,
        created_at_ms: None,
        // The provider vouches for the address: no verification mail.
        email_verified: true,
        import: None,
        provisioning: Some(Provisioning {
            user_name: user.user_name.clone(),
            external_id: user.external_id.clone(),
            active: user.active,
            attributes: user.attributes_json().map(|a| a.to_string()),
        }),
        identity: None,
    };
    let outcome = match registration::provision(app, &event, email, app.scim.create_wait).await {
        Err(ServiceError::RegistrationPending) => {
            return Err(ScimError::uniqueness(
                "a registration for this email address is in progress",
            ))
        }
        other => other?,
    };
    tracing::info!(event = "scim_user_accepted", email = %email.masked(), %registration_id, token = %token.id);
    match outcome {
        Some(RegistrationStatus::Completed(_)) => {}
        Some(RegistrationStatus::Failed(f)) => {
            return Err(match f.reason {
                Some(FailureReason::EmailTaken) => {
                    ScimError::uniqueness("another account has this email address")
                }
                Some(FailureReason::UsernameTaken) => {
                    ScimError::uniqueness("another account has this userName")
                }
                _ => ScimError::invalid_value("the consumer refused the account"),
            })
        }
        _ => {
            // Accepted and durable on the topic, not yet persisted: the provider retries,
            // finds the account by userName and goes on.
            tracing::warn!(event = "scim_create_not_persisted_in_time", %registration_id);
            return Err(ServiceError::Overloaded {
                retry_after_secs: 5,
            }
            .into());
        }
    }
    let db = app.db().await?;
    let created = users::find_by_email(&**db, email.as_str())
        .await?
        .filter(|u| u.registration_id == registration_id)
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("a completed user is missing")))?;
    users::audit(
        &**db,
        created.id,
        "scim.user_provisioned",
        &audit_context(context),
        by_token(token),
    )
    .await?;
    Ok(created)
}

/// A live user by its SCIM id.
pub async fn get_user(app: &AppState, id: &str) -> Result<UserRecord, ScimError> {
    let id = Uuid::parse_str(id).map_err(|_| ScimError::not_found("User"))?;
    let db = app.db().await?;
    users::find_by_id(&**db, id)
        .await?
        .filter(|u| !u.is_deleted())
        .ok_or_else(|| ScimError::not_found("User"))
}

/// A page of live users.
pub async fn list_users(
    app: &AppState,
    condition: Option<&Condition>,
    sort: Option<&Sort>,
    offset: i64,
    limit: i64,
) -> Result<(i64, Vec<UserRecord>), ScimError> {
    let db = app.db().await?;
    Ok(store::query_users(&**db, condition, sort, offset, limit).await?)
}

/// Writes a user's new SCIM state (PUT, or a patched document), if its version is
/// still `expected`. Deactivation ends every session; reactivation is an event too.
pub async fn write_user(
    app: &AppState,
    token: &ScimToken,
    context: &RequestContext,
    id: Uuid,
    expected: Option<i64>,
    user: ScimUser,
) -> Result<UserRecord, ScimError> {
    let mut db = app.db().await?;
    let tx = db.transaction().await.map_err(ServiceError::from)?;
    let current = users::lock_by_id(&*tx, id)
        .await?
        .filter(|u| !u.is_deleted())
        .ok_or_else(|| ScimError::not_found("User"))?;
    if expected.is_some_and(|v| v != current.version) {
        return Err(ServiceError::PreconditionFailed.into());
    }
    if let Some(other) = store::find_by_user_name(&*tx, &user.user_name).await? {
        if other.id != id {
            return Err(ScimError::uniqueness("another account has this userName"));
        }
    }
    if user.email.as_str() != current.email {
        if let Some(other) = users::find_by_email(&*tx, user.email.as_str()).await? {
            if other.id != id {
                return Err(ScimError::uniqueness(
                    "another account has this email address",
                ));
            }
        }
    }
    let write = user.write();
    let updated = store::write_user(&*tx, id, &write)
        .await
        .map_err(|e| unique_violation(e, &user))?
        .ok_or_else(|| ScimError::not_found("User"))?;
    let fields = changed_fields(&current, &updated);
    if fields.is_empty() {
        // Nothing changed: no new version, no event.
        return Ok(current);
    }
    let deactivated = current.disabled_at.is_none() && updated.disabled_at.is_some();
    let reactivated = current.disabled_at.is_some() && updated.disabled_at.is_none();
    let mut details = by_token(token);
    details["fields"] = json!(fields);
    users::audit(
        &*tx,
        id,
        "scim.user_updated",
        &audit_context(context),
        details,
    )
    .await?;
    let event = |t| context.event(t, id, updated.version, None);
    let mut events = Vec::new();
    let profile: Vec<String> = fields
        .iter()
        .filter(|f| **f != "active")
        .map(|f| (*f).to_owned())
        .collect();
    if !profile.is_empty() {
        let mut e: UserEvent = event(UserEventType::Updated);
        if updated.email != current.email {
            e.email = Some(updated.email.clone());
        }
        e.changed_fields = profile;
        events.push(e);
    }
    if deactivated {
        events.push(event(UserEventType::Deactivated));
    }
    if reactivated {
        events.push(event(UserEventType::Reactivated));
    }
    user_events::append(&*tx, &events).await?;
    let revoked = if deactivated {
        sessions::revoke_user(&*tx, id, None).await?
    } else {
        Vec::new()
    };
    tx.commit().await.map_err(ServiceError::from)?;
    let old_email = (updated.email != current.email).then_some(&current.email);
    after_commit(app, &revoked, old_email).await;
    tracing::info!(event = "scim_user_updated", user_id = %id, token = %token.id, fields = ?fields, sessions_ended = revoked.len());
    Ok(updated)
}

fn unique_violation(e: tokio_postgres::Error, user: &ScimUser) -> ScimError {
    let constraint = e
        .as_db_error()
        .and_then(|d| d.constraint())
        .unwrap_or_default();
    if constraint == "users_scim_user_name_idx" {
        tracing::info!(
            event = "scim_user_name_taken",
            user_name_len = user.user_name.len()
        );
        return ScimError::uniqueness("another account has this userName");
    }
    ServiceError::from(e).into()
}

/// The SCIM attributes a write changed, by the names clients know.
fn changed_fields(before: &UserRecord, after: &UserRecord) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut differs = |name, changed: bool| {
        if changed {
            fields.push(name);
        }
    };
    differs("email", before.email != after.email);
    differs("userName", before.scim_user_name != after.scim_user_name);
    differs("externalId", before.external_id != after.external_id);
    differs("firstName", before.first_name != after.first_name);
    differs("lastName", before.last_name != after.last_name);
    differs("occupation", before.occupation != after.occupation);
    differs(
        "scimAttributes",
        before.scim_attributes != after.scim_attributes,
    );
    differs(
        "active",
        before.disabled_at.is_none() != after.disabled_at.is_none(),
    );
    fields
}

/// Deletes (soft) a user: sessions end, `user.deleted` is published. The last admin
/// cannot be deleted.
pub async fn delete_user(
    app: &AppState,
    token: &ScimToken,
    context: &RequestContext,
    id: &str,
    expected: Option<i64>,
) -> Result<(), ScimError> {
    let id = Uuid::parse_str(id).map_err(|_| ScimError::not_found("User"))?;
    let mut db = app.db().await?;
    let tx = db.transaction().await.map_err(ServiceError::from)?;
    let user = users::lock_by_id(&*tx, id)
        .await?
        .filter(|u| !u.is_deleted())
        .ok_or_else(|| ScimError::not_found("User"))?;
    if expected.is_some_and(|v| v != user.version) {
        return Err(ServiceError::PreconditionFailed.into());
    }
    if user.role == Role::Admin {
        super::users::keep_an_admin(&tx, id).await?;
    }
    if !users::soft_delete(&*tx, id).await? {
        return Err(ScimError::not_found("User"));
    }
    let revoked = sessions::revoke_user(&*tx, id, None).await?;
    users::audit(
        &*tx,
        id,
        "scim.user_deleted",
        &audit_context(context),
        by_token(token),
    )
    .await?;
    let event = context.event(UserEventType::Deleted, id, user.version + 1, None);
    user_events::append(&*tx, &[event]).await?;
    tx.commit().await.map_err(ServiceError::from)?;
    after_commit(app, &revoked, Some(&user.email)).await;
    tracing::info!(event = "scim_user_deleted", user_id = %id, token = %token.id);
    Ok(())
}

// --- groups ---------------------------------------------------------------------------

/// The role a Group id names.
pub fn group_role(id: &str) -> Result<Role, ScimError> {
    GROUP_ROLES
        .into_iter()
        .find(|r| r.as_str() == id)
        .ok_or_else(|| ScimError::not_found("Group"))
}

/// A group's members (up to `SCIM_MAX_RESULTS`) and how many it has.
pub async fn group_members(
    app: &AppState,
    role: Role,
) -> Result<(i64, Vec<(Uuid, String)>), ScimError> {
    let db = app.db().await?;
    let size = store::role_size(&**db, role.as_str()).await?;
    let limit = i64::try_from(app.scim.max_results).unwrap_or(200);
    Ok((
        size,
        store::role_members(&**db, role.as_str(), limit).await?,
    ))
}

/// Gives `added` the group's role and takes it from `removed` (they become `user`),
/// each change audited and published as `user.role_changed`, the user's sessions ended.
pub async fn change_members(
    app: &AppState,
    token: &ScimToken,
    context: &RequestContext,
    role: Role,
    added: &[Uuid],
    removed: &[Uuid],
) -> Result<(), ScimError> {
    let mut db = app.db().await?;
    let tx = db.transaction().await.map_err(ServiceError::from)?;
    let mut revoked = Vec::new();
    let changes = added
        .iter()
        .map(|id| (*id, role))
        .chain(removed.iter().map(|id| (*id, Role::User)));
    for (id, to) in changes {
        let Some(user) = users::lock_by_id(&*tx, id)
            .await?
            .filter(|u| !u.is_deleted())
        else {
            return Err(ScimError::invalid_value(format!("no user {id}")));
        };
        // Taking a role away from someone who holds another one changes nothing.
        if user.role == to || (to == Role::User && user.role != role) {
            continue;
        }
        if user.role == Role::Admin {
            super::users::keep_an_admin(&tx, id).await?;
        }
        let updated = users::update(
            &*tx,
            id,
            &UserChanges {
                role: Some(to),
                ..Default::default()
            },
        )
        .await?
        .ok_or_else(|| ScimError::not_found("User"))?;
        let mut details = by_token(token);
        details["role"] = json!({ "from": user.role, "to": to });
        users::audit(
            &*tx,
            id,
            "scim.role_changed",
            &audit_context(context),
            details,
        )
        .await?;
        let mut e = context.event(UserEventType::RoleChanged, id, updated.version, None);
        e.role = Some(to.as_str().to_owned());
        e.previous_role = Some(user.role.as_str().to_owned());
        user_events::append(&*tx, &[e]).await?;
        revoked.extend(sessions::revoke_user(&*tx, id, None).await?);
    }
    tx.commit().await.map_err(ServiceError::from)?;
    after_commit(app, &revoked, None).await;
    tracing::info!(event = "scim_group_changed", role = role.as_str(), added = added.len(), removed = removed.len(), token = %token.id);
    Ok(())
}
