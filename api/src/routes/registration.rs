//! `POST /api/users` (also `/api/auth/register`) and the polling answer of
//! `GET /api/users/{email}`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use common::email::Email;
use common::event::{Credential, RegistrationEvent};
use common::redis_store::RegistrationStatus;
use common::registration::{
    new_registration_id, FieldError, Profile, Registration, RegistrationRequest,
};
use common::users;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::auth::caller::Caller;
use crate::error::ApiError;
use crate::extract::ApiJson;
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

const IDEMPOTENCY_HEADER: &str = "idempotency-key";
const REQUEST_ID_HEADER: &str = "x-request-id";

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::QueueFull => ApiError::Overloaded {
                retry_after_secs: 1,
            },
            PublishError::Unavailable(e) => ApiError::Unavailable(e),
        }
    }
}

fn unavailable(e: impl Into<anyhow::Error>) -> ApiError {
    ApiError::Unavailable(e.into())
}

/// The first answer to an `Idempotency-Key`, as stored in Redis.
#[derive(Serialize, Deserialize)]
struct StoredAnswer {
    fingerprint: String,
    status: u16,
    location: String,
    body: serde_json::Value,
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().ok().map(str::trim).unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "Idempotency-Key",
            "must be 1-255 visible ASCII characters",
        )]));
    }
    Ok(Some(key.to_owned()))
}

