//! What the provider's tokens and userinfo say: the standard claims a scope releases
//! (OIDC Core §5.4), the ID token (§2) and the JWT access token (RFC 9068).

use common::store::users::UserRecord;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// `acr` of a session: one factor, or two.
pub const ACR_ONE_FACTOR: &str = "urn:registrar:acr:1fa";
pub const ACR_TWO_FACTORS: &str = "urn:registrar:acr:2fa";

/// `amr` values (RFC 8176) for how a login went.
pub fn amr_for(method: &str) -> Vec<String> {
    match method {
        "password" => vec!["pwd".into()],
        "totp" => vec!["pwd".into(), "otp".into(), "mfa".into()],
        "recovery_code" => vec!["pwd".into(), "mfa".into()],
        // A passkey with user verification: a key held (hardware-bound or synced) and
        // the PIN or biometric that unlocked it.
        "passkey" => vec!["hwk".into(), "user".into(), "mfa".into()],
        // An upstream provider vouched (federated).
        social if social.starts_with("social:") => vec!["fed".into()],
        other => vec![other.to_owned()],
    }
}

/// The `acr` that goes with an `amr`.
pub fn acr_for(amr: &[String]) -> &'static str {
    if amr.iter().any(|m| m == "mfa") {
        ACR_TWO_FACTORS
    } else {
        ACR_ONE_FACTOR
    }
}

/// The claims `scopes` release about a user.
pub fn user_claims(user: &UserRecord, scopes: &[String]) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".into(), Value::String(user.id.to_string()));
    let has = |s: &str| scopes.iter().any(|x| x == s);
    if has("profile") {
        if let Some(name) = user.full_name() {
            claims.insert("name".into(), Value::String(name));
        }
        if let Some(given) = &user.first_name {
            claims.insert("given_name".into(), Value::String(given.clone()));
        }
        if let Some(family) = &user.last_name {
            claims.insert("family_name".into(), Value::String(family.clone()));
        }
        if let Some(u) = &user.username {
            claims.insert("preferred_username".into(), Value::String(u.clone()));
        }
        if let Some(g) = &user.gender {
            claims.insert("gender".into(), Value::String(g.clone()));
        }
        if let Some(d) = user.date_of_birth {
            claims.insert("birthdate".into(), Value::String(d.to_string()));
        }
        claims.insert(
            "updated_at".into(),
            Value::from(user.updated_at.timestamp()),
        );
    }
    if has("email") {
        claims.insert("email".into(), Value::String(user.email.clone()));
        claims.insert(
            "email_verified".into(),
            Value::Bool(user.email_verified_at.is_some()),
        );
    }
    claims
}

/// The claims of an access token the provider issues (`typ: at+jwt`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    /// The user's id, or the client's for `client_credentials`.
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// The session the token belongs to; none for `client_credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

/// What an `id_token_hint` must carry to name a session.
#[derive(Debug, Clone, Deserialize)]
pub struct HintClaims {
    pub sub: String,
    pub aud: Value,
    #[serde(default)]
    pub sid: Option<Uuid>,
}
