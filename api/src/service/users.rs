//! User management: listing (staff), reading, full and partial updates guarded by the
//! user's version, soft delete and erasure, export and the audit trail. Every change
//! writes its audit row in the transaction of the change.

use common::domain::email::Email;
use common::domain::password_policy::PasswordPolicy;
use common::domain::registration::{FieldError, ProfileInput, ProfilePatch};
use common::domain::Role;
use common::events::user::{UserEvent, UserEventType};
use common::store::account_tokens::{self, Purpose};
use common::store::data::{self as data_store, DataItem};
use common::store::mail_outbox::{self, MailKind};
use common::store::sessions;
use common::store::user_events;
use common::store::users::{
    self, AuditContext, AuditRecord, ListCursor, UserChanges, UserQuery, UserRecord,
};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::{accounts, page_limit, page_offset, Page, ServiceError};
use crate::bodies::users::UserUpdateRequest;
use crate::caller::{Caller, RequestContext};
use crate::state::AppState;

/// Audit entries an export carries at most (the newest); the rest is paged from
/// `/api/users/{id}/audit` with the export's `auditNextCursor`. With the data quota this
/// bounds an export's size, and the api's memory for it, whatever the account's age.
pub const EXPORT_AUDIT_LIMIT: i64 = 1000;

fn encode_cursor(user: &UserRecord) -> String {
    ListCursor {
        created_at: user.created_at,
        id: user.id,
    }
    .encode()
}

fn parse_role(raw: &str) -> Result<Role, ServiceError> {
    Role::parse(raw)
        .ok_or_else(|| ServiceError::invalid("role", "must be one of user, moderator, admin"))
}

/// A user id from a path segment.
pub fn parse_user_id(raw: &str) -> Result<Uuid, ServiceError> {
    raw.parse()
        .map_err(|_| ServiceError::invalid("id", "must be a user id (UUID)"))
}

/// The filters of the user listing, as the caller sent them.
#[derive(Debug, Default)]
pub struct ListFilter {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub cursor: Option<String>,
    pub role: Option<String>,
    pub q: Option<String>,
    pub include_deleted: Option<bool>,
}

/// Users newest first, for moderators and admins (deleted ones for admins only).
pub async fn list_users(
    app: &AppState,
    caller: &Caller,
    filter: ListFilter,
) -> Result<Page<UserRecord>, ServiceError> {
    if caller.role < Role::Moderator {
        return Err(ServiceError::Forbidden);
    }
    let include_deleted = filter.include_deleted.unwrap_or(false);
    if include_deleted && !caller.is_admin() {
        return Err(ServiceError::Forbidden);
    }
    let limit = page_limit(filter.limit)?;
    let offset = page_offset(filter.offset)?;
    let after = filter
        .cursor
        .as_deref()
        .map(|c| {
            ListCursor::decode(c)
                .ok_or_else(|| ServiceError::invalid("cursor", "is not a cursor this api issued"))
        })
        .transpose()?;
    let role = filter.role.as_deref().map(parse_role).transpose()?;
    let prefix = filter
        .q
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    if prefix.as_ref().is_some_and(|q| q.chars().count() > 100) {
        return Err(ServiceError::invalid("q", "must be at most 100 characters"));
    }
    if prefix
        .as_ref()
        .is_some_and(|q| q.chars().any(char::is_control))
    {
        return Err(ServiceError::invalid(
            "q",
            "must not contain control characters",
        ));
    }
    let client = app.db().await?;
    let query = UserQuery {
        role,
        prefix,
        include_deleted,
        after,
        limit: limit + 1,
        offset,
    };
    let rows = users::list(&**client, &query).await?;
    Ok(Page::from_fetch(rows, limit, Some(offset), encode_cursor))
}

/// A user by id: self, moderators and admins; deleted users for admins only.
pub async fn get_user(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: Uuid,
) -> Result<UserRecord, ServiceError> {
    if !caller.is_self_or_staff(id) {
        return Err(ServiceError::Forbidden);
    }
    let user = visible_user(app, caller, id).await?;
    audit_staff_read(app, caller, context, id, "user.viewed").await?;
    Ok(user)
}

/// Staff reading another user's data leaves a trace in that user's audit trail.
async fn audit_staff_read(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: Uuid,
    action: &str,
) -> Result<(), ServiceError> {
    if caller.id == id {
        return Ok(());
    }
    let client = app.db().await?;
    let audit = context.audit(Some(caller.id));
    Ok(users::audit(&**client, id, action, &audit, json!({})).await?)
}

