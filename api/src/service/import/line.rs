//! One line of an import: its registration id, and its checks (profile, password or
//! importable hash, role, verified flag) into the registration event it becomes.

use chrono::Utc;
use common::domain::password::PasswordHasherService;
use common::domain::registration::{FieldError, Profile, ProfileInput};
use common::domain::Role;
use common::events::registration::{Credential, ImportLineRef, RegistrationEvent};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::bodies::import::ImportLine;
use crate::bodies::ErrorDetail;
use crate::state::AppState;

/// Longest line accepted (bytes).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// The registration id of a line: given, or derived from the import and the line.
pub fn registration_id(import: Uuid, line: i64, given: Option<Uuid>) -> Uuid {
    given.unwrap_or_else(|| Uuid::new_v5(&import, line.to_string().as_bytes()))
}

fn field_errors(errors: Vec<FieldError>) -> Vec<ErrorDetail> {
    errors.into_iter().map(ErrorDetail::from).collect()
}

/// Validates one line into its event, or says why not.
pub(super) fn parse_line(
    app: &AppState,
    import: Uuid,
    number: i64,
    raw: &[u8],
) -> Result<RegistrationEvent, Vec<ErrorDetail>> {
    if raw.len() > MAX_LINE_BYTES {
        return Err(vec![ErrorDetail {
            field: "line".into(),
            message: format!("longer than {MAX_LINE_BYTES} bytes"),
        }]);
    }
    let line: ImportLine = serde_json::from_slice(raw).map_err(|e| {
        vec![ErrorDetail {
            field: "line".into(),
            message: format!("not a JSON registration: {e}"),
        }]
    })?;
    let mut errors: Vec<FieldError> = Vec::new();
    let profile = Profile::parse(
        ProfileInput {
            email: line.email.as_deref(),
            name: line.name.as_deref(),
            first_name: line.first_name.as_deref(),
            last_name: line.last_name.as_deref(),
            gender: line.gender.as_deref(),
            sex: line.sex.as_deref(),
            occupation: line.occupation.as_deref(),
            username: line.username.as_deref(),
            date_of_birth: line.date_of_birth.as_deref(),
        },
        app.accounts.required_profile_fields,
    )
    .map_err(|e| errors.extend(e))
    .ok();
    let role = match line.role.as_deref().map(Role::parse) {
        Some(None) => {
            errors.push(FieldError::new("role", "must be user, moderator or admin"));
            None
        }
        other => other.flatten(),
    };
    let created_at_ms = match line
        .created_at
        .as_deref()
        .map(chrono::DateTime::parse_from_rfc3339)
    {
        Some(Ok(at)) if at.timestamp_millis() <= Utc::now().timestamp_millis() => {
            Some(at.timestamp_millis())
        }
        Some(_) => {
            errors.push(FieldError::new(
                "createdAt",
                "must be an RFC 3339 time, not in the future",
            ));
            None
        }
        None => None,
    };
    let registration_id = registration_id(import, number, line.id);
    let credential = match (line.password, line.password_hash) {
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "passwordHash",
                "give password or passwordHash, not both",
            ));
            None
        }
        (None, None) => {
            errors.push(FieldError::new(
                "password",
                "password or passwordHash is required",
            ));
            None
        }
        (None, Some(hash)) if PasswordHasherService::is_importable_hash(&hash) => {
            Some(Credential::PasswordHash(hash))
        }
        (None, Some(hash)) => {
            let message = match common::domain::password::within_bounds(&hash) {
                Err(e) => format!("costs outside the accepted bounds: {e}"),
                Ok(()) => {
                    "must be an argon2id, argon2i or scrypt PHC string or a bcrypt hash".into()
                }
            };
            errors.push(FieldError::new("passwordHash", message));
            None
        }
        (Some(password), None) => match app.accounts.password_policy.check("password", &password) {
            Err(e) => {
                errors.push(e);
                None
            }
            Ok(()) if password.expose_secret().chars().count() > 128 => {
                errors.push(FieldError::new(
                    "password",
                    "must be at most 128 characters",
                ));
                None
            }
            Ok(()) => profile
                .as_ref()
                .map(|p| Credential::Sealed(app.sealer.seal(registration_id, &p.email, &password))),
        },
    };
    let (Some(profile), Some(credential), true) = (profile, credential, errors.is_empty()) else {
        return Err(field_errors(errors));
    };
    Ok(RegistrationEvent {
        registration_id,
        email: profile.email.as_str().to_owned(),
        first_name: profile.first_name,
        last_name: profile.last_name,
        gender: profile.gender.map(|g| g.as_str().to_owned()),
        sex: profile.sex.map(|s| s.as_str().to_owned()),
        occupation: profile.occupation,
        credential,
        submitted_at_ms: Utc::now().timestamp_millis(),
        request_id: Some(format!("import:{import}:{number}")),
        username: profile.username.map(|u| u.as_str().to_owned()),
        date_of_birth: profile.date_of_birth.map(|d| d.to_string()),
        role: role
            .filter(|r| *r != Role::User)
            .map(|r| r.as_str().to_owned()),
        created_at_ms,
        email_verified: line.email_verified.unwrap_or(false),
        import: Some(ImportLineRef {
            import_id: import,
            line: number,
        }),
        provisioning: None,
        identity: None,
    })
}
