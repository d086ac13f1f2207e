//! Second-factor primitives: the key TOTP secrets are encrypted under at rest, TOTP
//! code checks (RFC 6238: SHA-1, 6 digits, 30 s steps, ±1 step) in constant time, the
//! enrolment's otpauth URI and QR code, and recovery codes.

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder, Secret, Totp, TotpError};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::keys::{split_key, KeyError};

/// Seconds per TOTP step.
pub const STEP_SECS: u64 = 30;
const DIGITS: usize = 6;
/// Steps accepted on either side of the current one (clock drift).
const SKEW_STEPS: i64 = 1;
/// Recovery codes handed out at enrolment.
pub const RECOVERY_CODES: usize = 10;

/// The encryption keys of TOTP secrets: the current one seals, every one opens.
pub struct MfaKeys {
    current: String,
    keys: HashMap<String, [u8; 32]>,
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the secret was sealed under key `{0}`, which is not configured")]
    UnknownKey(String),
    #[error("the sealed secret does not decrypt (wrong key or damaged)")]
    Damaged,
}

impl MfaKeys {
    /// `current`: `<kid>:<base64 32 bytes>`; `previous`: comma-separated entries of the
    /// same form, for secrets sealed before a rotation.
    pub fn new(
        current: &SecretString,
        previous: &SecretString,
    ) -> Result<Self, (&'static str, KeyError)> {
        let (kid, key) =
            split_key(current.expose_secret()).map_err(|e| ("MFA_ENCRYPTION_KEY", e))?;
        let mut keys = HashMap::new();
        for entry in previous
            .expose_secret()
            .split(',')
            .filter(|e| !e.trim().is_empty())
        {
            let (old, bytes) = split_key(entry).map_err(|e| ("MFA_DECRYPTION_KEYS", e))?;
            keys.insert(old, bytes);
        }
        keys.insert(kid.clone(), key);
        Ok(Self { current: kid, keys })
    }

    /// A new key as a `MFA_ENCRYPTION_KEY` value.
    pub fn generate(kid: &str) -> SecretString {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *key);
        SecretString::from(format!("{kid}:{}", STANDARD.encode(*key)))
    }

    pub fn current_key_id(&self) -> &str {
        &self.current
    }

    /// The recovery-code key derived from an MFA key: HMAC-SHA256(key, label), so the
    /// same secret never serves both as an encryption and as a MAC key.
    fn recovery_key(key: &[u8; 32]) -> Hmac<Sha256> {
        let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        derive.update(b"registrar mfa recovery codes v1");
        let derived = derive.finalize().into_bytes();
        <Hmac<Sha256> as Mac>::new_from_slice(&derived)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"))
    }

    /// The stored form of a recovery code under one key: a version byte, then
    /// HMAC-SHA256 over the user id and the normalised code. Without the server's key a
    /// database dump gives nothing to guess codes against offline.
    fn recovery_mac(key: &[u8; 32], user: Uuid, normal: &str) -> Vec<u8> {
        let mut mac = Self::recovery_key(key);
        mac.update(user.as_bytes());
        mac.update(normal.as_bytes());
        let mut out = vec![RECOVERY_MAC_V1];
        out.extend_from_slice(&mac.finalize().into_bytes());
        out
    }

    /// Seals a secret for `user` under the current key: `nonce || ciphertext`, the user
    /// id as associated data (a sealed secret moved to another row does not open).
    pub fn seal(&self, user: Uuid, secret: &[u8]) -> (String, Vec<u8>) {
        let key = &self.keys[&self.current];
        let cipher = XChaCha20Poly1305::new(key.into());
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: user.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        (self.current.clone(), out)
    }

    pub fn open(
        &self,
        user: Uuid,
        key_id: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| SealError::UnknownKey(key_id.to_owned()))?;
        if sealed.len() < 24 {
            return Err(SealError::Damaged);
        }
        let (nonce, ciphertext) = sealed.split_at(24);
        XChaCha20Poly1305::new(key.into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: user.as_bytes(),
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError::Damaged)
    }
}

