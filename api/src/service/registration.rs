//! Submitting a registration (idempotency, the pending key, sealing, publishing) and
//! reading its status for the polling endpoint.

use common::domain::email::Email;
use common::domain::registration::{
    new_registration_id, FailureReason, FieldError, Profile, Registration,
};
use common::events::registration::{Credential, PasskeyCredential, RegistrationEvent};
use common::store::registration_status::{RegistrationStatus, Withdrawal};
use common::store::users::{self, UserRecord};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ServiceError;
use crate::bodies::registration::RegistrationAccepted;
use crate::caller::Caller;
use crate::publisher::PublishError;
use crate::state::AppState;

/// Characters escaped in a path segment: RFC 3986 allows `@` and `.` there; `+` is
/// escaped because some servers read it as a space.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'+')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// A validated registration and how it was asked for.
pub struct Submission {
    pub registration: Registration,
    /// `Idempotency-Key`: a retry with the same key and profile gets the first answer.
    pub idempotency_key: Option<String>,
    /// Carried to the consumer's logs and the audit row.
    pub request_id: Option<String>,
}

/// The answer to a submission: the broker took it (or took it before, for a replay).
#[derive(Debug, Clone)]
pub struct Submitted {
    pub answer: RegistrationAccepted,
    /// The polling URL.
    pub location: String,
    /// Replayed from the idempotency store, not submitted again.
    pub replayed: bool,
}

/// The first answer to an `Idempotency-Key`, as stored.
#[derive(Serialize, Deserialize)]
struct StoredAnswer {
    fingerprint: String,
    status: u16,
    location: String,
    body: RegistrationAccepted,
}

/// Identifies "the same request" for idempotency. The password is deliberately left
/// out: a hash of it in Redis would be an offline-guessable copy of the password.
/// Optional fields hash as before when present and as a distinct marker when absent, so
/// keys stored before they became optional still match.
fn fingerprint(profile: &Profile) -> String {
    let mut h = Sha256::new();
    let date_of_birth = profile.date_of_birth.map(|d| d.to_string());
    let parts = [
        Some(profile.email.as_str()),
        profile.first_name.as_deref(),
        profile.last_name.as_deref(),
        profile.gender.map(|g| g.as_str()),
        profile.sex.map(|s| s.as_str()),
        profile.occupation.as_deref(),
    ];
    for part in parts {
        match part {
            Some(part) => {
                h.update(part.as_bytes());
                h.update([0]);
            }
            None => h.update([1]),
        }
    }
    for (name, part) in [
        ("username", profile.username.as_ref().map(|u| u.as_str())),
        ("dateOfBirth", date_of_birth.as_deref()),
    ] {
        if let Some(part) = part {
            h.update(name.as_bytes());
            h.update([2]);
            h.update(part.as_bytes());
            h.update([0]);
        }
    }
    format!("{:x}", h.finalize())
}

/// The polling URL of a registration: the email and the registration's id, which
/// anonymous polling must present.
pub fn location(email: &Email, registration_id: Uuid) -> String {
    format!(
        "{}/users/{}?registrationId={registration_id}",
        crate::versioning::CANONICAL,
        utf8_percent_encode(email.as_str(), PATH_SEGMENT)
    )
}

/// Replays an idempotent
/// answer, or claims the pending key, seals the password, publishes the event and waits
/// for the broker's acknowledgement. A registration the broker did not take releases
/// its pending key again and is an error, never an answer.
pub async fn submit_registration(
    app: &AppState,
    submission: Submission,
) -> Result<Submitted, ServiceError> {
    let Submission {
        registration: Registration { profile, password },
        idempotency_key,
        request_id,
    } = submission;
    submit(
        app,
        profile,
        Proof::Password(password),
        idempotency_key,
        request_id,
    )
    .await
}

/// How a sign-up proves it may sign in later.
pub enum Proof {
    /// A password: sealed here, hashed by the consumer.
    Password(secrecy::SecretString),
    /// A passkey whose registration ceremony the api verified: nothing to hash. The
    /// registration id is the WebAuthn user handle the ceremony was started with.
    Passkey {
        registration_id: Uuid,
        passkey: PasskeyCredential,
    },
    /// Nothing: the account signs in with mailed links and codes (or sets a password
    /// with a reset mail later).
    Mailbox,
}

/// Submits a registration without a password (`POST /api/v1/auth/passwordless/register`).
pub async fn submit_mailbox_registration(
    app: &AppState,
    profile: Profile,
    idempotency_key: Option<String>,
    request_id: Option<String>,
) -> Result<Submitted, ServiceError> {
    submit(app, profile, Proof::Mailbox, idempotency_key, request_id).await
}