/// What the user sees of their own trail: where staff acted on the account, not the
/// staff member's address or user agent (admins see everything).
fn as_seen_by(caller: &Caller, id: Uuid, mut rows: Vec<AuditRecord>) -> Vec<AuditRecord> {
    if caller.is_admin() {
        return rows;
    }
    for row in rows
        .iter_mut()
        .filter(|r| r.actor_id.is_some_and(|a| a != id))
    {
        row.ip = None;
        row.user_agent = None;
    }
    rows
}

async fn visible_user(
    app: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<UserRecord, ServiceError> {
    let client = app.db().await?;
    users::find_by_id(&**client, id)
        .await?
        .filter(|u| !u.is_deleted() || caller.is_admin())
        .ok_or(ServiceError::NotFound("User"))
}

/// Which versions of the user a change may apply to (`If-Match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// No condition.
    AnyVersion,
    /// `*`: any version of an existing user.
    Exists,
    /// One of these versions; an empty list never matches.
    OneOf(Vec<i64>),
}

impl Expected {
    fn holds(&self, user: &UserRecord) -> bool {
        match self {
            Expected::AnyVersion | Expected::Exists => true,
            Expected::OneOf(versions) => versions.contains(&user.version),
        }
    }
}

/// `PUT` replaces every profile field, `PATCH` changes the ones it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    Replace,
    Patch,
}

/// A validated change request.
struct Change {
    patch: ProfilePatch,
    role: Option<Role>,
    password: Option<SecretString>,
    current_password: Option<SecretString>,
    changing_own_password: bool,
}