/// A new random TOTP secret (160 bits, as RFC 4226 recommends).
pub fn new_secret() -> Zeroizing<Vec<u8>> {
    let mut secret = Zeroizing::new(vec![0u8; 20]);
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<Totp, TotpError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_skew(1)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some(issuer))
        .build()
}

/// What an authenticator app needs: the secret in base32, the otpauth URI and its QR
/// code as SVG.
pub struct Enrolment {
    pub secret_base32: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

pub fn enrolment(secret: &[u8], issuer: &str, account: &str) -> anyhow::Result<Enrolment> {
    let totp = totp(secret, issuer, account).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let uri = totp.to_url().map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let qr = qrcode::QrCode::new(uri.as_bytes())?;
    let svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(Enrolment {
        secret_base32: Secret::from(secret).to_base32(),
        otpauth_uri: uri,
        qr_svg: svg,
    })
}

/// The time step a code belongs to, if it is right for a step within ±1 of `now` and
/// newer than `after` (the last accepted step: a code is never accepted twice). Every
/// candidate step is compared, in constant time, whichever matches.
pub fn check_code(secret: &[u8], code: &str, now_unix: u64, after: i64) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let totp = totp(secret, "x", "x").ok()?;
    let current = i64::try_from(now_unix / STEP_SECS).ok()?;
    let mut matched = None;
    for step in current - SKEW_STEPS..=current + SKEW_STEPS {
        let Ok(at) = u64::try_from(step) else {
            continue;
        };
        let expected = totp.generate(at * STEP_SECS).to_string();
        let equal: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if equal && step > after && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// The code of the step containing `unix` (tests and the CLI use it).
pub fn code_at(secret: &[u8], unix: u64) -> String {
    totp(secret, "x", "x")
        .map(|t| t.generate(unix).to_string())
        .unwrap_or_default()
}

/// The first byte of a stored recovery code that is an HMAC (a legacy plain SHA-256
/// digest is 32 bytes with no such prefix).
const RECOVERY_MAC_V1: u8 = 1;

/// Ten recovery codes (`xxxxx-xxxxx`, 50 bits each) for `user` and their stored form
/// (HMAC under the current MFA key).
pub fn new_recovery_codes(keys: &MfaKeys, user: Uuid) -> (Vec<String>, Vec<Vec<u8>>) {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    let codes: Vec<String> = (0..RECOVERY_CODES)
        .map(|_| {
            let mut chars: Vec<char> = (0..10)
                .map(|_| ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char)
                .collect();
            chars.insert(5, '-');
            chars.into_iter().collect()
        })
        .collect();
    let key = &keys.keys[&keys.current];
    let digests = codes
        .iter()
        .map(|c| MfaKeys::recovery_mac(key, user, &normal_code(c)))
        .collect();
    (codes, digests)
}

/// Case and dashes do not matter in a recovery code.
fn normal_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Every stored form a presented recovery code may have: its HMAC under each configured
/// MFA key (codes issued before a key rotation keep working), and the plain SHA-256 of
/// codes issued before recovery codes were keyed (accepted until they are used up or
/// replaced by a new enrolment).
pub fn recovery_candidates(keys: &MfaKeys, user: Uuid, code: &str) -> Vec<Vec<u8>> {
    let normal = normal_code(code);
    let mut candidates: Vec<Vec<u8>> = keys
        .keys
        .values()
        .map(|key| MfaKeys::recovery_mac(key, user, &normal))
        .collect();
    candidates.push(Sha256::digest(normal.as_bytes()).to_vec());
    candidates
}

/// A recovery code looks like one (so a TOTP code is not taken for one).
pub fn looks_like_recovery_code(code: &str) -> bool {
    code.chars().filter(char::is_ascii_alphanumeric).count() == 10
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> MfaKeys {
        MfaKeys::new(&MfaKeys::generate("m1"), &SecretString::from(String::new())).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_user() {
        let keys = keys();
        let user = Uuid::now_v7();
        let (kid, sealed) = keys.seal(user, b"secret-bytes");
        assert_eq!(&**keys.open(user, &kid, &sealed).unwrap(), b"secret-bytes");
        assert!(keys.open(Uuid::now_v7(), &kid, &sealed).is_err());
        assert!(matches!(
            keys.open(user, "other", &sealed),
            Err(SealError::UnknownKey(_))
        ));
    }

    #[test]
    fn secrets_sealed_under_a_previous_key_still_open_after_a_rotation() {
        let old = MfaKeys::generate("old");
        let before = MfaKeys::new(&old, &SecretString::from(String::new())).unwrap();
        let user = Uuid::now_v7();
        let (kid, sealed) = before.seal(user, b"s");
        let after = MfaKeys::new(&MfaKeys::generate("new"), &old).unwrap();
        assert_eq!(after.current_key_id(), "new");
        assert_eq!(&**after.open(user, &kid, &sealed).unwrap(), b"s");
    }

    #[test]
    fn codes_of_the_adjacent_steps_are_accepted_and_older_ones_are_not() {
        let secret = new_secret();
        let now = 1_800_000_000u64;
        let step = (now / STEP_SECS) as i64;
        for delta in [-1i64, 0, 1] {
            let at = (now as i64 + delta * STEP_SECS as i64) as u64;
            assert_eq!(
                check_code(&secret, &code_at(&secret, at), now, 0),
                Some(step + delta)
            );
        }
        let stale = now - 2 * STEP_SECS;
        assert_eq!(check_code(&secret, &code_at(&secret, stale), now, 0), None);
        // Replay: the step was accepted already.
        assert_eq!(check_code(&secret, &code_at(&secret, now), now, step), None);
        assert_eq!(check_code(&secret, "12345", now, 0), None);
        assert_eq!(check_code(&secret, "abcdef", now, 0), None);
    }

    #[test]
    fn the_rfc_6238_test_vector_gives_its_code() {
        // RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits); 6 digits: 287082.
        assert_eq!(code_at(b"12345678901234567890", 59), "287082");
    }

    #[test]
    fn recovery_codes_are_keyed_macs_for_their_user_that_survive_a_key_rotation() {
        let current = MfaKeys::generate("m1");
        let keys = MfaKeys::new(&current, &SecretString::from(String::new())).unwrap();
        let user = Uuid::now_v7();
        let (codes, stored) = new_recovery_codes(&keys, user);
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        assert!(looks_like_recovery_code(&codes[0]));
        assert!(!looks_like_recovery_code("123456"));
        // Case and dashes do not matter.
        let typed = codes[0].to_uppercase().replace('-', "");
        assert!(recovery_candidates(&keys, user, &typed).contains(&stored[0]));
        // Not a plain digest: the stored form cannot be checked without the key.
        let plain = Sha256::digest(codes[0].replace('-', "").as_bytes()).to_vec();
        assert!(!stored.contains(&plain));
        assert_eq!(stored[0].len(), 33);
        // Bound to its user and to the server's key.
        assert!(!recovery_candidates(&keys, Uuid::now_v7(), &typed).contains(&stored[0]));
        let other =
            MfaKeys::new(&MfaKeys::generate("m1"), &SecretString::from(String::new())).unwrap();
        assert!(!recovery_candidates(&other, user, &typed).contains(&stored[0]));
        // After a rotation (the old key kept for opening), the codes still work.
        let rotated = MfaKeys::new(&MfaKeys::generate("m2"), &current).unwrap();
        assert!(recovery_candidates(&rotated, user, &typed).contains(&stored[0]));
    }

    #[test]
    fn the_enrolment_names_the_issuer_and_draws_an_svg() {
        let e = enrolment(&new_secret(), "Registrar", "ada@example.com").unwrap();
        assert!(e
            .otpauth_uri
            .starts_with("otpauth://totp/Registrar:ada%40example.com?"));
        assert!(e.otpauth_uri.contains("issuer=Registrar"));
        assert!(e.qr_svg.contains("<svg"));
    }
}