/// Identifies "the same request" for idempotency. The password is deliberately left
/// out: a hash of it in Redis would be an offline-guessable copy of the password.
fn fingerprint(profile: &Profile) -> String {
    let mut h = Sha256::new();
    for part in [
        profile.email.as_str(),
        &profile.first_name,
        &profile.last_name,
        profile.gender.as_str(),
        profile.sex.as_str(),
        &profile.occupation,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("{:x}", h.finalize())
}

fn location(email: &Email) -> String {
    format!(
        "/api/users/{}",
        utf8_percent_encode(email.as_str(), PATH_SEGMENT)
    )
}

fn answer(status: StatusCode, location: &str, body: serde_json::Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

#[utoipa::path(
    post,
    path = "/api/users",
    tag = "registration",
    request_body = crate::openapi::RegistrationBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key and body returns the first answer")),
    responses(
        (status = 202, description = "Accepted; poll the Location", body = crate::openapi::RegistrationAnswer),
        (status = 400, description = "Validation failed or malformed JSON", body = crate::openapi::ErrorEnvelope),
        (status = 409, description = "A registration of this email is pending", body = crate::openapi::ErrorEnvelope),
        (status = 413, description = "Body over 16 KiB", body = crate::openapi::ErrorEnvelope),
        (status = 415, description = "Not JSON", body = crate::openapi::ErrorEnvelope),
        (status = 422, description = "Idempotency-Key reused with another body", body = crate::openapi::ErrorEnvelope),
        (status = 429, description = "Rate limited", body = crate::openapi::ErrorEnvelope),
        (status = 503, description = "Overloaded or a dependency is down; nothing accepted", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn register(
    State(app): State<AppState>,
    headers: HeaderMap,
    request: Result<ApiJson<RegistrationRequest>, ApiError>,
) -> Result<Response, ApiError> {
    let result = match request {
        Ok(ApiJson(request)) => accept(&app, &headers, request).await,
        Err(e) => Err(e),
    };
    let outcome = match &result {
        Ok(r) if r.headers().contains_key(REPLAYED_HEADER) => "replayed",
        Ok(_) => "accepted",
        Err(e) => e.code(),
    };
    app.metrics
        .registrations
        .with_label_values(&[outcome])
        .inc();
    result
}

/// `POST /api/auth/register`: the same contract under the seeds' other name.
#[utoipa::path(
    post,
    path = "/api/auth/register",
    tag = "registration",
    request_body = crate::openapi::RegistrationBody,
    responses(
        (status = 202, description = "Accepted; same contract as POST /api/users", body = crate::openapi::RegistrationAnswer),
        (status = 400, description = "Validation failed", body = crate::openapi::ErrorEnvelope),
    )
)]
pub async fn register_alias(
    state: State<AppState>,
    headers: HeaderMap,
    request: Result<ApiJson<RegistrationRequest>, ApiError>,
) -> Result<Response, ApiError> {
    register(state, headers, request).await
}

/// Marks an answer replayed from the idempotency store.
const REPLAYED_HEADER: &str = "idempotent-replayed";

async fn accept(
    app: &AppState,
    headers: &HeaderMap,
    request: RegistrationRequest,
) -> Result<Response, ApiError> {
    let Registration { profile, password } =
        Registration::parse(request).map_err(ApiError::Validation)?;
    let idempotency = idempotency_key(headers)?;
    // Only a request that carries a key pays for the fingerprint.
    let fingerprint = idempotency.as_ref().map(|_| fingerprint(&profile));
    if let (Some(key), Some(fingerprint)) = (&idempotency, &fingerprint) {
        if let Some(stored) = app
            .store
            .idempotent_answer(key)
            .await
            .map_err(unavailable)?
        {
            let stored: StoredAnswer =
                serde_json::from_str(&stored).map_err(|e| ApiError::Internal(e.into()))?;
            if &stored.fingerprint != fingerprint {
                return Err(ApiError::IdempotencyKeyReused);
            }
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::ACCEPTED);
            let mut response = answer(status, &stored.location, stored.body);
            response
                .headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            return Ok(response);
        }
    }
    let request_id = headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    let registration_id = new_registration_id();
    let email = &profile.email;
    // The pending key first: a conflicting request costs no sealing work.
    if !app
        .store
        .create_pending(email, registration_id)
        .await
        .map_err(unavailable)?
    {
        return Err(ApiError::RegistrationPending);
    }
    let sealed = app.sealing_key.seal(registration_id, email, &password);
    drop(password);
    let event = RegistrationEvent {
        registration_id,
        email: email.as_str().to_owned(),
        first_name: profile.first_name.clone(),
        last_name: profile.last_name.clone(),
        gender: profile.gender.as_str().to_owned(),
        sex: profile.sex.as_str().to_owned(),
        occupation: profile.occupation.clone(),
        credential: Credential::Sealed(sealed),
        submitted_at_ms: chrono::Utc::now().timestamp_millis(),
        request_id: request_id.clone(),
    };
    let published = match event.encode() {
        Ok(payload) => publish(app, email, &payload, request_id.as_deref()).await,
        Err(e) => Err(ApiError::Internal(e.into())),
    };
    if let Err(e) = published {
        // Not taken: release the email so the client can retry.
        if let Err(cleanup) = app.store.remove_pending(email, registration_id).await {
            tracing::error!(
                event = "pending_key_not_released",
                email = %email.masked(),
                %registration_id,
                error = %cleanup,
            );
        }
        tracing::warn!(event = "registration_not_published", email = %email.masked(), %registration_id);
        return Err(e);
    }
    tracing::info!(event = "registration_accepted", email = %email.masked(), %registration_id);

    let body = json!({
        "success": true,
        "message": "User registration submitted successfully",
        "data": {
            "email": email.as_str(),
            "registrationId": registration_id,
            "status": "pending",
        }
    });
    let location = location(email);
    if let (Some(key), Some(fingerprint)) = (&idempotency, fingerprint) {
        let stored = StoredAnswer {
            fingerprint,
            status: StatusCode::ACCEPTED.as_u16(),
            location: location.clone(),
            body: body.clone(),
        };
        let stored = serde_json::to_string(&stored).map_err(|e| ApiError::Internal(e.into()))?;
        // The registration is accepted either way; a lost idempotency record only means
        // a retry gets 409 or a fresh registration instead of this answer.
        if let Err(e) = app.store.store_idempotent_answer(key, &stored).await {
            tracing::warn!(event = "idempotency_answer_not_stored", error = %e);
        }
    }
    Ok(answer(StatusCode::ACCEPTED, &location, body))
}

/// Publishes and waits for the broker's acknowledgement, recording latency and failures.
async fn publish(
    app: &AppState,
    email: &Email,
    payload: &[u8],
    request_id: Option<&str>,
) -> Result<(), ApiError> {
    let started = std::time::Instant::now();
    let published = app
        .publisher
        .publish(email.as_str(), payload, request_id)
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
        ApiError::from(e)
    })
}

