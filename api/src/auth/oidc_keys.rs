//! The OpenID Connect provider's keys. ID tokens are signed with RS256 (which OIDC
//! Discovery requires of every provider) or, for clients registered for it, with EdDSA
//! (the access-token key). OIDC access tokens (RFC 9068 `at+jwt`) are EdDSA. The RSA
//! key rotates like the Ed25519 one: the current private key, and the public keys of
//! earlier ones kept for verification while their tokens live.

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::keys::{JwtKeys, TokenError};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RsaKeyError {
    #[error("must be `<kid>:<base64 DER>`")]
    Format,
    #[error("the key id must be 1-64 characters of A-Z, a-z, 0-9, `-`, `_`, `.`")]
    KeyId,
    #[error("the key is not a PKCS#8 RSA private key of at least 2048 bits")]
    Private,
    #[error("the key is not an RSA public key (SubjectPublicKeyInfo DER) of at least 2048 bits")]
    Public,
}

const MIN_BITS: usize = 2048;

fn split(raw: &str) -> Result<(String, Vec<u8>), RsaKeyError> {
    let (kid, b64) = raw.trim().split_once(':').ok_or(RsaKeyError::Format)?;
    let kid = kid.trim();
    if kid.is_empty()
        || kid.len() > 64
        || !kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(RsaKeyError::KeyId);
    }
    let der = STANDARD
        .decode(b64.trim())
        .map_err(|_| RsaKeyError::Format)?;
    Ok((kid.to_owned(), der))
}

/// A new RSA-2048 key as `(OIDC_SIGNING_KEY value, OIDC_VERIFICATION_KEYS entry)`.
pub fn generate(kid: &str) -> anyhow::Result<(SecretString, String)> {
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, MIN_BITS)?;
    let private = key.to_pkcs8_der()?;
    let public = key.to_public_key().to_public_key_der()?;
    Ok((
        SecretString::from(format!("{kid}:{}", STANDARD.encode(private.as_bytes()))),
        format!("{kid}:{}", STANDARD.encode(public.as_bytes())),
    ))
}

/// The algorithm an ID token is signed with (per client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenAlg {
    Rs256,
    EdDsa,
}

impl IdTokenAlg {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "RS256" => Some(Self::Rs256),
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }
}

pub struct OidcKeys {
    rsa_kid: String,
    rsa: EncodingKey,
    rsa_decoding: HashMap<String, DecodingKey>,
    /// The RSA public keys as JWKs (current first).
    rsa_jwks: Vec<serde_json::Value>,
    /// Every key a relying party may need: the Ed25519 keys and the RSA ones.
    jwks: serde_json::Value,
}

impl OidcKeys {
    /// `signing`: `<kid>:<base64 PKCS#8 DER>`; `previous`: `<kid>:<base64 SPKI DER>`
    /// public keys of earlier signing keys. `ed25519` publishes its keys beside them.
    pub fn new(
        signing: &SecretString,
        previous: &[String],
        ed25519: &JwtKeys,
    ) -> Result<Self, (&'static str, RsaKeyError)> {
        let (kid, der) = split(signing.expose_secret()).map_err(|e| ("OIDC_SIGNING_KEY", e))?;
        let key = RsaPrivateKey::from_pkcs8_der(&der)
            .ok()
            .filter(|k| k.size() * 8 >= MIN_BITS)
            .ok_or(("OIDC_SIGNING_KEY", RsaKeyError::Private))?;
        let pkcs1 = key
            .to_pkcs1_der()
            .map_err(|_| ("OIDC_SIGNING_KEY", RsaKeyError::Private))?;
        let mut publics = vec![(kid.clone(), key.to_public_key())];
        for entry in previous.iter().filter(|e| !e.trim().is_empty()) {
            let (old_kid, der) = split(entry).map_err(|e| ("OIDC_VERIFICATION_KEYS", e))?;
            let public = RsaPublicKey::from_public_key_der(&der)
                .ok()
                .filter(|k| k.size() * 8 >= MIN_BITS)
                .ok_or(("OIDC_VERIFICATION_KEYS", RsaKeyError::Public))?;
            if old_kid != kid {
                publics.push((old_kid, public));
            }
        }
        let mut rsa_decoding = HashMap::new();
        let mut rsa_jwks = Vec::new();
        for (kid, public) in publics {
            let n = URL_SAFE_NO_PAD.encode(public.n().to_bytes_be());
            let e = URL_SAFE_NO_PAD.encode(public.e().to_bytes_be());
            rsa_decoding.insert(
                kid.clone(),
                DecodingKey::from_rsa_raw_components(
                    &public.n().to_bytes_be(),
                    &public.e().to_bytes_be(),
                ),
            );
            rsa_jwks.push(serde_json::json!({
                "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": n, "e": e,
            }));
        }
        let mut keys: Vec<serde_json::Value> = ed25519.jwks()["keys"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        keys.extend(rsa_jwks.iter().cloned());
        Ok(Self {
            rsa_kid: kid,
            rsa: EncodingKey::from_rsa_der(pkcs1.as_bytes()),
            rsa_decoding,
            rsa_jwks,
            jwks: serde_json::json!({ "keys": keys }),
        })
    }

    /// The JWKS of the provider: Ed25519 and RSA keys.
    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    pub fn rsa_jwks(&self) -> &[serde_json::Value] {
        &self.rsa_jwks
    }

    /// Signs an ID token with the client's algorithm.
    pub fn sign_id_token<T: Serialize>(&self, alg: IdTokenAlg, claims: &T, ed: &JwtKeys) -> String {
        match alg {
            IdTokenAlg::Rs256 => {
                let mut header = Header::new(Algorithm::RS256);
                header.kid = Some(self.rsa_kid.clone());
                header.typ = Some("JWT".into());
                // A key parsed at start signs; an empty token would be refused anyway.
                jsonwebtoken::encode(&header, claims, &self.rsa).unwrap_or_default()
            }
            IdTokenAlg::EdDsa => ed.sign_any(claims, "JWT"),
        }
    }

    /// Verifies an ID token this provider signed (an `id_token_hint` at logout), with
    /// either algorithm, without checking its expiry (a hint may be an old token).
    pub fn verify_id_token_hint<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
        ed: &JwtKeys,
    ) -> Result<T, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Header)?;
        let kid = header.kid.ok_or(TokenError::NoKeyId)?;
        if header.alg == Algorithm::RS256 {
            let key = self.rsa_decoding.get(&kid).ok_or(TokenError::UnknownKey)?;
            let mut validation = Validation::new(Algorithm::RS256);
            validation.validate_exp = false;
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["iss", "sub", "aud"]);
            validation.set_issuer(&[issuer]);
            Ok(jsonwebtoken::decode::<T>(token, key, &validation)?.claims)
        } else {
            ed.verify_any(token, issuer, None, false)
        }
    }
}