/// Submits a registration whose passkey was verified (`POST /api/v1/auth/passkey/register`).
pub async fn submit_passkey_registration(
    app: &AppState,
    profile: Profile,
    registration_id: Uuid,
    passkey: PasskeyCredential,
    request_id: Option<String>,
) -> Result<Submitted, ServiceError> {
    submit(
        app,
        profile,
        Proof::Passkey {
            registration_id,
            passkey,
        },
        None,
        request_id,
    )
    .await
}

async fn submit(
    app: &AppState,
    profile: Profile,
    proof: Proof,
    idempotency_key: Option<String>,
    request_id: Option<String>,
) -> Result<Submitted, ServiceError> {
    // Only a request that carries a key pays for the fingerprint.
    let idempotency = idempotency_key.map(|key| (fingerprint(&profile), key));
    if let Some((fingerprint, key)) = &idempotency {
        if let Some(stored) = app.stores.idempotency.get::<StoredAnswer>(key).await? {
            if &stored.fingerprint != fingerprint {
                return Err(ServiceError::IdempotencyKeyReused);
            }
            return Ok(Submitted {
                answer: stored.body,
                location: stored.location,
                replayed: true,
            });
        }
    }

    // Overload is refused before any Redis work: under a flood the rejected requests
    // must stay cheap so the accepted ones keep their share of the CPU.
    if app.publisher.is_full() {
        app.metrics
            .produce_failures
            .with_label_values(&["queue_full"])
            .inc();
        return Err(ServiceError::from(PublishError::QueueFull));
    }
    let registration_id = match &proof {
        Proof::Passkey {
            registration_id, ..
        } => *registration_id,
        Proof::Password(_) | Proof::Mailbox => new_registration_id(),
    };
    let email = &profile.email;
    // The pending key first: a conflicting request costs no sealing work.
    if !app
        .stores
        .status
        .create_pending(email, registration_id)
        .await?
    {
        return Err(ServiceError::RegistrationPending);
    }
    let (credential, prehashed) = match proof {
        Proof::Password(password) => (
            Credential::Sealed(app.sealer.seal(registration_id, email, &password)),
            false,
        ),
        Proof::Passkey { passkey, .. } => (Credential::Passkey(passkey), true),
        Proof::Mailbox => (Credential::NoPassword, true),
    };
    let event = RegistrationEvent {
        registration_id,
        email: email.as_str().to_owned(),
        first_name: profile.first_name.clone(),
        last_name: profile.last_name.clone(),
        gender: profile.gender.map(|g| g.as_str().to_owned()),
        sex: profile.sex.map(|s| s.as_str().to_owned()),
        occupation: profile.occupation.clone(),
        credential,
        submitted_at_ms: chrono::Utc::now().timestamp_millis(),
        request_id: request_id.clone(),
        username: profile.username.as_ref().map(|u| u.as_str().to_owned()),
        date_of_birth: profile.date_of_birth.map(|d| d.to_string()),
        role: None,
        created_at_ms: None,
        email_verified: false,
        import: None,
        provisioning: None,
        identity: None,
    };
    let published = match event.encode() {
        Ok(payload) => {
            publish(
                app,
                email,
                &payload,
                request_id.as_deref(),
                common::events::signature::Purpose::Registration,
                prehashed,
            )
            .await
        }
        Err(e) => Err(ServiceError::Internal(e.into())),
    };
    if let Err(e) = published {
        settle_failed_publish(app, email, registration_id, e).await?;
    }
    tracing::info!(event = "registration_accepted", email = %email.masked(), %registration_id);

    let submitted = Submitted {
        answer: RegistrationAccepted::new(email.as_str(), registration_id),
        location: location(email, registration_id),
        replayed: false,
    };
    if let Some((fingerprint, key)) = idempotency {
        let stored = StoredAnswer {
            fingerprint,
            status: 202,
            location: submitted.location.clone(),
            body: submitted.answer.clone(),
        };
        // The registration is accepted either way; a lost idempotency record only means
        // a retry gets 409 or a fresh registration instead of this answer.
        if let Err(e) = app.stores.idempotency.put(&key, email, &stored).await {
            tracing::warn!(event = "idempotency_answer_not_stored", error = %e);
        }
    }
    Ok(submitted)
}

