//! A software passkey authenticator for tests and the benchmark: an ES256 (P-256) key
//! pair behind the WebAuthn JSON a browser hands to a page (`credential.toJSON()`).
//! Unlike a browser, it lets a test say which origin and RP id it claims, replay an
//! assertion and roll its signature counter back, so the relying party's checks can
//! be shown to refuse each. (The browser test drives Chromium's own virtual
//! authenticator.)

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{DerSignature, SigningKey};
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// User present, user verified, backup eligible, backup state, attested data.
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

#[derive(Clone)]
pub struct SoftAuthenticator {
    key: SigningKey,
    pub credential_id: Vec<u8>,
    /// The user handle the credential was made for (from the creation options).
    pub user_handle: Vec<u8>,
    pub counter: u32,
    /// Synced passkeys (BE and BS set), as password managers make them.
    pub synced: bool,
}

impl Default for SoftAuthenticator {
    fn default() -> Self {
        Self::new()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .unwrap_or_else(|e| panic!("not base64url: {s}: {e}"))
}

/// The smallest CBOR encoder the attestation object needs (RFC 8949).
fn cbor_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
    }
}

fn cbor_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        cbor_head(out, 0, n as u64);
    } else {
        cbor_head(out, 1, (-1 - n) as u64);
    }
}

fn cbor_bytes(out: &mut Vec<u8>, b: &[u8]) {
    cbor_head(out, 2, b.len() as u64);
    out.extend_from_slice(b);
}

fn cbor_text(out: &mut Vec<u8>, s: &str) {
    cbor_head(out, 3, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

impl SoftAuthenticator {
    pub fn new() -> Self {
        let mut seed = [0u8; 32];
        let key = loop {
            rand::rngs::OsRng.fill_bytes(&mut seed);
            if let Ok(k) = SigningKey::from_slice(&seed) {
                break k;
            }
        };
        let mut credential_id = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut credential_id);
        Self {
            key,
            credential_id,
            user_handle: Vec::new(),
            counter: 0,
            synced: true,
        }
    }

    fn flags(&self) -> u8 {
        UP | UV | if self.synced { BE | BS } else { 0 }
    }

    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        let (x, y) = (point.x().map(|x| x.to_vec()), point.y().map(|y| y.to_vec()));
        let mut out = Vec::new();
        cbor_head(&mut out, 5, 5);
        cbor_int(&mut out, 1); // kty: EC2
        cbor_int(&mut out, 2);
        cbor_int(&mut out, 3); // alg: ES256
        cbor_int(&mut out, -7);
        cbor_int(&mut out, -1); // crv: P-256
        cbor_int(&mut out, 1);
        cbor_int(&mut out, -2);
        cbor_bytes(&mut out, &x.unwrap_or_default());
        cbor_int(&mut out, -3);
        cbor_bytes(&mut out, &y.unwrap_or_default());
        out
    }

    fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
        json!({ "type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false })
            .to_string()
            .into_bytes()
    }

    /// Answers `navigator.credentials.create()` options (`{"publicKey": {...}}`, as the
    /// api sends them) from a page at `origin`, claiming `rp_id` (the options' own when
    /// `None`).
    pub fn create(&mut self, options: &Value, origin: &str, rp_id: Option<&str>) -> Value {
        let pk = &options["publicKey"];
        let challenge = pk["challenge"].as_str().expect("challenge");
        let rp_id = rp_id.unwrap_or_else(|| pk["rp"]["id"].as_str().expect("rp.id"));
        self.user_handle = unb64(pk["user"]["id"].as_str().expect("user.id"));
        let client_data = Self::client_data("webauthn.create", challenge, origin);
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags() | AT);
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0u8; 16]); // AAGUID: none
        auth_data.extend((self.credential_id.len() as u16).to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(self.cose_key());
        let mut attestation = Vec::new();
        cbor_head(&mut attestation, 5, 3);
        cbor_text(&mut attestation, "fmt");
        cbor_text(&mut attestation, "none");
        cbor_text(&mut attestation, "attStmt");
        cbor_head(&mut attestation, 5, 0);
        cbor_text(&mut attestation, "authData");
        cbor_bytes(&mut attestation, &auth_data);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "attestationObject": b64(&attestation),
                "transports": ["internal", "hybrid"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }

    /// Answers `navigator.credentials.get()` options; each assertion moves the
    /// signature counter on by one.
    pub fn get(&mut self, options: &Value, origin: &str, rp_id: Option<&str>) -> Value {
        let pk = &options["publicKey"];
        let challenge = pk["challenge"].as_str().expect("challenge");
        let rp_id = rp_id.unwrap_or_else(|| pk["rpId"].as_str().expect("rpId"));
        self.counter += 1;
        let client_data = Self::client_data("webauthn.get", challenge, origin);
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags());
        auth_data.extend(self.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data));
        let signature: DerSignature = self.key.sign(&signed);
        json!({
            "id": b64(&self.credential_id),
            "rawId": b64(&self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(&client_data),
                "authenticatorData": b64(&auth_data),
                "signature": b64(signature.as_bytes()),
                "userHandle": b64(&self.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }
}
