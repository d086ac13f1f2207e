//! Password sealing with HPKE (RFC 9180): the api seals each password to the consumers'
//! X25519 public key; only consumers, which hold the private keys, can open it.
//!
//! Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, base mode. The
//! associated data binds the ciphertext to its registration (`registrationId` LF
//! `email`), so a sealed password cannot be replayed into another registration.

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::domain::email::Email;

type Kem = X25519HkdfSha256;
type PublicKey = <Kem as hpke::Kem>::PublicKey;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

/// Domain separation: a ciphertext made for another purpose never opens here.
const INFO: &[u8] = b"registrar/v1/password";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("is not valid base64")]
    Base64,
    #[error("is not a 32-byte X25519 key")]
    Length,
    #[error("key id must be 1-64 characters of [A-Za-z0-9._-]")]
    KeyId,
    #[error("expected comma-separated `kid:base64key` pairs")]
    Format,
    #[error("names key id `{0}` twice")]
    DuplicateKeyId(String),
    #[error("holds no key")]
    Empty,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("no private key for key id `{0}`")]
    UnknownKeyId(String),
    #[error("sealed password could not be opened (tampered or wrong key)")]
    Tampered,
    #[error("opened password is not UTF-8")]
    NotUtf8,
}

/// A password sealed to one consumer key pair, as carried in the event.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedPassword {
    pub key_id: String,
    pub encapsulated_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedPassword")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

fn validate_key_id(kid: &str) -> Result<(), KeyError> {
    let ok = !kid.is_empty()
        && kid.len() <= 64
        && kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::KeyId)
    }
}

fn decode_key(b64: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let bytes = Zeroizing::new(B64.decode(b64.trim()).map_err(|_| KeyError::Base64)?);
    if bytes.len() != 32 {
        return Err(KeyError::Length);
    }
    Ok(bytes)
}

fn associated_data(registration_id: Uuid, email: &Email) -> Vec<u8> {
    format!("{registration_id}\n{email}").into_bytes()
}

/// The api's half: the consumers' current public key and its id.
#[derive(Clone)]
pub struct SealingKey {
    key_id: String,
    public: PublicKey,
}

impl SealingKey {
    pub fn from_base64(key_id: &str, public_b64: &str) -> Result<Self, KeyError> {
        validate_key_id(key_id)?;
        let bytes = decode_key(public_b64)?;
        let public = PublicKey::from_bytes(&bytes).map_err(|_| KeyError::Length)?;
        Ok(Self {
            key_id: key_id.to_owned(),
            public,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn seal(
        &self,
        registration_id: Uuid,
        email: &Email,
        password: &SecretString,
    ) -> SealedPassword {
        let aad = associated_data(registration_id, email);
        let (encapped, ciphertext) =
            hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem, _>(
                &OpModeS::Base,
                &self.public,
                INFO,
                password.expose_secret().as_bytes(),
                &aad,
                &mut hpke_rand::UnwrapErr(hpke_rand::OsRng),
            )
            // Sealing to a valid X25519 point with a working OS RNG cannot fail; the
            // point was validated when the key was loaded.
            .unwrap_or_else(|e| panic!("HPKE seal failed: {e}"));
        SealedPassword {
            key_id: self.key_id.clone(),
            encapsulated_key: encapped.to_bytes().to_vec(),
            ciphertext,
        }
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// The consumers' half: every private key still in use, by key id (current and previous
/// during a rotation).
#[derive(Clone)]
pub struct OpeningKeys {
    keys: HashMap<String, PrivateKey>,
}

impl fmt::Debug for OpeningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<_> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("OpeningKeys")
            .field("key_ids", &ids)
            .finish()
    }
}

impl OpeningKeys {
    /// Parses `kid:base64,kid2:base64` (the `SEAL_PRIVATE_KEYS` format).
    pub fn parse(spec: &str) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kid, b64) = pair.split_once(':').ok_or(KeyError::Format)?;
            let kid = kid.trim();
            validate_key_id(kid)?;
            let bytes = decode_key(b64)?;
            let key = PrivateKey::from_bytes(&bytes).map_err(|_| KeyError::Length)?;
            if keys.insert(kid.to_owned(), key).is_some() {
                return Err(KeyError::DuplicateKeyId(kid.to_owned()));
            }
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self { keys })
    }

