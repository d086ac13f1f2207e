//! A Registrar account as a SCIM User, and a SCIM User document checked against the
//! schema and turned into what is stored.
//!
//! Stored in columns: `userName` (when it is not simply the email), `externalId`,
//! `name.givenName` and `name.familyName` (the profile's names), `title` (the
//! occupation), `active` (deactivation) and the address of the primary (or first) email.
//! Every other attribute of the schema is kept as the provider sent it, in a JSON column,
//! and returned as it was.

use common::domain::email::Email;
use common::domain::registration::{Profile, ProfileInput, RequiredFields};
use common::store::scim::ScimWrite;
use common::store::users::UserRecord;
use serde_json::{json, Map, Value};

use super::schema::{self, Attr, Kind, Mutability, ENTERPRISE, USER};
use super::ScimError;

/// The largest JSON of kept attributes, in bytes.
const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;
/// The longest string a kept attribute may hold.
const MAX_STRING_CHARS: usize = 1024;
/// The most values a multi-valued attribute may hold.
const MAX_VALUES: usize = 20;

/// Attributes of the core schema that have a column (the rest are kept as sent).
const COLUMNS: &[&str] = &["userName", "title", "active"];

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The weak entity tag of a version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The position of the primary value of a multi-valued attribute (else the first).
fn primary_index(values: &[Value]) -> Option<usize> {
    if values.is_empty() {
        return None;
    }
    Some(
        values
            .iter()
            .position(|v| v.get("primary") == Some(&Value::Bool(true)))
            .unwrap_or(0),
    )
}

/// The account as a SCIM User.
pub fn render(user: &UserRecord, base: &str) -> Value {
    let kept = user
        .scim_attributes
        .as_ref()
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut out = Map::new();
    let mut schemas = vec![json!(USER)];
    out.insert("id".into(), json!(user.id));
    if let Some(external) = &user.external_id {
        out.insert("externalId".into(), json!(external));
    }
    out.insert(
        "userName".into(),
        json!(user.scim_user_name.as_deref().unwrap_or(&user.email)),
    );
    let mut name = kept
        .get("name")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (key, value) in [
        ("givenName", &user.first_name),
        ("familyName", &user.last_name),
    ] {
        match value {
            Some(v) => name.insert(key.into(), json!(v)),
            None => name.remove(key),
        };
    }
    if !name.is_empty() {
        out.insert("name".into(), Value::Object(name));
    }
    for (key, value) in &kept {
        if key != "name" && key != "emails" && key != ENTERPRISE {
            out.insert(key.clone(), value.clone());
        }
    }
    if let Some(title) = &user.occupation {
        out.insert("title".into(), json!(title));
    }
    out.insert("active".into(), json!(user.disabled_at.is_none()));
    let mut emails = kept
        .get("emails")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match primary_index(&emails) {
        Some(i) => emails[i]["value"] = json!(user.email),
        None => emails.push(json!({ "value": user.email })),
    }
    out.insert("emails".into(), Value::Array(emails));
    if user.role != common::domain::Role::User {
        let role = user.role.as_str();
        out.insert(
            "groups".into(),
            json!([{ "value": role, "$ref": format!("{base}/Groups/{role}"), "display": role }]),
        );
    }
    if let Some(enterprise) = kept.get(ENTERPRISE).filter(|e| e.is_object()) {
        schemas.push(json!(ENTERPRISE));
        out.insert(ENTERPRISE.into(), enterprise.clone());
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": rfc3339(user.created_at),
            "lastModified": rfc3339(user.updated_at),
            "location": format!("{base}/Users/{}", user.id),
            "version": etag(user.version),
        }),
    );
    Value::Object(out)
}

/// A User document as Registrar stores it.
#[derive(Debug, Clone)]
pub struct ScimUser {
    pub user_name: String,
    pub external_id: Option<String>,
    pub email: Email,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub title: Option<String>,
    pub active: bool,
    /// The attributes without a column, as checked (a JSON object; empty: none).
    pub attributes: Map<String, Value>,
}

