//! Access tokens: EdDSA (Ed25519) JWTs with a `kid`, the verification keys (the current
//! one and those of earlier rotations) and the JWKS document that publishes them.

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use common::domain::Role;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The claims of an access token. `sid` names the session (refresh-token family) the
/// token belongs to, so revoking the session refuses the token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    pub iss: String,
    pub aud: String,
    pub sid: Uuid,
    /// Whether the user's email was verified when the token was issued.
    #[serde(default)]
    pub email_verified: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("must be `<kid>:<base64 32-byte Ed25519 key>`")]
    Format,
    #[error("the key id must be 1-64 characters of A-Z, a-z, 0-9, `-`, `_`, `.`")]
    KeyId,
    #[error("the key is not 32 bytes of base64")]
    Key,
}

pub(crate) fn split_key(raw: &str) -> Result<(String, [u8; 32]), KeyError> {
    let (kid, b64) = raw.trim().split_once(':').ok_or(KeyError::Format)?;
    let kid = kid.trim();
    if kid.is_empty()
        || kid.len() > 64
        || !kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(KeyError::KeyId);
    }
    let bytes = STANDARD
        .decode(b64.trim())
        .or_else(|_| URL_SAFE_NO_PAD.decode(b64.trim()))
        .map_err(|_| KeyError::Key)?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Key)?;
    Ok((kid.to_owned(), bytes))
}

/// A new signing key as `(JWT_SIGNING_KEY value, JWT_VERIFICATION_KEYS entry)`.
pub fn generate(kid: &str) -> (SecretString, String) {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let public = STANDARD.encode(key.verifying_key().as_bytes());
    let private = SecretString::from(format!("{kid}:{}", STANDARD.encode(seed)));
    (private, format!("{kid}:{public}"))
}

#[derive(Debug, Clone, Serialize)]
struct Jwk {
    kty: &'static str,
    crv: &'static str,
    alg: &'static str,
    #[serde(rename = "use")]
    use_: &'static str,
    kid: String,
    x: String,
}

pub struct JwtKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    jwks: serde_json::Value,
    validation: Validation,
    issuer: String,
    audience: String,
    pub access_ttl: Duration,
}

/// Why a presented token was refused (logged, never shown in detail).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token header")]
    Header,
    #[error("the token names no key id")]
    NoKeyId,
    #[error("unknown key id")]
    UnknownKey,
    #[error("{0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
}

impl JwtKeys {
    /// `signing`: `<kid>:<base64 seed>`; `previous`: `<kid>:<base64 public key>` entries
    /// of earlier keys, still accepted for verification while their tokens live.
    pub fn new(
        signing: &SecretString,
        previous: &[String],
        issuer: &str,
        audience: &str,
        access_ttl: Duration,
    ) -> Result<Self, (&'static str, KeyError)> {
        let (kid, seed) = split_key(signing.expose_secret()).map_err(|e| ("JWT_SIGNING_KEY", e))?;
        let signing_key = SigningKey::from_bytes(&seed);
        let der = signing_key
            .to_pkcs8_der()
            .map_err(|_| ("JWT_SIGNING_KEY", KeyError::Key))?;
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let mut publics = vec![(kid.clone(), *signing_key.verifying_key().as_bytes())];
        for entry in previous.iter().filter(|e| !e.trim().is_empty()) {
            let (old_kid, public) = split_key(entry).map_err(|e| ("JWT_VERIFICATION_KEYS", e))?;
            if ed25519_dalek::VerifyingKey::from_bytes(&public).is_err() {
                return Err(("JWT_VERIFICATION_KEYS", KeyError::Key));
            }
            if old_kid != kid {
                publics.push((old_kid, public));
            }
        }
        let mut decoding = HashMap::new();
        let mut keys = Vec::new();
        for (kid, public) in publics {
            decoding.insert(kid.clone(), DecodingKey::from_ed_der(&public));
            keys.push(Jwk {
                kty: "OKP",
                crv: "Ed25519",
                alg: "EdDSA",
                use_: "sig",
                kid,
                x: URL_SAFE_NO_PAD.encode(public),
            });
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.algorithms = vec![Algorithm::EdDSA];
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        validation.validate_exp = true;
        Ok(Self {
            kid,
            encoding,
            decoding,
            jwks: serde_json::json!({ "keys": keys }),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            access_ttl,
        })
    }

    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// Signs an access token for a user in a session.
    pub fn issue(&self, user_id: Uuid, role: Role, session_id: Uuid) -> (String, Claims) {
        self.issue_with(user_id, role, session_id, false)
    }

    /// An access token that also states whether the user's email is verified.
    pub fn issue_with(
        &self,
        user_id: Uuid,
        role: Role,
        session_id: Uuid,
        email_verified: bool,
    ) -> (String, Claims) {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user_id,
            role,
            iat: now,
            exp: now + i64::try_from(self.access_ttl.as_secs()).unwrap_or(900),
            jti: Uuid::new_v4(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sid: session_id,
            email_verified,
        };
        (self.sign(&claims), claims)
    }

    /// Signs arbitrary claims with the current key (tests forge expired or foreign
    /// tokens with it).
    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        // Signing with a key parsed at start cannot fail; an empty token would simply
        // be refused by every verifier.
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap_or_default()
    }