    pub fn open(
        &self,
        sealed: &SealedPassword,
        registration_id: Uuid,
        email: &Email,
    ) -> Result<SecretString, OpenError> {
        let key = self
            .keys
            .get(&sealed.key_id)
            .ok_or_else(|| OpenError::UnknownKeyId(sealed.key_id.clone()))?;
        let encapped =
            EncappedKey::from_bytes(&sealed.encapsulated_key).map_err(|_| OpenError::Tampered)?;
        let aad = associated_data(registration_id, email);
        let plain = Zeroizing::new(
            hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
                &OpModeR::Base,
                key,
                &encapped,
                INFO,
                &sealed.ciphertext,
                &aad,
            )
            .map_err(|_| OpenError::Tampered)?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| OpenError::NotUtf8)?;
        Ok(SecretString::from(text.to_owned()))
    }
}

/// A fresh key pair as (private, public), both base64.
pub fn generate_key_pair() -> (Zeroizing<String>, String) {
    let (private, public) = Kem::gen_keypair(&mut hpke_rand::UnwrapErr(hpke_rand::OsRng));
    (
        Zeroizing::new(B64.encode(private.to_bytes())),
        B64.encode(public.to_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(kid: &str) -> (SealingKey, OpeningKeys) {
        let (private, public) = generate_key_pair();
        (
            SealingKey::from_base64(kid, &public).unwrap(),
            OpeningKeys::parse(&format!("{kid}:{}", private.as_str())).unwrap(),
        )
    }

    fn email() -> Email {
        Email::parse("jane@example.com").unwrap()
    }

    #[test]
    fn a_sealed_password_opens_with_the_matching_private_key() {
        let (seal, open) = pair("k1");
        let id = Uuid::new_v4();
        let sealed = seal.seal(id, &email(), &SecretString::from("hunter2hunter2"));
        let opened = open.open(&sealed, id, &email()).unwrap();
        assert_eq!(opened.expose_secret(), "hunter2hunter2");
    }

    #[test]
    fn the_ciphertext_does_not_contain_the_password() {
        let (seal, _) = pair("k1");
        let sealed = seal.seal(
            Uuid::new_v4(),
            &email(),
            &SecretString::from("hunter2hunter2"),
        );
        let needle = b"hunter2hunter2";
        assert!(!sealed.ciphertext.windows(needle.len()).any(|w| w == needle));
    }

    #[test]
    fn a_tampered_ciphertext_does_not_open() {
        let (seal, open) = pair("k1");
        let id = Uuid::new_v4();
        let mut sealed = seal.seal(id, &email(), &SecretString::from("hunter2hunter2"));
        sealed.ciphertext[0] ^= 1;
        assert_eq!(
            open.open(&sealed, id, &email()).unwrap_err(),
            OpenError::Tampered
        );
    }

    #[test]
    fn a_sealed_password_does_not_open_for_another_registration() {
        let (seal, open) = pair("k1");
        let sealed = seal.seal(
            Uuid::new_v4(),
            &email(),
            &SecretString::from("hunter2hunter2"),
        );
        assert_eq!(
            open.open(&sealed, Uuid::new_v4(), &email()).unwrap_err(),
            OpenError::Tampered
        );
    }

    #[test]
    fn an_unknown_key_id_is_reported() {
        let (seal, _) = pair("new");
        let (_, open) = pair("old");
        let id = Uuid::new_v4();
        let sealed = seal.seal(id, &email(), &SecretString::from("hunter2hunter2"));
        assert_eq!(
            open.open(&sealed, id, &email()).unwrap_err(),
            OpenError::UnknownKeyId("new".into())
        );
    }

    #[test]
    fn previous_keys_still_open_during_a_rotation() {
        let (old_private, old_public) = generate_key_pair();
        let (new_private, _) = generate_key_pair();
        let keys = OpeningKeys::parse(&format!(
            "2026-02:{}, 2026-01:{}",
            new_private.as_str(),
            old_private.as_str()
        ))
        .unwrap();
        let old = SealingKey::from_base64("2026-01", &old_public).unwrap();
        let id = Uuid::new_v4();
        let sealed = old.seal(id, &email(), &SecretString::from("hunter2hunter2"));
        assert!(keys.open(&sealed, id, &email()).is_ok());
    }

    #[test]
    fn malformed_key_lists_are_rejected() {
        assert_eq!(OpeningKeys::parse("").unwrap_err(), KeyError::Empty);
        assert_eq!(OpeningKeys::parse("nokid").unwrap_err(), KeyError::Format);
        assert_eq!(OpeningKeys::parse("k:!!").unwrap_err(), KeyError::Base64);
        assert_eq!(OpeningKeys::parse("k:AAAA").unwrap_err(), KeyError::Length);
        assert_eq!(
            SealingKey::from_base64("bad kid", &generate_key_pair().1).unwrap_err(),
            KeyError::KeyId
        );
    }
}