impl ScimUser {
    pub fn write(&self) -> ScimWrite {
        ScimWrite {
            email: self.email.as_str().to_owned(),
            user_name: self.user_name.clone(),
            external_id: self.external_id.clone(),
            first_name: self.given_name.clone(),
            last_name: self.family_name.clone(),
            title: self.title.clone(),
            attributes: self.attributes_json(),
            active: self.active,
        }
    }

    pub fn attributes_json(&self) -> Option<Value> {
        (!self.attributes.is_empty()).then(|| Value::Object(self.attributes.clone()))
    }
}

fn invalid(path: &str, message: impl std::fmt::Display) -> ScimError {
    ScimError::invalid_value(format!("{path}: {message}"))
}

/// A boolean, or (Entra ID sends them) the strings "true" and "false" in any case.
pub fn boolean(path: &str, v: &Value) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(invalid(path, "must be true or false")),
    }
}

/// Checks a value against its attribute; returns it as kept (`None`: cleared). Read-only
/// attributes are dropped, as RFC 7643 §2.2 says clients' values for them are ignored.
fn check(attr: &Attr, path: &str, v: &Value) -> Result<Option<Value>, ScimError> {
    if v.is_null() || attr.mutability == Mutability::ReadOnly {
        return Ok(None);
    }
    if attr.multi {
        let items: Vec<Value> = match v {
            Value::Array(items) => items.clone(),
            single => vec![single.clone()],
        };
        if items.len() > MAX_VALUES {
            return Err(invalid(path, format!("at most {MAX_VALUES} values")));
        }
        let mut kept = Vec::new();
        for item in &items {
            if let Some(value) = check_one(attr, path, item)? {
                kept.push(value);
            }
        }
        if kept
            .iter()
            .filter(|i| i.get("primary") == Some(&Value::Bool(true)))
            .count()
            > 1
        {
            return Err(invalid(path, "at most one value may be primary"));
        }
        return Ok((!kept.is_empty()).then_some(Value::Array(kept)));
    }
    check_one(attr, path, v)
}

fn check_one(attr: &Attr, path: &str, v: &Value) -> Result<Option<Value>, ScimError> {
    match attr.kind {
        Kind::String | Kind::Reference => match v {
            Value::String(s) if s.chars().count() > MAX_STRING_CHARS => Err(invalid(
                path,
                format!("at most {MAX_STRING_CHARS} characters"),
            )),
            Value::String(s) => Ok(Some(json!(s))),
            Value::Null => Ok(None),
            _ => Err(invalid(path, "must be a string")),
        },
        Kind::Boolean => boolean(path, v).map(|b| Some(json!(b))),
        Kind::Complex => {
            let Value::Object(fields) = v else {
                return Err(invalid(path, "must be an object"));
            };
            let mut kept = Map::new();
            for (key, value) in fields {
                let Some(sub) = schema::find(attr.sub, key) else {
                    continue;
                };
                if let Some(value) = check(sub, &format!("{path}.{}", sub.name), value)? {
                    kept.insert(sub.name.to_owned(), value);
                }
            }
            Ok((!kept.is_empty()).then_some(Value::Object(kept)))
        }
    }
}

fn text(v: Option<&Value>, path: &str) -> Result<Option<String>, ScimError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(path, "must be a string")),
    }
}

