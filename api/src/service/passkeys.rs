//! Passkeys: a signed-in user adds, lists, renames and deletes them; anyone signs in
//! with one (no name first: the browser offers the passkeys it holds); a sign-up brings
//! one instead of a password; a user with a passkey may drop their password.
//!
//! Each ceremony is two requests. The first stores the ceremony's state in Redis under
//! a random id for `PASSKEY_CEREMONY_TTL_SECS` and answers the options for
//! `navigator.credentials`; the second takes the state back in one step (GETDEL), so a
//! challenge is verified once at most, then is gone. A ceremony that adds a passkey to
//! an account is bound to the session that started it.
//!
//! The WebAuthn user handle of every account is its registration id: a passkey-first
//! sign-up knows it before the consumer creates the account.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::domain::email::Email;
use common::domain::registration::{new_registration_id, FieldError, Profile};
use common::events::registration::PasskeyCredential;
use common::store::passkeys::{self, NewPasskey, PasskeyRecord};
use common::store::users::{self, UserRecord};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential,
};

use super::accounts::{self, ensure_current, Tokens};
use super::registration::{self, Submitted};
use super::ServiceError;
use crate::caller::{Caller, RequestContext};
use crate::state::AppState;

/// The Redis flow kind of passkey ceremonies.
const CEREMONY: &str = "passkey";
/// The name a passkey gets when none is given.
const DEFAULT_NAME: &str = "Passkey";

/// What a ceremony is for, and its webauthn-rs state.
#[derive(Serialize, Deserialize)]
enum Ceremony {
    /// A signed-in user adds a passkey: bound to the session that asked.
    Enrol {
        user_id: Uuid,
        session_id: Uuid,
        state: PasskeyRegistration,
    },
    /// A sign-up with a passkey instead of a password.
    SignUp {
        email: String,
        registration_id: Uuid,
        state: PasskeyRegistration,
    },
    SignIn {
        state: DiscoverableAuthentication,
    },
}

/// The options a browser passes to `navigator.credentials`, and the ceremony's id.
pub struct CeremonyOptions {
    pub ceremony_id: String,
    /// `{"publicKey": {...}}` (plus `mediation` for a sign-in).
    pub options: serde_json::Value,
    pub expires_in: std::time::Duration,
}

async fn begin(
    app: &AppState,
    ceremony: &Ceremony,
    options: serde_json::Value,
) -> Result<CeremonyOptions, ServiceError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let ceremony_id = format!("pk_{}", URL_SAFE_NO_PAD.encode(bytes));
    let ttl = app.accounts.passkeys.ceremony_ttl;
    app.stores
        .auth_flows
        .put_flow(CEREMONY, &ceremony_id, ceremony, ttl)
        .await?;
    Ok(CeremonyOptions {
        ceremony_id,
        options,
        expires_in: ttl,
    })
}

/// The ceremony with this id, ended: a second use finds nothing.
async fn take(app: &AppState, ceremony_id: Option<&str>) -> Result<Option<Ceremony>, ServiceError> {
    let Some(id) = ceremony_id.filter(|id| !id.is_empty() && id.len() <= 128) else {
        return Err(ServiceError::invalid("ceremonyId", "is required"));
    };
    Ok(app.stores.auth_flows.take_flow(CEREMONY, id).await?)
}

fn unknown_ceremony() -> ServiceError {
    ServiceError::invalid(
        "ceremonyId",
        "is unknown, was used already or expired: start again",
    )
}

fn to_json(value: &impl Serialize) -> Result<serde_json::Value, ServiceError> {
    serde_json::to_value(value).map_err(|e| ServiceError::Internal(e.into()))
}

fn registration_credential(
    credential: Option<serde_json::Value>,
) -> Result<RegisterPublicKeyCredential, ServiceError> {
    let credential =
        credential.ok_or_else(|| ServiceError::invalid("credential", "is required"))?;
    serde_json::from_value(credential).map_err(|e| {
        ServiceError::invalid(
            "credential",
            format!("is not a PublicKeyCredential from navigator.credentials.create(): {e}"),
        )
    })
}

/// A passkey's name: trimmed, 1-100 characters without control characters.
pub fn passkey_name(name: Option<&str>) -> Result<String, ServiceError> {
    let name = name.map(str::trim).unwrap_or(DEFAULT_NAME);
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            "name",
            "must be 1-100 characters without control characters",
        ));
    }
    Ok(name.to_owned())
}

