//! Password sealing with HPKE (RFC 9180): the api seals each password to the consumers'
//! X25519 public key; only consumers, which hold the private keys, can open it.
//!
//! Two forms, both opened by every consumer:
//!
//! - **Per message** (single-shot): DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//!   ChaCha20-Poly1305, base mode; one encapsulation (an X25519 key generation and
//!   Diffie-Hellman, about 0.1 ms) per password. No `nonce`.
//! - **Per epoch** (the default since event schema v4): the api sets up one HPKE context
//!   per epoch (export-only AEAD), derives a 32-byte key with the secret-export interface
//!   (RFC 9180 §5.3) and seals each password with XChaCha20-Poly1305 under that key and a
//!   random 24-byte `nonce`. The event carries the epoch's encapsulated key; a consumer
//!   derives the epoch key once per encapsulation and caches it. An epoch ends after a
//!   time or a number of passwords, whichever comes first (`SEAL_EPOCH_SECS`,
//!   `SEAL_EPOCH_MESSAGES`).
//!
//! In both forms the associated data binds the ciphertext to its registration
//! (`registrationId` LF `email`), so a sealed password cannot be replayed into another
//! registration. What per-epoch sealing gives up: someone who reads the api's memory
//! during an epoch can open that epoch's passwords from the topic (they could read the
//! passwords arriving in requests anyway); epochs bound that window.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hpke::aead::{ChaCha20Poly1305, ExportOnlyAead};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use hpke_rand::RngCore as _;
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
/// The `info` of an epoch's HPKE context and the exporter context of its key.
const EPOCH_INFO: &[u8] = b"registrar/v1/password-epoch";
const EPOCH_EXPORT: &[u8] = b"registrar/v1/password-epoch-key";
/// XChaCha20-Poly1305: a random nonce this long never repeats in practice.
pub const EPOCH_NONCE_LEN: usize = 24;
/// Epoch keys a consumer keeps (one per api replica and epoch still in the topic).
const EPOCH_CACHE_ENTRIES: usize = 1024;

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
    /// Of this message (per-message form) or of its epoch (per-epoch form).
    pub encapsulated_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
    /// The XChaCha20-Poly1305 nonce of the per-epoch form; `None` = per-message HPKE.
    pub nonce: Option<Vec<u8>>,
}

impl fmt::Debug for SealedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedPassword")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .field("per_epoch", &self.nonce.is_some())
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
            nonce: None,
        }
    }
}

/// How long an epoch key seals passwords.
#[derive(Debug, Clone, Copy)]
pub struct EpochPolicy {
    pub max_age: Duration,
    pub max_messages: u64,
}

/// One epoch: its encapsulated key and the key exported from its HPKE context.
struct Epoch {
    encapsulated_key: Vec<u8>,
    key: Zeroizing<[u8; 32]>,
    started: Instant,
    used: u64,
}

/// The api's sealer: per-epoch sealing (one encapsulation per epoch), or per-message
/// HPKE when no epoch policy is set.
pub struct Sealer {
    key: SealingKey,
    policy: Option<EpochPolicy>,
    epoch: Mutex<Option<Epoch>>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("key_id", &self.key.key_id)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// `policy = None` seals every password with its own HPKE encapsulation.
    pub fn new(key: SealingKey, policy: Option<EpochPolicy>) -> Self {
        Self {
            key,
            policy,
            epoch: Mutex::new(None),
        }
    }

    pub fn key_id(&self) -> &str {
        self.key.key_id()
    }

    fn new_epoch(&self) -> Epoch {
        let (encapped, context) = hpke::setup_sender::<ExportOnlyAead, HkdfSha256, Kem, _>(
            &OpModeS::Base,
            &self.key.public,
            EPOCH_INFO,
            &mut hpke_rand::UnwrapErr(hpke_rand::OsRng),
        )
        // As for single-shot sealing: the point was validated when the key was loaded.
        .unwrap_or_else(|e| panic!("HPKE setup failed: {e}"));
        let mut key = Zeroizing::new([0u8; 32]);
        context
            .export(EPOCH_EXPORT, key.as_mut_slice())
            .unwrap_or_else(|e| panic!("HPKE export of 32 bytes failed: {e}"));
        Epoch {
            encapsulated_key: encapped.to_bytes().to_vec(),
            key,
            started: Instant::now(),
            used: 0,
        }
    }

