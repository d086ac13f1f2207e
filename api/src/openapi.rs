//! The OpenAPI 3.1 document (`/api/openapi.json`) generated from the handlers'
//! annotations, and Swagger UI at `/docs` from vendored assets.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;

use crate::bodies::accounts::{LoginRequest, RefreshRequest, TokenAnswer};
use crate::bodies::compat::{CompatRegistrationRequest, TokenGrantAnswer, TokenRequest};
use crate::bodies::data::{
    CreateItemRequest, DataItemAnswer, DataItemView, DataListAnswer, ReplaceItemRequest,
};
use crate::bodies::health::{HealthBody, ProbeBody, Services};
use crate::bodies::registration::{
    AcceptedRegistration, RegistrationAccepted, RegistrationRequest, RegistrationStatusAnswer,
    RegistrationStatusData, UserOrRegistrationStatus,
};
use crate::bodies::users::{
    AuditEntryView, AuditListAnswer, DeleteRequest, ExportAnswer, UserAnswer, UserExport,
    UserListAnswer, UserReplaceRequest, UserUpdateRequest, UserView,
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

/// Answers every operation can give besides its own: the error envelope for malformed
/// input (400), a missing or bad token on secured operations (401), a stale `If-Match`
/// (412) where one is taken, bodies that are too large or not JSON (413, 415), the rate
/// limit (429), an internal error (500) and an unavailable dependency or timeout (503).
/// Added where an operation does not document them itself, so generated clients and
/// schema-driven tests know every status the api can answer.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                        .build(),
                )
                .build()
        };
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
                let has_body = operation.request_body.is_some();
                let takes_if_match = operation
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.name.eq_ignore_ascii_case("if-match"));
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description).into());
                };
                add(
                    "400",
                    "Malformed or invalid input (`VALIDATION_ERROR`, `MALFORMED_JSON`)",
                );
                if secured {
                    add("401", "Missing, invalid or revoked access token");
                }
                if takes_if_match {
                    add("412", "`If-Match` does not match the current `ETag`");
                }
                if has_body {
                    add("413", "Body too large");
                    add("415", "Body is not `application/json`");
                }
                add("429", "Rate limited; `Retry-After` says when to retry");
                add("500", "Internal error (logged with the request id)");
                add(
                    "503",
                    "A dependency is unavailable or the request timed out; retry",
                );
            }
        }
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
        crate::routes::compat::register,
        crate::routes::compat::token,
        crate::routes::auth::login,
        crate::routes::auth::refresh,
        crate::routes::auth::logout,
        crate::routes::auth::me,
        crate::routes::imports::create,
        crate::routes::imports::status,
        crate::routes::security::verify_email,
        crate::routes::security::resend_verification,
        crate::routes::security::request_password_reset,
        crate::routes::security::confirm_password_reset,
        crate::routes::security::verify_mfa,
        crate::routes::security::mfa_status,
        crate::routes::security::enroll_totp,
        crate::routes::security::confirm_totp,
        crate::routes::security::disable_totp,
        crate::routes::security::reset_user_mfa,
        crate::routes::security::list_sessions,
        crate::routes::security::end_other_sessions,
        crate::routes::security::end_session,
        crate::routes::security::list_user_sessions,
        crate::routes::passkeys::list_of_user,
        crate::routes::social::identities_of_user,
        crate::routes::security::end_user_session,
        crate::routes::security::admin_verify_email,
        crate::routes::operations::registrations,
        crate::routes::operations::dead_letters,
        crate::routes::operations::dead_letter,
        crate::routes::operations::replay,
        crate::routes::operations::imports,
        crate::routes::operations::pipeline,
        crate::routes::operations::pipeline_stream,
        crate::routes::passkeys::enrolment_options,
        crate::routes::passkeys::add,
        crate::routes::passkeys::list,
        crate::routes::passkeys::rename,
        crate::routes::passkeys::delete,
        crate::routes::passkeys::remove_password,
        crate::routes::passkeys::sign_in_options,
        crate::routes::passkeys::sign_in,
        crate::routes::passkeys::sign_up_options,
        crate::routes::passkeys::sign_up,
        crate::routes::passwordless::request_mail,
        crate::routes::passwordless::verify,
        crate::routes::passwordless::sign_up,
        crate::routes::social::create,
        crate::routes::social::list,
        crate::routes::social::get,
        crate::routes::social::update,
        crate::routes::social::delete,
        crate::routes::social::offered,
        crate::routes::social::exchange,
        crate::routes::social::identities,
        crate::routes::social::link,
        crate::routes::social::unlink,
        crate::routes::auth::jwks,
        crate::routes::users::list,
        crate::routes::users::get,
        crate::routes::users::replace,
        crate::routes::users::patch,
        crate::routes::users::delete,
        crate::routes::users::export,
        crate::routes::users::audit,
        crate::routes::data::create,
        crate::routes::data::list,
        crate::routes::data::get,
        crate::routes::data::replace,
        crate::routes::data::delete,
        crate::routes::oidc_clients::create,
        crate::routes::oidc_clients::list,
        crate::routes::oidc_clients::get,
        crate::routes::oidc_clients::update,
        crate::routes::oidc_clients::delete,
        crate::routes::webhooks::create,
        crate::routes::webhooks::list,
        crate::routes::webhooks::get,
        crate::routes::webhooks::update,
        crate::routes::webhooks::delete,
        crate::routes::webhooks::deliveries,
        crate::routes::webhooks::redeliver_one,
        crate::routes::webhooks::redeliver_range,
        crate::routes::scim_tokens::create,
        crate::routes::scim_tokens::list,
        crate::routes::scim_tokens::revoke,
        crate::routes::health::health,
        crate::routes::health::live,
        crate::routes::health::ready,
        crate::routes::health::metrics,
        openapi_json,
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
        CompatRegistrationRequest,
        TokenRequest,
        TokenGrantAnswer,
        TokenAnswer,
        MessageAnswer,
        UserView,
        UserAnswer,
        Pagination,
        UserListAnswer,
        UserUpdateRequest,
        UserReplaceRequest,
        DeleteRequest,
        AuditEntryView,
        AuditListAnswer,
        UserExport,
        ExportAnswer,
        UserOrRegistrationStatus,
        CreateItemRequest,
        ReplaceItemRequest,
        DataItemView,
        DataItemAnswer,
        DataListAnswer
    )),
    modifiers(&BearerAuth, &CommonErrors)
)]
pub struct ApiDoc;