/// Publishes a registration an identity provider vouches for (SCIM, social login: signed
/// with the import key, nothing to hash) and waits up to `within` for the consumer.
/// `RegistrationPending` when a registration of the address is in flight; `None` or
/// `Pending` when the consumer did not finish in time (the registration is durable on
/// the topic all the same).
pub(crate) async fn provision(
    app: &AppState,
    event: &RegistrationEvent,
    email: &Email,
    within: std::time::Duration,
) -> Result<Option<RegistrationStatus>, ServiceError> {
    if app.publisher.is_full() {
        return Err(ServiceError::Overloaded {
            retry_after_secs: 1,
        });
    }
    let registration_id = event.registration_id;
    if !app
        .stores
        .status
        .create_pending(email, registration_id)
        .await?
    {
        return Err(ServiceError::RegistrationPending);
    }
    let payload = event
        .encode()
        .map_err(|e| ServiceError::Internal(e.into()))?;
    if let Err(e) = publish(
        app,
        email,
        &payload,
        event.request_id.as_deref(),
        common::events::signature::Purpose::Import,
        true,
    )
    .await
    {
        settle_failed_publish(app, email, registration_id, e).await?;
    }
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let status = app.stores.status.records(email).await?.of(registration_id);
        if !matches!(status, Some(RegistrationStatus::Pending(_)) | None)
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(status);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// After a failed publish: withdraws the registration so no consumer persists it, and
/// releases the email so the client can retry; `Err(error)`, the 503. A produce that
/// timed out may have been written all the same (its acknowledgement lost): when a
/// consumer already took the record, the broker did take it and this is `Ok`, the
/// registration accepted. Without Redis nothing can be withdrawn: still the 503, and a
/// record written despite it may yet become a user (the client's retry then polls
/// `completed`).
async fn settle_failed_publish(
    app: &AppState,
    email: &Email,
    registration_id: Uuid,
    error: ServiceError,
) -> Result<(), ServiceError> {
    match app.stores.status.withdraw(registration_id).await {
        Ok(Withdrawal::AlreadyTaken) => {
            app.metrics.publish_errors_taken.inc();
            tracing::warn!(
                event = "registration_taken_despite_publish_error",
                email = %email.masked(),
                %registration_id,
                error = %error,
            );
            return Ok(());
        }
        Ok(Withdrawal::Withdrawn) => {}
        Err(e) => tracing::error!(
            event = "registration_not_withdrawn",
            email = %email.masked(),
            %registration_id,
            error = %e,
        ),
    }
    if let Err(cleanup) = app
        .stores
        .status
        .remove_pending(email, registration_id)
        .await
    {
        tracing::error!(
            event = "pending_key_not_released",
            email = %email.masked(),
            %registration_id,
            error = %cleanup,
        );
    }
    tracing::warn!(event = "registration_not_published", email = %email.masked(), %registration_id);
    Err(error)
}

/// Publishes and waits for the broker's acknowledgement, recording latency and failures.
/// `purpose` names the key the record is signed with (a sign-up's, or the import key for
/// what only an admin or a provider may bring).
pub(crate) async fn publish(
    app: &AppState,
    email: &Email,
    payload: &[u8],
    request_id: Option<&str>,
    purpose: common::events::signature::Purpose,
    prehashed: bool,
) -> Result<(), ServiceError> {
    let started = std::time::Instant::now();
    let published = app
        .publisher
        .publish(
            email.as_str(),
            payload,
            crate::publisher::RecordHeaders {
                request_id,
                // Nothing to hash (an import's hash, an account without a password or
                // with a passkey): the consumer batches more of these.
                prehashed,
                purpose,
            },
        )
        .await;
    app.metrics
        .produce_duration
        .observe(started.elapsed().as_secs_f64());
    published.map_err(|e| {
        let reason = match e {
            PublishError::QueueFull => "queue_full",
            PublishError::Unavailable(_) => "unavailable",
        };
        app.metrics
            .produce_failures
            .with_label_values(&[reason])
            .inc();
        ServiceError::from(e)
    })
}

/// What is known about the registration of an email.
#[derive(Debug)]
pub struct RegistrationState {
    pub email: Email,
    /// pending | completed | failed
    pub status: &'static str,
    pub registration_id: Uuid,
    pub reason: Option<FailureReason>,
    /// The account, for its owner or an admin.
    pub profile: Option<UserRecord>,
}

/// Which registration of an email a status answer is about.
#[derive(Debug, Clone, Copy)]
enum Which {
    /// The newest (owner and admins).
    Latest,
    /// The one with this id (whoever submitted it holds the id from the 202).
    One(Uuid),
}

/// The polling answer for an email. The account's owner and admins see the email's
/// latest status and the profile. Anyone else must name the registration (the
/// `registrationId` of the 202, carried by its `Location`); without it, or with an id
/// that is not this email's, the answer is the same 404 as for an unknown email, so
/// polling cannot tell whether an email has an account. For the same reason a
/// registration refused because the email belongs to an account polls as `completed`
/// for anyone but that account's owner and admins; the owner is mailed instead
/// ("someone tried to register with your address"). `POLL_WITHOUT_REGISTRATION_ID`
/// (off by default) answers an anonymous poll without the id with the latest
/// registration, as the oldest clients expect, and so tells whether an address has
/// registered.
pub async fn registration_status(
    app: &AppState,
    raw_email: &str,
    registration_id: Option<Uuid>,
    caller: Option<&Caller>,
) -> Result<RegistrationState, ServiceError> {
    let email = Email::parse(raw_email)
        .map_err(|e| ServiceError::Invalid(vec![FieldError::new("email", e.to_string())]))?;
    let profile = match caller {
        Some(caller) => owned_profile(app, &email, caller).await,
        None => None,
    };
    let privileged = profile.is_some() || caller.is_some_and(Caller::is_admin);
    let which = match (registration_id, privileged) {
        (Some(id), _) => Which::One(id),
        (None, true) => Which::Latest,
        (None, false) if app.poll_without_registration_id => Which::Latest,
        (None, false) => return Err(ServiceError::NotFound("Registration")),
    };
    let mut state = status_of(app, email, which).await?;
    if !privileged && state.status == "failed" && state.reason == Some(FailureReason::EmailTaken) {
        state.status = "completed";
        state.reason = None;
    }
    state.profile = profile;
    Ok(state)
}

/// The live account of `email` when `caller` owns it or is an admin. Polling works
/// without PostgreSQL: the profile is an extra that is left out, not a reason to fail
/// the status, when PostgreSQL does not answer.
async fn owned_profile(app: &AppState, email: &Email, caller: &Caller) -> Option<UserRecord> {
    let user = async {
        let client = app.db().await?;
        Ok::<_, ServiceError>(users::find_by_email(&**client, email.as_str()).await?)
    }
    .await;
    match user {
        Ok(user) => user.filter(|u| !u.is_deleted() && caller.is_self_or_admin(u.id)),
        Err(e) => {
            tracing::warn!(event = "profile_lookup_failed", error = %crate::error::error_chain(&e));
            None
        }
    }
}

async fn status_of(
    app: &AppState,
    email: Email,
    which: Which,
) -> Result<RegistrationState, ServiceError> {
    let Which::One(id) = which else {
        return status_from_stores(app, email, which).await;
    };
    if let Some(hit) = app.finished.get(id, &email) {
        return Ok(RegistrationState {
            email,
            status: hit.status,
            registration_id: id,
            reason: hit.reason,
            profile: None,
        });
    }
    let state = status_from_stores(app, email, which).await?;
    app.finished
        .remember(id, &state.email, state.status, state.reason);
    Ok(state)
}

/// The state from Redis, or from PostgreSQL when Redis has nothing or fails.
async fn status_from_stores(
    app: &AppState,
    email: Email,
    which: Which,
) -> Result<RegistrationState, ServiceError> {
    let redis_failed = match app.stores.status.records(&email).await {
        Ok(records) => {
            let status = match which {
                Which::Latest => records.latest(),
                Which::One(id) => records.of(id),
            };
            if let Some(status) = status {
                let (name, record) = status.parts();
                return Ok(RegistrationState {
                    status: name,
                    registration_id: record.registration_id,
                    reason: record.reason,
                    email,
                    profile: None,
                });
            }
            false
        }
        Err(e) => {
            // Redis is only a cache of the outcome; PostgreSQL still knows completed users.
            tracing::warn!(event = "status_lookup_degraded", error = %e);
            true
        }
    };
    // Bounded as a whole (checkout and query): polling must answer, not hang.
    let registered = tokio::time::timeout(app.pg_timeout, async {
        let client = app.db().await?;
        Ok::<_, ServiceError>(users::find_registered_by_email(&**client, email.as_str()).await?)
    })
    .await
    .map_err(|_| {
        ServiceError::unavailable(anyhow::anyhow!("PostgreSQL did not answer in time"))
    })??;
    let registered = registered.filter(|u| match which {
        Which::Latest => true,
        Which::One(id) => u.registration_id == id,
    });
    match registered {
        Some(u) => Ok(RegistrationState {
            email,
            status: "completed",
            registration_id: u.registration_id,
            reason: None,
            profile: None,
        }),
        None if redis_failed => Err(ServiceError::unavailable(anyhow::anyhow!(
            "Redis unavailable and no user in PostgreSQL"
        ))),
        None => Err(ServiceError::NotFound("Registration")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_location_percent_encodes_the_email() {
        let email = Email::parse("a+b@example.com").unwrap();
        assert_eq!(
            location(&email, Uuid::nil()),
            "/api/v1/users/a%2Bb@example.com?registrationId=00000000-0000-0000-0000-000000000000"
        );
    }
}
