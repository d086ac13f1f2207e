//! Full and partial updates of a user, guarded by its version (`If-Match`): the profile,
//! email, password and role, re-authentication for one's own sensitive changes, and the
//! work after a committed change.

use common::domain::email::Email;
use common::domain::password_policy::PasswordPolicy;
use common::domain::registration::{FieldError, ProfileInput, ProfilePatch, RequiredFields};
use common::domain::Role;
use common::events::user::{UserEvent, UserEventType};
use common::store::account_tokens::{self, Purpose};
use common::store::mail_outbox::{self, MailKind};
use common::store::sessions;
use common::store::user_events;
use common::store::users::{self, UserChanges, UserRecord};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::parse_role;
use crate::bodies::users::UserUpdateRequest;
use crate::caller::{Caller, RequestContext};
use crate::service::committed::after_commit;
use crate::service::{accounts, ServiceError};
use crate::state::AppState;

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
    required: RequiredFields,
) -> Result<Change, ServiceError> {
    let role = match request.role.as_deref() {
        None => None,
        Some(_) if !caller.is_admin() => return Err(ServiceError::Forbidden),
        Some(r) => Some(parse_role(r)?),
    };
    let mut errors = Vec::new();
    let input = ProfileInput {
        email: request.email.as_deref(),
        name: request.name.as_deref(),
        first_name: request.first_name.as_deref(),
        last_name: request.last_name.as_deref(),
        gender: request.gender.as_deref(),
        sex: request.sex.as_deref(),
        occupation: request.occupation.as_deref(),
        username: request.username.as_deref(),
        date_of_birth: request.date_of_birth.as_deref(),
    };
    let patch = ProfilePatch::parse(input, (mode == UpdateMode::Replace).then_some(required))
        .unwrap_or_else(|e| {
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
    let mut change = parse_change(
        caller,
        id,
        request,
        mode,
        &app.accounts.password_policy,
        app.accounts.required_profile_fields,
    )?;
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
            match crate::service::email::pace_for_recipient(app, new_email).await? {
                crate::service::email::MailPace::Now => {
                    mail_outbox::enqueue(&*tx, id, MailKind::VerifyNewEmail, new_email).await?;
                }
                crate::service::email::MailPace::After(wait) => {
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

/// Refuses a change that would leave no live admin (see `users::other_live_admins`).
pub(crate) async fn keep_an_admin(
    tx: &deadpool_postgres::Transaction<'_>,
    id: Uuid,
) -> Result<(), ServiceError> {
    if users::other_live_admins(&**tx, id).await? == 0 {
        return Err(ServiceError::LastAdmin);
    }
    Ok(())
}
