//! The OpenAPI 3.1 document (`/api/openapi.json`) generated from the handlers'
//! annotations, and Swagger UI at `/docs` from vendored assets.

use utoipa::OpenApi;

use crate::bodies::accounts::{LoginRequest, RefreshRequest, TokenAnswer};
use crate::bodies::data::{
    CreateItemRequest, DataItemAnswer, DataItemView, DataListAnswer, ReplaceItemRequest,
};
use crate::bodies::health::{HealthBody, ProbeBody, Services};
use crate::bodies::registration::{
    AcceptedRegistration, RegistrationAccepted, RegistrationRequest, RegistrationStatusAnswer,
    RegistrationStatusData,
};
use crate::bodies::users::{
    AuditEntryView, AuditListAnswer, DeleteRequest, ExportAnswer, UserAnswer, UserExport,
    UserListAnswer, UserUpdateRequest, UserView,
};
use crate::bodies::{ErrorBody, ErrorDetail, ErrorEnvelope, MessageAnswer, Pagination};

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
        crate::routes::users::update,
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
        RegistrationRequest,
        RegistrationAccepted,
        AcceptedRegistration,
        RegistrationStatusAnswer,
        RegistrationStatusData,
        ErrorEnvelope,
        ErrorBody,
        ErrorDetail,
        HealthBody,
        Services,
        ProbeBody,
        LoginRequest,
        RefreshRequest,
        TokenAnswer,
        MessageAnswer,
        UserView,
        UserAnswer,
        Pagination,
        UserListAnswer,
        UserUpdateRequest,
        DeleteRequest,
        AuditEntryView,
        AuditListAnswer,
        UserExport,
        ExportAnswer,
        CreateItemRequest,
        ReplaceItemRequest,
        DataItemView,
        DataItemAnswer,
        DataListAnswer
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// The document served at `/api/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