/// The document served at `/api/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    qualify_operation_ids(&mut doc);
    doc
}

/// utoipa names an operation after its handler, and handlers of different resources
/// share names (`list`, `get`, `register`…); OpenAPI wants them unique, and generated
/// clients key their operations by them. Each becomes `<tag>_<handler>`.
fn qualify_operation_ids(doc: &mut utoipa::openapi::OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
            &mut item.head,
            &mut item.options,
            &mut item.trace,
        ];
        for operation in operations.into_iter().flatten() {
            let tag = operation
                .tags
                .as_ref()
                .and_then(|t| t.first())
                .cloned()
                .unwrap_or_default();
            if let Some(id) = operation.operation_id.as_mut() {
                *id = format!("{tag}_{id}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_id_is_unique() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut ids = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item.as_object().unwrap().values() {
                if let Some(id) = operation["operationId"].as_str() {
                    ids.push(id.to_owned());
                }
            }
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "duplicate operationIds among {ids:?}");
        assert!(ids.contains(&"data_list".to_owned()), "{ids:?}");
    }

    /// Every request body the document names, by schema name.
    fn request_body_schemas(doc: &serde_json::Value) -> Vec<String> {
        let mut names = Vec::new();
        for item in doc["paths"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.values())
        {
            for operation in item.as_object().into_iter().flat_map(|o| o.values()) {
                for content in operation["requestBody"]["content"]
                    .as_object()
                    .into_iter()
                    .flat_map(|c| c.values())
                {
                    if let Some(r) = content["schema"]["$ref"].as_str() {
                        names.push(r.trim_start_matches("#/components/schemas/").to_owned());
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        names
    }

    fn allows_null(property: &serde_json::Value) -> bool {
        let typed = match &property["type"] {
            serde_json::Value::Array(types) => types.iter().any(|t| t == "null"),
            other => other == "null",
        };
        let one_of = property["oneOf"]
            .as_array()
            .is_some_and(|v| v.iter().any(|s| s["type"] == "null"));
        typed || one_of
    }

    /// What the server really refuses when it is missing, by request schema: the
    /// document must require exactly these (a field it requires but the server does not
    /// makes a request the document calls invalid succeed).
    #[test]
    fn request_bodies_require_what_the_server_requires() {
        let doc = serde_json::to_value(document()).unwrap();
        for (name, expected) in [
            ("LoginRequest", vec!["password"]),
            // The default REQUIRED_PROFILE_FIELDS: email and password only.
            ("RegistrationRequest", vec!["email", "password"]),
            ("CompatRegistrationRequest", vec!["email", "password"]),
            ("TokenRequest", vec![]),
        ] {
            let mut required: Vec<&str> = doc["components"]["schemas"][name]["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str())
                .collect();
            required.sort_unstable();
            let mut expected = expected;
            expected.sort_unstable();
            assert_eq!(required, expected, "{name}");
        }
    }

    /// Found by schemathesis: `username: null` was documented as a required string but
    /// read as absent, so a login the document calls invalid succeeded. Every optional property
    /// of a request body is read with serde's `Option` (null = absent), so the document
    /// must allow null for each.
    #[test]
    fn every_optional_request_property_is_documented_as_nullable() {
        let doc = serde_json::to_value(document()).unwrap();
        let schemas = request_body_schemas(&doc);
        assert!(schemas.len() >= 8, "{schemas:?}");
        for name in schemas {
            let schema = &doc["components"]["schemas"][&name];
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str())
                .collect();
            for (field, property) in schema["properties"].as_object().into_iter().flatten() {
                if !required.contains(&field.as_str()) {
                    assert!(
                        allows_null(property),
                        "{name}.{field} is optional but documented as not nullable: {property}"
                    );
                }
            }
        }
    }
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses(
    (status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json"),
))]
pub async fn openapi_json() -> impl IntoResponse {
    // Changes only with a deploy: any cache may keep it for five minutes.
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(document()),
    )
}
