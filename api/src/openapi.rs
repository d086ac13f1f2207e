//! The OpenAPI 3.1 document (`/api/openapi.json`) generated from the handlers'
//! annotations, and Swagger UI at `/docs` from vendored assets.

use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// `POST /api/users` body.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationBody {
    /// 2-100 characters.
    #[schema(example = "John")]
    pub first_name: String,
    /// 2-100 characters.
    #[schema(example = "Doe")]
    pub last_name: String,
    /// Trimmed and lower-cased before use.
    #[schema(example = "john.doe@example.com")]
    pub email: String,
    /// 8-128 characters; sealed for the consumer, never stored or logged.
    #[schema(example = "correct horse battery")]
    pub password: String,
    /// male | female | non-binary | prefer-not-to-say
    #[schema(example = "male")]
    pub gender: String,
    /// male | female | intersex
    #[schema(example = "male")]
    pub sex: String,
    /// 2-255 characters.
    #[schema(example = "Software Engineer")]
    pub occupation: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationStatusData {
    pub email: String,
    /// pending | completed | failed
    pub status: String,
    pub registration_id: String,
    /// EMAIL_TAKEN | INVALID_CREDENTIAL_ENVELOPE | INVALID_REGISTRATION (failed only)
    pub reason: Option<String>,
}

/// `202` answer of a registration and `200` answer of the polling endpoint.
#[derive(Serialize, ToSchema)]
pub struct RegistrationAnswer {
    pub success: bool,
    pub message: Option<String>,
    pub data: RegistrationStatusData,
}

#[derive(Serialize, ToSchema)]
pub struct FieldErrorDoc {
    pub field: String,
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// VALIDATION_ERROR, REGISTRATION_PENDING, RATE_LIMITED, SERVICE_UNAVAILABLE...
    pub code: String,
    pub message: String,
    pub details: Option<Vec<FieldErrorDoc>>,
}

/// The error envelope of every 4xx and 5xx answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub success: bool,
    pub error: ErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct Services {
    /// healthy | unhealthy
    pub redis: String,
    pub postgres: String,
    pub kafka: String,
}

#[derive(Serialize, ToSchema)]
pub struct HealthBody {
    /// Seconds since start.
    pub uptime: f64,
    /// OK | DEGRADED
    pub message: String,
    /// Unix milliseconds.
    pub timestamp: i64,
    pub services: Services,
}

#[derive(Serialize, ToSchema)]
pub struct ProbeBody {
    pub status: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Registrar",
        description = "Event-driven user registration: submit, then poll for completion."
    ),
    paths(
        crate::routes::registration::register,
        crate::routes::registration::register_alias,
        crate::routes::registration::status,
        crate::routes::health::health,
        crate::routes::health::live,
        crate::routes::health::ready,
        crate::startup::metrics,
        crate::startup::openapi_json,
    ),
    components(schemas(
        RegistrationBody,
        RegistrationAnswer,
        RegistrationStatusData,
        ErrorEnvelope,
        ErrorBody,
        FieldErrorDoc,
        HealthBody,
        Services,
        ProbeBody
    ))
)]
pub struct ApiDoc;

/// The document served at `/api/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
