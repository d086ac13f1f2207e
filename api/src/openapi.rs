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

/// `POST /api/auth/login` body.
#[derive(Serialize, ToSchema)]
pub struct LoginBody {
    #[schema(example = "john.doe@example.com")]
    pub email: String,
    #[schema(example = "correct horse battery")]
    pub password: String,
}

/// `POST /api/auth/refresh` body.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshBody {
    pub refresh_token: String,
}

/// The answer of login and refresh.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenAnswer {
    pub success: bool,
    /// EdDSA JWT; claims sub, role, iat, exp, jti, iss, aud, sid.
    pub access_token: String,
    /// Opaque; single use: each refresh returns the next one.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Access-token lifetime in seconds (900).
    pub expires_in: u64,
    /// Refresh-token lifetime in seconds (604800).
    pub refresh_expires_in: u64,
}

#[derive(Serialize, ToSchema)]
pub struct MessageAnswer {
    pub success: bool,
    pub message: String,
}

/// A user as the api shows it (never the password hash).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserDoc {
    pub id: String,
    pub registration_id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub gender: Option<String>,
    pub sex: Option<String>,
    pub occupation: Option<String>,
    /// user | moderator | admin
    pub role: String,
    pub created_at: String,
    pub updated_at: String,
    /// Present on deleted users (admins only see them).
    pub deleted_at: Option<String>,
    pub erased_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserAnswer {
    pub success: bool,
    pub data: UserDoc,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub limit: i64,
    pub offset: i64,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UserListAnswer {
    pub success: bool,
    pub count: usize,
    pub data: Vec<UserDoc>,
    pub pagination: Pagination,
}

/// `PUT` needs every profile field; `PATCH` any of them.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserUpdateBody {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub gender: Option<String>,
    pub sex: Option<String>,
    pub occupation: Option<String>,
    /// Admin only.
    pub role: Option<String>,
    /// A new password (8-128 characters).
    pub password: Option<String>,
    /// Required when changing one's own password.
    pub current_password: Option<String>,
}

/// `POST /api/data` body.
#[derive(Serialize, ToSchema)]
pub struct DataBody {
    /// 1-128 characters.
    #[schema(example = "theme")]
    pub key: String,
    /// Any JSON but null, up to 64 KiB.
    #[schema(value_type = Object, example = json!({"mode": "dark"}))]
    pub value: serde_json::Value,
}

/// `PUT /api/data/{key}` body.
#[derive(Serialize, ToSchema)]
pub struct DataValueBody {
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Registrar",
        description = "Event-driven user registration (submit, then poll for completion), login with JWT access and refresh tokens, user management with roles and audit, per-user data."
    ),
    paths(
        crate::routes::registration::register,
        crate::routes::registration::register_alias,
        crate::routes::auth::login,
        crate::routes::auth::refresh,
        crate::routes::auth::logout,
        crate::routes::auth::me,
        crate::routes::auth::jwks,
        crate::routes::users::list,
        crate::routes::users::get,
        crate::routes::users::replace,
        crate::routes::users::modify,
        crate::routes::users::delete,
        crate::routes::users::export,
        crate::routes::users::audit,
        crate::routes::data::create,
        crate::routes::data::list,
        crate::routes::data::get,
        crate::routes::data::replace,
        crate::routes::data::delete,
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
        ProbeBody,
        LoginBody,
        RefreshBody,
        TokenAnswer,
        MessageAnswer,
        UserDoc,
        UserAnswer,
        Pagination,
        UserListAnswer,
        UserUpdateBody,
        DataBody,
        DataValueBody
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The document served at `/api/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
