//! The HTTP step every registration route ends in (`POST /api/v1/users`, its alias and
//! the compatibility route): the `Idempotency-Key`, the use case, the `202` with its
//! `Location`, and the outcome counted.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use common::domain::registration::{FieldError, Registration};

use crate::error::ApiError;
use crate::respond;
use crate::service::registration::{submit_registration, Submission, Submitted};
use crate::state::AppState;

const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// Marks an answer replayed from the idempotency store.
const REPLAYED_HEADER: &str = "idempotent-replayed";

pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_HEADER) else {
        return Ok(None);
    };
    let key = value.to_str().ok().map(str::trim).unwrap_or_default();
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::invalid(vec![FieldError::new(
            "Idempotency-Key",
            "must be 1-255 visible ASCII characters",
        )]));
    }
    Ok(Some(key.to_owned()))
}

/// Submits a parsed registration (or answers its parse error) and counts the outcome;
/// every registration route with a password ends here.
pub async fn submit(
    app: &AppState,
    headers: &HeaderMap,
    registration: Result<Registration, ApiError>,
) -> Result<Response, ApiError> {
    let submitted = match (registration, idempotency_key(headers)) {
        (Ok(registration), Ok(idempotency_key)) => {
            let submission = Submission {
                registration,
                idempotency_key,
                request_id: respond::request_id(headers),
            };
            // Boxed: the handler's future stays small for the layers that move it.
            Box::pin(submit_registration(app, submission))
                .await
                .map_err(ApiError::from)
        }
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    answer(app, submitted)
}

/// The answer to a registration (with a password, a passkey or none): `202` with the
/// polling `Location`, and its outcome counted.
pub fn answer(
    app: &AppState,
    submitted: Result<Submitted, ApiError>,
) -> Result<Response, ApiError> {
    let outcome = match &submitted {
        Ok(s) if s.replayed => "replayed",
        Ok(_) => "accepted",
        Err(e) => e.code(),
    };
    app.metrics
        .registrations
        .with_label_values(&[outcome])
        .inc();
    let submitted = submitted?;
    let mut response = respond::with_status_and_header(
        StatusCode::ACCEPTED,
        &submitted.answer,
        header::LOCATION,
        &submitted.location,
    );
    if submitted.replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idempotency_key_with_spaces_inside_is_rejected() {
        let mut h = HeaderMap::new();
        h.insert(IDEMPOTENCY_HEADER, HeaderValue::from_static("a b"));
        assert!(idempotency_key(&h).is_err());
        h.insert(IDEMPOTENCY_HEADER, HeaderValue::from_static("retry-1"));
        assert_eq!(idempotency_key(&h).unwrap().as_deref(), Some("retry-1"));
    }
}