fn parse_change(
    caller: &Caller,
    id: Uuid,
    request: UserUpdateRequest,
    mode: UpdateMode,
    policy: &PasswordPolicy,
) -> Result<Change, ServiceError> {
    let role = match request.role.as_deref() {
        None => None,
        Some(_) if !caller.is_admin() => return Err(ServiceError::Forbidden),
        Some(r) => Some(parse_role(r)?),
    };
    let mut errors = Vec::new();
    let input = ProfileInput {
        email: request.email.as_deref(),
        first_name: request.first_name.as_deref(),
        last_name: request.last_name.as_deref(),
        gender: request.gender.as_deref(),
        sex: request.sex.as_deref(),
        occupation: request.occupation.as_deref(),
        username: request.username.as_deref(),
        date_of_birth: request.date_of_birth.as_deref(),
    };
    let patch = ProfilePatch::parse(input, mode == UpdateMode::Replace).unwrap_or_else(|e| {
        errors.extend(e);
        ProfilePatch::default()
    });
    let changing_own_password = request.password.is_some() && caller.id == id;
    if let Some(p) = &request.password {
        errors.extend(policy.check("password", p).err());
        if changing_own_password && request.current_password.is_none() {
            errors.push(FieldError::new(
                "currentPassword",
                "is required to change your password",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ServiceError::Invalid(errors));
    }
    if patch == ProfilePatch::default() && role.is_none() && request.password.is_none() {
        return Err(ServiceError::invalid("body", "names nothing to change"));
    }
    Ok(Change {
        patch,
        role,
        password: request.password,
        current_password: request.current_password,
        changing_own_password,
    })
}

/// The column changes of `patch` against the stored user, with the names of the
/// fields that really change.
fn column_changes(
    patch: &ProfilePatch,
    role: Option<Role>,
    user: &UserRecord,
) -> (UserChanges, Vec<&'static str>) {
    fn differs(new: Option<&str>, old: Option<&str>) -> Option<String> {
        new.filter(|n| Some(*n) != old).map(str::to_owned)
    }
    let c = UserChanges {
        email: differs(patch.email.as_ref().map(Email::as_str), Some(&user.email)),
        first_name: differs(patch.first_name.as_deref(), user.first_name.as_deref()),
        last_name: differs(patch.last_name.as_deref(), user.last_name.as_deref()),
        gender: differs(patch.gender.map(|g| g.as_str()), user.gender.as_deref()),
        sex: differs(patch.sex.map(|s| s.as_str()), user.sex.as_deref()),
        occupation: differs(patch.occupation.as_deref(), user.occupation.as_deref()),
        username: differs(
            patch.username.as_ref().map(|u| u.as_str()),
            user.username.as_deref(),
        ),
        date_of_birth: patch
            .date_of_birth
            .filter(|d| Some(*d) != user.date_of_birth),
        role: role.filter(|r| *r != user.role),
        password_hash: None,
    };
    let fields = [
        ("email", c.email.is_some()),
        ("firstName", c.first_name.is_some()),
        ("lastName", c.last_name.is_some()),
        ("gender", c.gender.is_some()),
        ("sex", c.sex.is_some()),
        ("occupation", c.occupation.is_some()),
        ("username", c.username.is_some()),
        ("dateOfBirth", c.date_of_birth.is_some()),
        ("role", c.role.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect();
    (c, fields)
}

/// Re-authentication for sensitive changes of one's own account: checks
/// `currentPassword` on the hashing pool. A check is a password guess like a login: it
/// counts towards the same lockout (account and client address).
pub(crate) async fn reauthenticate(
    app: &AppState,
    context: &RequestContext,
    current_password: Option<SecretString>,
    user: &UserRecord,
) -> Result<(), ServiceError> {
    let Some(current) = current_password else {
        return Err(ServiceError::invalid(
            "currentPassword",
            "is required to change your password or email, or to delete your account",
        ));
    };
    let email = Email::parse(&user.email).map_err(|e| ServiceError::Internal(e.into()))?;
    let client = accounts::attempt_client(context);
    accounts::count_attempt(app, &email, &client).await?;
    let stored = user.password_hash.clone();
    let result = app
        .accounts
        .hashing
        .run(move |h| h.verify(&current, &stored))
        .await
        .and_then(|verified| match verified {
            true => Ok(()),
            false => Err(ServiceError::invalid("currentPassword", "is incorrect")),
        });
    accounts::settle_attempt(app, &email, &client, &result).await;
    result
}

/// Hashes a new password on the hashing pool (outside any transaction).
async fn hash_new_password(
    app: &AppState,
    password: Option<SecretString>,
) -> Result<Option<String>, ServiceError> {
    let Some(password) = password else {
        return Ok(None);
    };
    app.accounts
        .hashing
        .run(move |h| h.hash(&password))
        .await?
        .map(Some)
        .map_err(|e| ServiceError::Internal(e.into()))
}

/// Changes a live user (self or admin; the role by admins only). A new password or
/// role ends the user's other sessions; the caller's own session survives a change of
/// its own password.
pub async fn update_user(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: Uuid,
    expected: Expected,
    request: UserUpdateRequest,
    mode: UpdateMode,
) -> Result<UserRecord, ServiceError> {
    if !caller.is_self_or_admin(id) {
        return Err(ServiceError::Forbidden);
    }
    let mut change = parse_change(caller, id, request, mode, &app.accounts.password_policy)?;
    let mut client = app.db().await?;
    let current = users::find_by_id(&**client, id)
        .await?
        .filter(|u| !u.is_deleted())
        .ok_or(ServiceError::NotFound("User"))?;
    if !expected.holds(&current) {
        return Err(ServiceError::PreconditionFailed);
    }
    // Hashing runs outside the transaction: no row lock is held for its 30+ ms.
    let changes_email = change
        .patch
        .email
        .as_ref()
        .is_some_and(|e| e.as_str() != current.email);
    if caller.id == id && (change.password.is_some() || changes_email) {
        reauthenticate(app, context, change.current_password.take(), &current).await?;
    }
    let new_hash = hash_new_password(app, change.password.take()).await?;

    let tx = client.transaction().await?;
    accounts::ensure_current(&*tx, caller).await?;
    let locked = users::lock_by_id(&*tx, id)
        .await?
        .filter(|u| !u.is_deleted())
        .ok_or(ServiceError::NotFound("User"))?;
    // Changed since it was read above (the password check ran in between).
    if locked.version != current.version {
        return Err(ServiceError::PreconditionFailed);
    }
    let (mut changes, mut fields) = column_changes(&change.patch, change.role, &locked);
    // A user's own new address waits for its verification (a link to it, a notice to
    // the old one); an admin's change applies at once and the new address is unverified.
    let pending_email = if caller.id == id {
        changes.email.take()
    } else {
        None
    };
    // An address another account holds is accepted like any other (a 409 would tell
    // the caller that the address has an account); it simply never gets a verification
    // link, so the change stays pending and nothing happens to either account.
    let mut new_email_taken = false;
    if let Some(new_email) = &pending_email {
        new_email_taken = users::find_by_email(&*tx, new_email).await?.is_some();
        if let Some(f) = fields.iter_mut().find(|f| **f == "email") {
            *f = "pendingEmail";
        }
    }
    if locked.role == Role::Admin && changes.role.is_some() {
        keep_an_admin(&tx, id).await?;
    }
    if new_hash.is_some() {
        fields.push("password");
        changes.password_hash = new_hash;
    }
    if fields.is_empty() {
        return Ok(locked);
    }
    let mut updated = users::update(&*tx, id, &changes)
        .await?
        .ok_or(ServiceError::NotFound("User"))?;
    // A reset link was for the password and the address the account had: a new password
    // or a new (or pending) address burns every outstanding one.
    if changes.password_hash.is_some() || changes.email.is_some() || pending_email.is_some() {
        account_tokens::use_all(&*tx, id, Purpose::ResetPassword).await?;
    }
    if let Some(new_email) = &pending_email {
        updated = users::set_pending_email(&*tx, id, new_email)
            .await?
            .ok_or(ServiceError::NotFound("User"))?;
        if new_email_taken {
            tracing::info!(event = "email_change_to_taken_address", user_id = %id);
        } else {
            // The new address's mails share its per-recipient limit: a changer who
            // cycles through other people's addresses cannot flood them.
            match super::email::pace_for_recipient(app, new_email).await? {
                super::email::MailPace::Now => {
                    mail_outbox::enqueue(&*tx, id, MailKind::VerifyNewEmail, new_email).await?;
                }
                super::email::MailPace::After(wait) => {
                    tracing::info!(event = "mail_request_slowed", kind = "verify_new_email", user_id = %id, wait_secs = wait.as_secs());
                    mail_outbox::enqueue_paced(&*tx, id, MailKind::VerifyNewEmail, new_email, wait)
                        .await?;
                }
            }
        }
        mail_outbox::enqueue(&*tx, id, MailKind::EmailChangeNotice, &locked.email).await?;
    } else if let Some(new_email) = &changes.email {
        mail_outbox::enqueue(&*tx, id, MailKind::VerifyEmail, new_email).await?;
    }
    let mut details = json!({ "fields": fields });
    if let Some(new_role) = changes.role {
        details["role"] = json!({ "from": locked.role, "to": new_role });
    }
    users::audit(
        &*tx,
        id,
        "user.updated",
        &context.audit(Some(caller.id)),
        details,
    )
    .await?;
    user_events::append(
        &*tx,
        &change_events(context, caller, &locked, &updated, &changes, &fields),
    )
    .await?;
    let revoked = if changes.password_hash.is_some() || changes.role.is_some() {
        let keep =
            (change.changing_own_password && changes.role.is_none()).then_some(caller.session_id);
        sessions::revoke_user(&*tx, id, keep).await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    after_commit(
        app,
        &revoked,
        changes.email.is_some().then_some(&locked.email),
    )
    .await;
    tracing::info!(event = "user_updated", user_id = %id, actor = %caller.id, fields = ?fields);
    Ok(updated)
}

/// The events of one change: profile fields (`user.updated`), the role
/// (`user.role_changed`) and the password (`user.password_changed`), each at the
/// account's new version.
fn change_events(
    context: &RequestContext,
    caller: &Caller,
    before: &UserRecord,
    after: &UserRecord,
    changes: &UserChanges,
    fields: &[&'static str],
) -> Vec<UserEvent> {
    let event = |t| context.event(t, after.id, after.version, Some(caller.id));
    let mut events = Vec::new();
    let profile: Vec<String> = fields
        .iter()
        .filter(|f| !matches!(**f, "role" | "password"))
        .map(|f| (*f).to_owned())
        .collect();
    if !profile.is_empty() {
        let mut e = event(UserEventType::Updated);
        if changes.email.is_some() {
            e.email = Some(after.email.clone());
        }
        e.changed_fields = profile;
        events.push(e);
    }
    if let Some(role) = changes.role {
        let mut e = event(UserEventType::RoleChanged);
        e.role = Some(role.as_str().to_owned());
        e.previous_role = Some(before.role.as_str().to_owned());
        events.push(e);
    }
    if changes.password_hash.is_some() {
        events.push(event(UserEventType::PasswordChanged));
    }
    events
}

/// After an email change took effect: forget the cached registration state of the
/// address the account no longer uses.
pub(crate) async fn forget_old_email(app: &AppState, old_email: &str) {
    after_commit(app, &[], Some(&old_email.to_owned())).await;
}

/// Work after a committed change: refuse the access tokens of revoked sessions and
/// forget the cached registration status of an email the account no longer uses. The
/// change is durable already; a failure here is logged (refresh tokens are revoked in
/// PostgreSQL either way; access tokens then live out their 15 minutes).
async fn after_commit(app: &AppState, revoked: &[Uuid], old_email: Option<&String>) {
    if let Err(e) = accounts::revoke_access(app, revoked).await {
        tracing::error!(event = "access_tokens_not_revoked", sessions = revoked.len(), error = %crate::error::error_chain(&e));
    }
    if let Some(email) = old_email.and_then(|e| Email::parse(e).ok()) {
        app.finished.forget_email(&email);
        if let Err(e) = app.stores.status.forget(&email).await {
            tracing::warn!(event = "status_not_forgotten", error = %e);
        }
    }
}

/// Erasure reaches Redis too: the email's registration status, its login attempts and
/// the idempotency answers that name it. Logged, not failed, when Redis is down: the
/// keys expire within a day either way.
async fn forget_email(app: &AppState, email: &str) {
    let Ok(email) = Email::parse(email) else {
        return;
    };
    let stores = &app.stores;
    let (status, attempts, answers, limits) = tokio::join!(
        stores.status.forget_all(&email),
        stores.login_attempts.forget_email(&email),
        stores.idempotency.forget_email(&email),
        stores.auth_flows.forget_email(email.as_str()),
    );
    if let Err(e) = status.and(attempts).and(answers).and(limits) {
        tracing::warn!(event = "erased_email_not_forgotten_in_redis", error = %e);
    }
}

/// Refuses a change that would leave no live admin (see `users::other_live_admins`).
async fn keep_an_admin(
    tx: &deadpool_postgres::Transaction<'_>,
    id: Uuid,
) -> Result<(), ServiceError> {
    if users::other_live_admins(&**tx, id).await? == 0 {
        return Err(ServiceError::LastAdmin);
    }
    Ok(())
}

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

/// Everything stored about a user.
#[derive(Debug)]
pub struct Export {
    pub user: UserRecord,
    /// The newest audit entries, at most `EXPORT_AUDIT_LIMIT`.
    pub audit: Vec<AuditRecord>,
    /// Where `/api/users/{id}/audit?cursor=` continues when the trail is longer.
    pub audit_next_cursor: Option<String>,
    pub data: Vec<DataItem>,
}

/// The user's profile, audit trail and data items (self or admin).
pub async fn export_user(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: Uuid,
) -> Result<Export, ServiceError> {
    if !caller.is_self_or_admin(id) {
        return Err(ServiceError::Forbidden);
    }
    let user = visible_user(app, caller, id).await?;
    audit_staff_read(app, caller, context, id, "user.exported").await?;
    let client = app.db().await?;
    let audit = users::audit_trail(&**client, id, EXPORT_AUDIT_LIMIT + 1, 0, None).await?;
    let audit = Page::from_fetch(
        as_seen_by(caller, id, audit),
        EXPORT_AUDIT_LIMIT,
        None,
        |r| r.id.to_string(),
    );
    // The quota bounds the items; the limit only guards against a quota lowered later.
    let data = data_store::list(&**client, id, None, app.accounts.data_quota.0).await?;
    Ok(Export {
        user,
        audit_next_cursor: audit.next_cursor,
        audit: audit.rows,
        data,
    })
}

/// A page of the user's audit trail, newest first (self or admin). Erased and deleted
/// users keep their trail; an unknown id has none.
pub async fn audit_trail(
    app: &AppState,
    caller: &Caller,
    id: Uuid,
    limit: Option<i64>,
    offset: Option<i64>,
    cursor: Option<&str>,
) -> Result<Page<AuditRecord>, ServiceError> {
    if !caller.is_self_or_admin(id) {
        return Err(ServiceError::Forbidden);
    }
    let limit = page_limit(limit)?;
    let offset = page_offset(offset)?;
    let before = cursor
        .map(|c| {
            c.parse::<i64>()
                .map_err(|_| ServiceError::invalid("cursor", "is not a cursor this api issued"))
        })
        .transpose()?;
    let client = app.db().await?;
    users::find_by_id(&**client, id)
        .await?
        .ok_or(ServiceError::NotFound("User"))?;
    let rows = as_seen_by(
        caller,
        id,
        users::audit_trail(&**client, id, limit + 1, offset, before).await?,
    );
    Ok(Page::from_fetch(rows, limit, Some(offset), |r| {
        r.id.to_string()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let at = chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        let id = Uuid::now_v7();
        let raw = ListCursor { created_at: at, id }.encode();
        assert_eq!(
            ListCursor::decode(&raw),
            Some(ListCursor { created_at: at, id })
        );
        assert_eq!(ListCursor::decode("not-a-cursor"), None);
    }
}