/// Verifies a registration ceremony's answer; a failure names the field.
fn finish_registration(
    app: &AppState,
    credential: &RegisterPublicKeyCredential,
    state: &PasskeyRegistration,
) -> Result<(Passkey, Vec<String>), ServiceError> {
    let passkey = app
        .accounts
        .passkeys
        .finish_registration(credential, state)
        .map_err(|e| {
            tracing::info!(event = "passkey_registration_refused", reason = %e);
            ServiceError::invalid("credential", format!("was not accepted: {e}"))
        })?;
    let transports = credential
        .response
        .transports
        .iter()
        .flatten()
        .filter_map(|t| serde_json::to_value(t).ok())
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    Ok((passkey, transports))
}

fn display_name(user: &UserRecord) -> String {
    common::domain::registration::join_name(user.first_name.as_deref(), user.last_name.as_deref())
        .unwrap_or_else(|| user.email.clone())
}

/// Starts adding a passkey to the caller's account.
pub async fn begin_enrolment(
    app: &AppState,
    caller: &Caller,
) -> Result<CeremonyOptions, ServiceError> {
    let client = app.db().await?;
    ensure_current(&**client, caller).await?;
    let user = users::find_by_id(&**client, caller.id)
        .await?
        .filter(UserRecord::can_sign_in)
        .ok_or(ServiceError::InvalidToken)?;
    let exclude = passkeys::credential_ids(&**client, user.id).await?;
    let (options, state) = app
        .accounts
        .passkeys
        .start_registration(
            user.registration_id,
            &user.email,
            &display_name(&user),
            exclude,
        )
        .map_err(|e| ServiceError::Internal(e.into()))?;
    let options = to_json(&options)?;
    begin(
        app,
        &Ceremony::Enrol {
            user_id: user.id,
            session_id: caller.session_id,
            state,
        },
        options,
    )
    .await
}

/// Finishes adding a passkey: verifies the attestation and stores the credential.
pub async fn finish_enrolment(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    ceremony_id: Option<&str>,
    credential: Option<serde_json::Value>,
    name: Option<&str>,
) -> Result<PasskeyRecord, ServiceError> {
    let name = passkey_name(name)?;
    let credential = registration_credential(credential)?;
    let state = match take(app, ceremony_id).await? {
        Some(Ceremony::Enrol {
            user_id,
            session_id,
            state,
        }) if user_id == caller.id && session_id == caller.session_id => state,
        _ => return Err(unknown_ceremony()),
    };
    let (passkey, transports) = finish_registration(app, &credential, &state)?;
    let stored = to_json(&passkey)?;
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    users::lock_by_id(&*tx, caller.id).await?;
    ensure_current(&*tx, caller).await?;
    let id = Uuid::now_v7();
    let added = passkeys::insert(
        &*tx,
        &NewPasskey {
            id,
            user_id: caller.id,
            credential_id: passkey.cred_id().as_ref(),
            name: &name,
            credential: &stored,
            transports: &transports,
        },
    )
    .await?;
    if !added {
        return Err(ServiceError::invalid(
            "credential",
            "this passkey is registered already",
        ));
    }
    users::audit(
        &*tx,
        caller.id,
        "auth.passkey_added",
        &context.audit(Some(caller.id)),
        json!({ "passkey": id, "name": name }),
    )
    .await?;
    let record = passkeys::list(&*tx, caller.id)
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!("the passkey just stored is gone"))
        })?;
    tx.commit().await?;
    tracing::info!(event = "passkey_added", user_id = %caller.id, passkey = %id);
    Ok(record)
}

pub async fn list(app: &AppState, caller: &Caller) -> Result<Vec<PasskeyRecord>, ServiceError> {
    let client = app.db().await?;
    ensure_current(&**client, caller).await?;
    Ok(passkeys::list(&**client, caller.id).await?)
}

/// Another user's passkeys, for an admin (the console's user view).
pub async fn list_of_user(
    app: &AppState,
    caller: &Caller,
    user: Uuid,
) -> Result<Vec<PasskeyRecord>, ServiceError> {
    let client = super::accounts::admin_reading(app, caller, user).await?;
    Ok(passkeys::list(&**client, user).await?)
}

pub async fn rename(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: Uuid,
    name: Option<&str>,
) -> Result<PasskeyRecord, ServiceError> {
    if name.is_none() {
        return Err(ServiceError::invalid("name", "is required"));
    }
    let name = passkey_name(name)?;
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    ensure_current(&*tx, caller).await?;
    let record = passkeys::rename(&*tx, caller.id, id, &name)
        .await?
        .ok_or(ServiceError::NotFound("Passkey"))?;
    users::audit(
        &*tx,
        caller.id,
        "auth.passkey_renamed",
        &context.audit(Some(caller.id)),
        json!({ "passkey": id, "name": name }),
    )
    .await?;
    tx.commit().await?;
    Ok(record)
}