/// The polling answer for an email (`GET /api/users/{id}` with an email): status only,
/// plus the profile when the caller owns the account or is an admin.
pub async fn status(
    app: &AppState,
    raw: &str,
    caller: Option<&Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut answer = registration_status(app, raw).await?;
    if let Some(caller) = caller {
        let email = answer.0["data"]["email"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        // Polling works without PostgreSQL; the profile is an extra that is left out,
        // not a reason to fail the status, when PostgreSQL does not answer.
        let user = async {
            let client = app.db().await?;
            users::find_by_email(&**client, &email)
                .await
                .map_err(unavailable)
        }
        .await;
        match user {
            Ok(Some(user)) if !user.is_deleted() && caller.is_self_or_admin(user.id) => {
                answer.0["data"]["user"] = json!(user);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(event = "profile_lookup_failed", error = %crate::error::error_chain(&e))
            }
        }
    }
    Ok(answer)
}

async fn registration_status(
    app: &AppState,
    raw: &str,
) -> Result<Json<serde_json::Value>, ApiError> {
    let email = Email::parse(raw)
        .map_err(|e| ApiError::Validation(vec![FieldError::new("email", e.to_string())]))?;
    let redis_failed = match app.store.lookup(&email).await {
        Ok(Some(status)) => return Ok(Json(status_body(&email, &status))),
        Ok(None) => false,
        Err(e) => {
            // Redis is only a cache of the outcome; PostgreSQL still knows completed users.
            tracing::warn!(event = "status_lookup_degraded", error = %e);
            true
        }
    };
    let user = tokio::time::timeout(app.pg_timeout, async {
        let client = app.pg.get().await?;
        anyhow::Ok(users::find_registered_by_email(&**client, email.as_str()).await?)
    })
    .await
    .map_err(|_| unavailable(anyhow::anyhow!("PostgreSQL did not answer in time")))?
    .map_err(unavailable)?;
    match user {
        Some(u) => Ok(Json(json!({
            "success": true,
            "data": {
                "email": email.as_str(),
                "status": "completed",
                "registrationId": u.registration_id,
            }
        }))),
        None if redis_failed => Err(unavailable(anyhow::anyhow!(
            "Redis unavailable and no user in PostgreSQL"
        ))),
        None => Err(ApiError::NotFound("Registration")),
    }
}

fn status_body(email: &Email, status: &RegistrationStatus) -> serde_json::Value {
    let (name, record) = match status {
        RegistrationStatus::Pending(r) => ("pending", r),
        RegistrationStatus::Completed(r) => ("completed", r),
        RegistrationStatus::Failed(r) => ("failed", r),
    };
    let mut data = json!({
        "email": email.as_str(),
        "status": name,
        "registrationId": record.registration_id,
    });
    if let Some(reason) = record.reason {
        data["reason"] = json!(reason.as_str());
    }
    json!({ "success": true, "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_location_percent_encodes_the_email() {
        let email = Email::parse("a+b@example.com").unwrap();
        assert_eq!(location(&email), "/api/users/a%2Bb@example.com");
    }

    #[test]
    fn an_idempotency_key_with_spaces_inside_is_rejected() {
        let mut h = HeaderMap::new();
        h.insert(IDEMPOTENCY_HEADER, HeaderValue::from_static("a b"));
        assert!(idempotency_key(&h).is_err());
        h.insert(IDEMPOTENCY_HEADER, HeaderValue::from_static("retry-1"));
        assert_eq!(idempotency_key(&h).unwrap().as_deref(), Some("retry-1"));
    }
}