/// Checks a whole User document (POST, PUT, or the result of a PATCH) and turns it into
/// what is stored. Attributes outside the schema are ignored (so are `id`, `meta`,
/// `groups` and `password`: Registrar never takes a password over SCIM).
pub fn parse(document: &Value) -> Result<ScimUser, ScimError> {
    let Value::Object(fields) = document else {
        return Err(ScimError::invalid_syntax("a User must be a JSON object"));
    };
    let field = |name: &str| super::filter::get(document, name);
    let user_name = text(field("userName"), "userName")?
        .map(|u| u.trim().to_owned())
        .ok_or_else(|| ScimError::invalid_value("userName is required"))?;
    if user_name.chars().count() > 256 {
        return Err(invalid("userName", "at most 256 characters"));
    }
    let external_id = text(field("externalId"), "externalId")?;
    if external_id
        .as_ref()
        .is_some_and(|e| e.chars().count() > 256)
    {
        return Err(invalid("externalId", "at most 256 characters"));
    }
    let active = match field("active") {
        None | Some(Value::Null) => true,
        Some(v) => boolean("active", v)?,
    };
    let mut attributes = Map::new();
    for (key, value) in fields {
        if let Some(attr) = schema::find(schema::USER_ATTRS, key) {
            if COLUMNS.contains(&attr.name) {
                continue;
            }
            if let Some(kept) = check(attr, attr.name, value)? {
                attributes.insert(attr.name.to_owned(), kept);
            }
        } else if key.eq_ignore_ascii_case(ENTERPRISE) {
            let Value::Object(ext) = value else {
                if value.is_null() {
                    continue;
                }
                return Err(invalid(ENTERPRISE, "must be an object"));
            };
            let mut kept = Map::new();
            for (k, v) in ext {
                if let Some(attr) = schema::find(schema::ENTERPRISE_ATTRS, k) {
                    if let Some(value) = check(attr, attr.name, v)? {
                        kept.insert(attr.name.to_owned(), value);
                    }
                }
            }
            if !kept.is_empty() {
                attributes.insert(ENTERPRISE.to_owned(), Value::Object(kept));
            }
        }
    }
    // The names and the title are the profile's: the registration rules apply.
    let name = attributes.get("name").cloned().unwrap_or(Value::Null);
    let given_name = text(name.get("givenName"), "name.givenName")?;
    let family_name = text(name.get("familyName"), "name.familyName")?;
    if let Some(Value::Object(n)) = attributes.get_mut("name") {
        n.remove("givenName");
        n.remove("familyName");
        if n.is_empty() {
            attributes.remove("name");
        }
    }
    let title = text(field("title"), "title")?;
    let emails = attributes
        .get("emails")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let address = match primary_index(&emails) {
        Some(i) => emails[i]
            .get("value")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| invalid("emails", "the primary email has no value"))?,
        None => user_name.clone(),
    };
    let profile = Profile::parse(
        ProfileInput {
            email: Some(&address),
            first_name: given_name.as_deref(),
            last_name: family_name.as_deref(),
            occupation: title.as_deref(),
            ..Default::default()
        },
        RequiredFields::NONE,
    )
    .map_err(|errors| {
        let e = &errors[0];
        let path = match e.field.as_str() {
            "firstName" => "name.givenName",
            "lastName" => "name.familyName",
            "occupation" => "title",
            "email" if emails.is_empty() => {
                return ScimError::invalid_value(
                    "an account needs an address: send emails, or a userName that is one",
                )
            }
            "email" => "emails.value",
            other => other,
        };
        invalid(path, &e.message)
    })?;
    // One address and nothing else about it is what every account shows anyway.
    let bare_address = |e: &Value| {
        e.as_array().is_some_and(|a| {
            a.len() == 1
                && a[0]
                    .as_object()
                    .is_some_and(|o| o.len() == 1 && o.contains_key("value"))
        })
    };
    if attributes.get("emails").is_some_and(bare_address) {
        attributes.remove("emails");
    }
    if serde_json::to_vec(&attributes).map_or(0, |b| b.len()) > MAX_ATTRIBUTES_BYTES {
        return Err(ScimError::invalid_value(format!(
            "the attributes are larger than {MAX_ATTRIBUTES_BYTES} bytes"
        )));
    }
    Ok(ScimUser {
        user_name,
        external_id,
        email: profile.email,
        given_name: profile.first_name,
        family_name: profile.last_name,
        title: profile.occupation,
        active,
        attributes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn okta_user() -> Value {
        json!({
            "schemas": [USER, ENTERPRISE],
            "userName": "Jane.Doe@Corp.example",
            "name": {"givenName": "Jane", "familyName": "Doe", "formatted": "Jane Doe"},
            "emails": [{"primary": true, "value": "Jane.Doe@Corp.example", "type": "work"}],
            "displayName": "Jane Doe",
            "locale": "en-GB",
            "externalId": "00u1abcd",
            "groups": [],
            "password": "never-taken",
            "active": "True",
            ENTERPRISE: {"department": "Flight ops", "unknown": 1},
            "unknownAttribute": {"ignored": true}
        })
    }

    #[test]
    fn a_provider_document_is_split_into_columns_and_kept_attributes() {
        let u = parse(&okta_user()).unwrap();
        assert_eq!(u.user_name, "Jane.Doe@Corp.example");
        assert_eq!(u.email.as_str(), "jane.doe@corp.example");
        assert_eq!(u.given_name.as_deref(), Some("Jane"));
        assert!(u.active, "Entra's string booleans are read");
        assert_eq!(u.attributes["name"], json!({"formatted": "Jane Doe"}));
        assert_eq!(
            u.attributes[ENTERPRISE],
            json!({"department": "Flight ops"})
        );
        assert!(!u.attributes.contains_key("password"));
        assert!(!u.attributes.contains_key("groups"), "read-only: ignored");
        assert!(!u.attributes.contains_key("unknownAttribute"));
    }

    #[test]
    fn documents_that_break_the_schema_are_refused() {
        for (change, why) in [
            (json!({"userName": null}), "no userName"),
            (json!({"active": "maybe"}), "a boolean that is not one"),
            (
                json!({"emails": [{"value": "not an address"}]}),
                "a bad email",
            ),
            (
                json!({"emails": [{"value": "a@x.org", "primary": true}, {"value": "b@x.org", "primary": true}]}),
                "two primaries",
            ),
            (json!({"displayName": 5}), "a number for a string"),
            (
                json!({"name": {"givenName": "J"}}),
                "a name too short for the profile",
            ),
            (
                json!({"emails": [], "userName": "jdoe"}),
                "no address at all",
            ),
        ] {
            let mut doc = okta_user();
            for (k, v) in change.as_object().unwrap() {
                doc[k] = v.clone();
            }
            let e = parse(&doc).expect_err(why);
            assert_eq!(e.status, 400, "{why}");
        }
    }

    #[test]
    fn rendering_returns_what_was_kept_with_the_current_email() {
        let u = parse(&okta_user()).unwrap();
        let now = chrono::Utc::now();
        let record = UserRecord {
            id: uuid::Uuid::now_v7(),
            registration_id: uuid::Uuid::now_v7(),
            email: "jane@new.example".into(),
            first_name: u.given_name.clone(),
            last_name: u.family_name.clone(),
            gender: None,
            sex: None,
            occupation: None,
            username: None,
            date_of_birth: None,
            role: common::domain::Role::Moderator,
            password_hash: common::domain::password::NO_PASSWORD.into(),
            version: 3,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            erased_at: None,
            email_verified_at: Some(now),
            pending_email: None,
            scim_user_name: Some(u.user_name.clone()),
            external_id: u.external_id.clone(),
            scim_attributes: u.attributes_json(),
            disabled_at: Some(now),
        };
        let out = render(&record, "https://id.example/scim/v2");
        assert_eq!(out["emails"][0]["value"], "jane@new.example");
        assert_eq!(out["emails"][0]["type"], "work");
        assert_eq!(out["name"]["formatted"], "Jane Doe");
        assert_eq!(out["name"]["givenName"], "Jane");
        assert_eq!(out["active"], false);
        assert_eq!(out["groups"][0]["value"], "moderator");
        assert_eq!(out["meta"]["version"], "W/\"3\"");
        assert_eq!(out["schemas"][1], ENTERPRISE);
        // What was rendered parses back to the same stored state.
        let again = parse(&out).unwrap();
        for kept in ["name", "displayName", "locale", ENTERPRISE] {
            assert_eq!(again.attributes[kept], u.attributes[kept], "{kept}");
        }
        assert_eq!(again.email.as_str(), "jane@new.example");
        assert!(!again.active);
    }
}