/// Deletes one of the caller's passkeys; never the last way into an account without a
/// password.
pub async fn delete(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: Uuid,
) -> Result<(), ServiceError> {
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    let user = users::lock_by_id(&*tx, caller.id)
        .await?
        .ok_or(ServiceError::InvalidToken)?;
    ensure_current(&*tx, caller).await?;
    if !user.has_password() && passkeys::count(&*tx, caller.id).await? <= 1 {
        let owned = passkeys::list(&*tx, caller.id)
            .await?
            .iter()
            .any(|p| p.id == id);
        return Err(if owned {
            ServiceError::LastSignInMethod
        } else {
            ServiceError::NotFound("Passkey")
        });
    }
    if !passkeys::delete(&*tx, caller.id, id).await? {
        return Err(ServiceError::NotFound("Passkey"));
    }
    users::audit(
        &*tx,
        caller.id,
        "auth.passkey_deleted",
        &context.audit(Some(caller.id)),
        json!({ "passkey": id }),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(event = "passkey_deleted", user_id = %caller.id, passkey = %id);
    Ok(())
}

/// Drops the caller's password: from then on they sign in with a passkey only (or a
/// password-reset mail sets a new one). Refused while the account has no passkey.
pub async fn remove_password(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
) -> Result<(), ServiceError> {
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    let user = users::lock_by_id(&*tx, caller.id)
        .await?
        .ok_or(ServiceError::InvalidToken)?;
    ensure_current(&*tx, caller).await?;
    if passkeys::count(&*tx, caller.id).await? == 0 {
        return Err(ServiceError::LastSignInMethod);
    }
    if user.has_password() {
        users::set_password_hash(&*tx, caller.id, common::domain::password::NO_PASSWORD).await?;
        users::audit(
            &*tx,
            caller.id,
            "auth.password_removed",
            &context.audit(Some(caller.id)),
            json!({}),
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(event = "password_removed", user_id = %caller.id);
    Ok(())
}

/// Starts a passkey sign-in. The same options serve a "Sign in with a passkey" button
/// and the autofill of the login field (`mediation: "conditional"`).
pub async fn begin_sign_in(app: &AppState) -> Result<CeremonyOptions, ServiceError> {
    let (options, state) = app
        .accounts
        .passkeys
        .start_sign_in()
        .map_err(|e| ServiceError::Internal(e.into()))?;
    let options = to_json(&options)?;
    begin(app, &Ceremony::SignIn { state }, options).await
}

/// Verifies a passkey assertion and returns the account it proves. Every failure is
/// the same `PasskeyRejected`; the log says which check failed.
pub(crate) async fn verify_sign_in(
    app: &AppState,
    context: &RequestContext,
    ceremony_id: Option<&str>,
    credential: Option<serde_json::Value>,
) -> Result<UserRecord, ServiceError> {
    let credential: PublicKeyCredential = credential
        .ok_or_else(|| ServiceError::invalid("credential", "is required"))
        .and_then(|c| {
            serde_json::from_value(c).map_err(|e| {
                ServiceError::invalid(
                    "credential",
                    format!("is not a PublicKeyCredential from navigator.credentials.get(): {e}"),
                )
            })
        })?;
    let refused = |reason: &str| {
        tracing::info!(event = "passkey_sign_in_refused", reason);
        ServiceError::PasskeyRejected
    };
    let Some(Ceremony::SignIn { state }) = take(app, ceremony_id).await? else {
        return Err(refused("unknown, used or expired ceremony"));
    };
    let rp = &app.accounts.passkeys;
    let (handle, credential_id) = rp
        .identify(&credential)
        .map_err(|_| refused("no user handle"))?;
    let mut client = app.db().await?;
    let tx = client.transaction().await?;
    let Some(stored) = passkeys::lock_by_credential_id(&*tx, credential_id).await? else {
        return Err(refused("unknown credential"));
    };
    let user = users::find_by_id(&*tx, stored.user_id)
        .await?
        .filter(|u| u.registration_id == handle)
        .ok_or_else(|| refused("user handle does not match"))?;
    if !user.can_sign_in() {
        return Err(refused("account deleted or deactivated"));
    }
    let mut passkey: Passkey = serde_json::from_value(stored.credential.clone())
        .map_err(|e| ServiceError::Internal(e.into()))?;
    let result = rp
        .finish_sign_in(&credential, state, &passkey)
        .map_err(|e| {
            tracing::warn!(event = "passkey_sign_in_refused", user_id = %user.id, passkey = %stored.id, reason = %e);
            ServiceError::PasskeyRejected
        })?;
    passkey.update_credential(&result);
    passkeys::record_use(&*tx, stored.id, &to_json(&passkey)?).await?;
    users::audit(
        &*tx,
        user.id,
        "auth.passkey_used",
        &context.audit(Some(user.id)),
        json!({ "passkey": stored.id, "backupState": result.backup_state() }),
    )
    .await?;
    tx.commit().await?;
    if app.accounts.require_verified_email && user.email_verified_at.is_none() {
        tracing::info!(event = "login_refused", reason = "email not verified", user_id = %user.id);
        return Err(ServiceError::EmailNotVerified);
    }
    Ok(user)
}

/// Finishes a passkey sign-in with a session of the api's own.
pub async fn finish_sign_in(
    app: &AppState,
    context: &RequestContext,
    ceremony_id: Option<&str>,
    credential: Option<serde_json::Value>,
) -> Result<Tokens, ServiceError> {
    let user = verify_sign_in(app, context, ceremony_id, credential).await?;
    let mut client = app.db().await?;
    accounts::start_session(
        app,
        context,
        &mut client,
        user.id,
        &user.password_hash,
        "passkey",
    )
    .await
}

/// Starts a sign-up with a passkey: the account's registration id (its user handle)
/// is chosen now. Nothing says whether the address has an account (the consumer
/// decides, as for any registration).
pub async fn begin_sign_up(
    app: &AppState,
    email: Option<&str>,
    display_name: Option<&str>,
) -> Result<CeremonyOptions, ServiceError> {
    let mut errors = Vec::new();
    let email = common::domain::registration::email_field(&mut errors, email);
    let display = display_name.map(str::trim).filter(|d| !d.is_empty());
    if display.is_some_and(|d| d.chars().count() > 100 || d.chars().any(char::is_control)) {
        errors.push(FieldError::new(
            "displayName",
            "must be at most 100 characters without control characters",
        ));
    }
    let Some(email) = email.filter(|_| errors.is_empty()) else {
        return Err(ServiceError::Invalid(errors));
    };
    let display = display.unwrap_or(email.as_str());
    let registration_id = new_registration_id();
    let (options, state) = app
        .accounts
        .passkeys
        .start_registration(registration_id, email.as_str(), display, Vec::new())
        .map_err(|e| ServiceError::Internal(e.into()))?;
    let options = to_json(&options)?;
    begin(
        app,
        &Ceremony::SignUp {
            email: email.as_str().to_owned(),
            registration_id,
            state,
        },
        options,
    )
    .await
}

/// Finishes a passkey sign-up: verifies the attestation and submits the registration
/// with the passkey as its credential (the consumer has nothing to hash).
pub async fn finish_sign_up(
    app: &AppState,
    profile: Result<Profile, Vec<FieldError>>,
    ceremony_id: Option<&str>,
    credential: Option<serde_json::Value>,
    name: Option<&str>,
    request_id: Option<String>,
) -> Result<Submitted, ServiceError> {
    let mut errors = profile.as_ref().err().cloned().unwrap_or_default();
    let name = passkey_name(name).map_err(|e| match e {
        ServiceError::Invalid(mut f) => {
            f.iter_mut().for_each(|f| f.field = "passkeyName".into());
            ServiceError::Invalid(f)
        }
        e => e,
    });
    let credential = registration_credential(credential);
    for e in [name.as_ref().err(), credential.as_ref().err()]
        .into_iter()
        .flatten()
    {
        if let ServiceError::Invalid(f) = e {
            errors.extend(f.iter().cloned());
        }
    }
    let (Ok(profile), Ok(name), Ok(credential)) = (profile, name, credential) else {
        return Err(ServiceError::Invalid(errors));
    };
    let (email, registration_id, state) = match take(app, ceremony_id).await? {
        Some(Ceremony::SignUp {
            email,
            registration_id,
            state,
        }) => (email, registration_id, state),
        _ => return Err(unknown_ceremony()),
    };
    if Email::parse(&email).ok().as_ref() != Some(&profile.email) {
        return Err(ServiceError::invalid(
            "email",
            "is not the address the passkey was created for",
        ));
    }
    let (passkey, transports) = finish_registration(app, &credential, &state)?;
    {
        let client = app.db().await?;
        if passkeys::exists(&**client, passkey.cred_id().as_ref()).await? {
            return Err(ServiceError::invalid(
                "credential",
                "this passkey is registered already",
            ));
        }
    }
    let credential = PasskeyCredential {
        credential_id: passkey.cred_id().as_ref().to_vec(),
        credential: serde_json::to_string(&passkey)
            .map_err(|e| ServiceError::Internal(e.into()))?,
        name,
        transports,
    };
    registration::submit_passkey_registration(app, profile, registration_id, credential, request_id)
        .await
}