/// The provider, as the api runs it.
pub struct OidcProvider {
    /// The issuer URL, without a trailing slash.
    pub issuer: String,
    pub keys: OidcKeys,
    pub code_ttl: Duration,
    pub login_ttl: Duration,
    pub client_rate_per_minute: u64,
    /// Links of the hosted login page; empty: not shown.
    pub signup_url: String,
    pub password_reset_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ed() -> JwtKeys {
        let (private, _) = super::super::keys::generate("ed1");
        JwtKeys::new(
            &private,
            &[],
            "registrar",
            "registrar",
            Duration::from_secs(900),
        )
        .unwrap()
    }

    #[test]
    fn an_rs256_id_token_verifies_with_the_published_key_and_survives_a_rotation() {
        let ed = ed();
        let (old, old_public) = generate("r1").unwrap();
        let keys = OidcKeys::new(&old, &[], &ed).unwrap();
        let claims = serde_json::json!({"iss": "https://id.example", "sub": "u", "aud": "c"});
        let token = keys.sign_id_token(IdTokenAlg::Rs256, &claims, &ed);
        let back: serde_json::Value = keys
            .verify_id_token_hint(&token, "https://id.example", &ed)
            .unwrap();
        assert_eq!(back["sub"], "u");
        let kinds: Vec<&str> = keys.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kty"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["OKP", "RSA"]);

        let (new, _) = generate("r2").unwrap();
        let rotated = OidcKeys::new(&new, &[old_public], &ed).unwrap();
        assert!(rotated
            .verify_id_token_hint::<serde_json::Value>(&token, "https://id.example", &ed)
            .is_ok());
        let kids: Vec<&str> = rotated
            .rsa_jwks()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, ["r2", "r1"]);
        let without = OidcKeys::new(&new, &[], &ed).unwrap();
        assert!(without
            .verify_id_token_hint::<serde_json::Value>(&token, "https://id.example", &ed)
            .is_err());
    }

    #[test]
    fn malformed_and_short_keys_are_refused_with_the_variable_named() {
        let ed = ed();
        let bad = SecretString::from("nokid".to_owned());
        assert_eq!(
            OidcKeys::new(&bad, &[], &ed).err(),
            Some(("OIDC_SIGNING_KEY", RsaKeyError::Format))
        );
        let short = RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
        let short = SecretString::from(format!(
            "k:{}",
            STANDARD.encode(short.to_pkcs8_der().unwrap().as_bytes())
        ));
        assert_eq!(
            OidcKeys::new(&short, &[], &ed).err(),
            Some(("OIDC_SIGNING_KEY", RsaKeyError::Private))
        );
        let (good, _) = generate("r1").unwrap();
        assert_eq!(
            OidcKeys::new(&good, &["r0:AAAA".to_owned()], &ed).err(),
            Some(("OIDC_VERIFICATION_KEYS", RsaKeyError::Public))
        );
    }
}