    /// The current epoch's key and encapsulation, starting a new epoch when the last one
    /// is spent.
    fn epoch_key(&self, policy: EpochPolicy) -> (Zeroizing<[u8; 32]>, Vec<u8>) {
        let mut guard = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
        let spent = guard
            .as_ref()
            .is_none_or(|e| e.used >= policy.max_messages || e.started.elapsed() >= policy.max_age);
        if spent {
            *guard = Some(self.new_epoch());
        }
        let epoch = guard.get_or_insert_with(|| self.new_epoch());
        epoch.used += 1;
        (epoch.key.clone(), epoch.encapsulated_key.clone())
    }

    pub fn seal(
        &self,
        registration_id: Uuid,
        email: &Email,
        password: &SecretString,
    ) -> SealedPassword {
        let Some(policy) = self.policy else {
            return self.key.seal(registration_id, email, password);
        };
        let (key, encapsulated_key) = self.epoch_key(policy);
        let mut nonce = [0u8; EPOCH_NONCE_LEN];
        hpke_rand::UnwrapErr(hpke_rand::OsRng).fill_bytes(&mut nonce);
        let aad = associated_data(registration_id, email);
        let ciphertext = XChaCha20Poly1305::new(key.as_slice().into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: password.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            // Only a message longer than 256 GiB fails to encrypt.
            .unwrap_or_else(|e| panic!("XChaCha20-Poly1305 seal failed: {e}"));
        SealedPassword {
            key_id: self.key.key_id.clone(),
            encapsulated_key,
            ciphertext,
            nonce: Some(nonce.to_vec()),
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

/// Epoch keys by (key id, encapsulated key).
type EpochKeys = quick_cache::sync::Cache<(String, Vec<u8>), Arc<Zeroizing<[u8; 32]>>>;

/// The consumers' half: every private key still in use, by key id (current and previous
/// during a rotation).
#[derive(Clone)]
pub struct OpeningKeys {
    keys: HashMap<String, PrivateKey>,
    /// Epoch keys by key id and encapsulation, shared by clones.
    epochs: Arc<EpochKeys>,
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
        Ok(Self {
            keys,
            epochs: Arc::new(quick_cache::sync::Cache::new(EPOCH_CACHE_ENTRIES)),
        })
    }

    /// The key of an epoch: from the cache, or derived once from its encapsulation.
    fn epoch_key(
        &self,
        key: &PrivateKey,
        sealed: &SealedPassword,
    ) -> Result<Arc<Zeroizing<[u8; 32]>>, OpenError> {
        let id = (sealed.key_id.clone(), sealed.encapsulated_key.clone());
        self.epochs.get_or_insert_with(&id, || {
            let encapped = EncappedKey::from_bytes(&sealed.encapsulated_key)
                .map_err(|_| OpenError::Tampered)?;
            let context = hpke::setup_receiver::<ExportOnlyAead, HkdfSha256, Kem>(
                &OpModeR::Base,
                key,
                &encapped,
                EPOCH_INFO,
            )
            .map_err(|_| OpenError::Tampered)?;
            let mut out = Zeroizing::new([0u8; 32]);
            context
                .export(EPOCH_EXPORT, out.as_mut_slice())
                .map_err(|_| OpenError::Tampered)?;
            Ok(Arc::new(out))
        })
    }

    /// Epoch keys derived so far and still cached (for tests and metrics).
    pub fn cached_epochs(&self) -> usize {
        self.epochs.len()
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
        let aad = associated_data(registration_id, email);
        if let Some(nonce) = &sealed.nonce {
            if nonce.len() != EPOCH_NONCE_LEN {
                return Err(OpenError::Tampered);
            }
            let epoch_key = self.epoch_key(key, sealed)?;
            let plain = Zeroizing::new(
                XChaCha20Poly1305::new(epoch_key.as_slice().into())
                    .decrypt(
                        XNonce::from_slice(nonce),
                        Payload {
                            msg: &sealed.ciphertext,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| OpenError::Tampered)?,
            );
            let text = std::str::from_utf8(&plain).map_err(|_| OpenError::NotUtf8)?;
            return Ok(SecretString::from(text.to_owned()));
        }
        let encapped =
            EncappedKey::from_bytes(&sealed.encapsulated_key).map_err(|_| OpenError::Tampered)?;
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

    fn epoch_sealer(kid: &str, policy: EpochPolicy) -> (Sealer, OpeningKeys) {
        let (seal, open) = pair(kid);
        (Sealer::new(seal, Some(policy)), open)
    }

    const LONG: EpochPolicy = EpochPolicy {
        max_age: Duration::from_secs(3600),
        max_messages: 1_000_000,
    };

    #[test]
    fn passwords_sealed_in_one_epoch_share_one_encapsulation_and_open() {
        let (sealer, open) = epoch_sealer("k1", LONG);
        let sealed: Vec<_> = (0..5)
            .map(|i| {
                let id = Uuid::new_v4();
                let pw = SecretString::from(format!("password-number-{i}"));
                (id, sealer.seal(id, &email(), &pw))
            })
            .collect();
        assert!(sealed
            .iter()
            .all(|(_, s)| s.encapsulated_key == sealed[0].1.encapsulated_key));
        let nonces: std::collections::HashSet<_> =
            sealed.iter().map(|(_, s)| s.nonce.clone()).collect();
        assert_eq!(nonces.len(), 5, "every password gets its own nonce");
        for (i, (id, s)) in sealed.iter().enumerate() {
            assert_eq!(
                open.open(s, *id, &email()).unwrap().expose_secret(),
                format!("password-number-{i}")
            );
        }
        assert_eq!(
            open.cached_epochs(),
            1,
            "one derivation for the whole epoch"
        );
    }

    #[test]
    fn an_epoch_ends_after_its_message_budget() {
        let (sealer, open) = epoch_sealer(
            "k1",
            EpochPolicy {
                max_messages: 2,
                ..LONG
            },
        );
        let pw = SecretString::from("hunter2hunter2");
        let ids: Vec<_> = (0..3).map(|_| Uuid::new_v4()).collect();
        let sealed: Vec<_> = ids
            .iter()
            .map(|id| sealer.seal(*id, &email(), &pw))
            .collect();
        assert_eq!(sealed[0].encapsulated_key, sealed[1].encapsulated_key);
        assert_ne!(sealed[1].encapsulated_key, sealed[2].encapsulated_key);
        for (id, s) in ids.iter().zip(&sealed) {
            assert!(open.open(s, *id, &email()).is_ok());
        }
        assert_eq!(open.cached_epochs(), 2);
    }

    #[test]
    fn an_epoch_ends_after_its_time() {
        let (sealer, _) = epoch_sealer(
            "k1",
            EpochPolicy {
                max_age: Duration::ZERO,
                ..LONG
            },
        );
        let pw = SecretString::from("hunter2hunter2");
        let a = sealer.seal(Uuid::new_v4(), &email(), &pw);
        let b = sealer.seal(Uuid::new_v4(), &email(), &pw);
        assert_ne!(a.encapsulated_key, b.encapsulated_key);
    }

    #[test]
    fn an_epoch_sealed_password_is_bound_to_its_registration_and_nonce() {
        let (sealer, open) = epoch_sealer("k1", LONG);
        let id = Uuid::new_v4();
        let sealed = sealer.seal(id, &email(), &SecretString::from("hunter2hunter2"));
        let other = Email::parse("john@example.com").unwrap();
        assert_eq!(
            open.open(&sealed, Uuid::new_v4(), &email()).unwrap_err(),
            OpenError::Tampered
        );
        assert_eq!(
            open.open(&sealed, id, &other).unwrap_err(),
            OpenError::Tampered
        );
        let mut flipped = sealed.clone();
        if let Some(n) = flipped.nonce.as_mut() {
            n[0] ^= 1;
        }
        assert_eq!(
            open.open(&flipped, id, &email()).unwrap_err(),
            OpenError::Tampered
        );
        let mut short = sealed.clone();
        short.nonce = Some(vec![0; 12]);
        assert_eq!(
            open.open(&short, id, &email()).unwrap_err(),
            OpenError::Tampered
        );
        // Read as per-message HPKE (an old consumer ignoring the nonce), it does not open.
        let mut stripped = sealed;
        stripped.nonce = None;
        assert_eq!(
            open.open(&stripped, id, &email()).unwrap_err(),
            OpenError::Tampered
        );
    }

    #[test]
    fn an_epoch_sealed_password_does_not_open_with_another_private_key() {
        let (sealer, _) = epoch_sealer("k1", LONG);
        let (_, stranger) = pair("k1");
        let id = Uuid::new_v4();
        let sealed = sealer.seal(id, &email(), &SecretString::from("hunter2hunter2"));
        assert_eq!(
            stranger.open(&sealed, id, &email()).unwrap_err(),
            OpenError::Tampered
        );
    }

    #[test]
    fn without_a_policy_the_sealer_seals_each_password_on_its_own() {
        let (seal, open) = pair("k1");
        let sealer = Sealer::new(seal, None);
        let id = Uuid::new_v4();
        let pw = SecretString::from("hunter2hunter2");
        let a = sealer.seal(id, &email(), &pw);
        let b = sealer.seal(id, &email(), &pw);
        assert!(a.nonce.is_none());
        assert_ne!(a.encapsulated_key, b.encapsulated_key);
        assert!(open.open(&a, id, &email()).is_ok());
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