    /// Signs any claims with the current Ed25519 key (OIDC ID and access tokens).
    pub fn sign_any<T: Serialize>(&self, claims: &T, typ: &str) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.into());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap_or_default()
    }

    /// Verifies an EdDSA token with another issuer and audience than the api's own
    /// access tokens (OIDC): signature, `iss`, `aud` when given, and `exp` when asked.
    pub fn verify_any<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
        audience: Option<&str>,
        check_exp: bool,
    ) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Header)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Header);
        }
        let kid = header.kid.ok_or(TokenError::NoKeyId)?;
        let key = self.decoding.get(&kid).ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        validation.validate_exp = check_exp;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["iss", "sub"]);
        Ok(jsonwebtoken::decode::<T>(token, key, &validation)?.claims)
    }

    /// Verifies signature (EdDSA only, key chosen by `kid`), `iss`, `aud` and `exp`.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Header)?;
        let kid = header.kid.ok_or(TokenError::NoKeyId)?;
        let key = self.decoding.get(&kid).ok_or(TokenError::UnknownKey)?;
        Ok(jsonwebtoken::decode::<Claims>(token, key, &self.validation)?.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(signing: &SecretString, previous: &[String]) -> JwtKeys {
        JwtKeys::new(
            signing,
            previous,
            "registrar",
            "registrar-api",
            Duration::from_secs(900),
        )
        .unwrap()
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let (private, _) = generate("k1");
        let k = keys(&private, &[]);
        let user = Uuid::new_v4();
        let (token, claims) = k.issue(user, Role::Moderator, Uuid::new_v4());
        let verified = k.verify(&token).unwrap();
        assert_eq!(verified, claims);
        assert_eq!(verified.sub, user);
        assert_eq!(verified.exp - verified.iat, 900);
    }

    #[test]
    fn a_token_of_a_previous_key_verifies_after_rotation() {
        let (old_private, old_public) = generate("old");
        let (token, _) = keys(&old_private, &[]).issue(Uuid::new_v4(), Role::User, Uuid::new_v4());
        let (new_private, _) = generate("new");
        let rotated = keys(&new_private, &[old_public]);
        assert!(rotated.verify(&token).is_ok());
        let kids: Vec<&str> = rotated.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, ["new", "old"]);
        // Without the old public key the token's kid is unknown.
        assert!(matches!(
            keys(&new_private, &[]).verify(&token),
            Err(TokenError::UnknownKey)
        ));
    }

    #[test]
    fn malformed_keys_are_rejected_with_the_variable_name() {
        let bad = SecretString::from("no-colon".to_owned());
        let e = JwtKeys::new(&bad, &[], "i", "a", Duration::from_secs(1))
            .err()
            .unwrap();
        assert_eq!(e, ("JWT_SIGNING_KEY", KeyError::Format));
        let (private, _) = generate("k1");
        let e = JwtKeys::new(
            &private,
            &["x:AAAA".into()],
            "i",
            "a",
            Duration::from_secs(1),
        )
        .err()
        .unwrap();
        assert_eq!(e.0, "JWT_VERIFICATION_KEYS");
    }
}
