//! The sealed password envelope as the consumer opens it. Two shapes of input:
//! an envelope made of arbitrary parts (must be refused, never panic), and a genuine
//! envelope (per message or per epoch) with fuzzer-chosen bit flips in its key id,
//! encapsulated key, ciphertext, nonce, registration id or email (opens to the original
//! password only when nothing changed).
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use registrar_common::domain::email::Email;
use registrar_common::events::seal::{
    generate_key_pair, EpochPolicy, OpeningKeys, SealedPassword, Sealer, SealingKey,
};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

struct Fixture {
    sealing: SealingKey,
    epoch: Sealer,
    opening: OpeningKeys,
    email: Email,
    registration_id: Uuid,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let (private, public) = generate_key_pair();
    let sealing = SealingKey::from_base64("k1", &public).expect("generated public key");
    let policy = EpochPolicy {
        max_age: std::time::Duration::from_secs(3600),
        max_messages: u64::MAX,
    };
    Fixture {
        epoch: Sealer::new(sealing.clone(), Some(policy)),
        sealing,
        opening: OpeningKeys::parse(&format!("k1:{}", private.as_str())).expect("generated key"),
        email: Email::parse("fuzz@example.com").expect("valid email"),
        registration_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
    }
});

#[derive(Arbitrary, Debug)]
enum Input {
    Forged {
        key_id: String,
        encapsulated_key: Vec<u8>,
        ciphertext: Vec<u8>,
        nonce: Option<Vec<u8>>,
        email: String,
        registration_id: u128,
    },
    Flipped {
        per_epoch: bool,
        /// (part, position, xor mask): part 0 key id, 1 encapsulated key, 2 ciphertext,
        /// 3 registration id, 4 email, 5 nonce.
        flips: Vec<(u8, u16, u8)>,
    },
    Keys(String),
}

fn flip(bytes: &mut [u8], position: u16, mask: u8) {
    if !bytes.is_empty() {
        let i = usize::from(position) % bytes.len();
        bytes[i] ^= mask;
    }
}

fuzz_target!(|input: Input| {
    let f = &*FIXTURE;
    match input {
        Input::Forged {
            key_id,
            encapsulated_key,
            ciphertext,
            nonce,
            email,
            registration_id,
        } => {
            let Ok(email) = Email::parse(&email) else {
                return;
            };
            let sealed = SealedPassword {
                key_id,
                encapsulated_key,
                ciphertext,
                nonce,
            };
            // Without the private key's help nobody can make an envelope that opens.
            assert!(f
                .opening
                .open(&sealed, Uuid::from_u128(registration_id), &email)
                .is_err());
        }
        Input::Flipped { per_epoch, flips } => {
            let password = SecretString::from(PASSWORD.to_owned());
            let sealed = if per_epoch {
                f.epoch.seal(f.registration_id, &f.email, &password)
            } else {
                f.sealing.seal(f.registration_id, &f.email, &password)
            };
            let mut nonce = sealed.nonce.clone();
            let mut key_id = sealed.key_id.clone().into_bytes();
            let mut encapsulated_key = sealed.encapsulated_key.clone();
            let mut ciphertext = sealed.ciphertext.clone();
            let mut registration_id = f.registration_id.as_bytes().to_vec();
            let mut email = f.email.as_str().as_bytes().to_vec();
            for (part, position, mask) in flips {
                match part % 6 {
                    0 => flip(&mut key_id, position, mask),
                    1 => flip(&mut encapsulated_key, position, mask),
                    2 => flip(&mut ciphertext, position, mask),
                    3 => flip(&mut registration_id, position, mask),
                    4 => flip(&mut email, position, mask),
                    _ => flip(nonce.as_deref_mut().unwrap_or_default(), position, mask),
                }
            }
            let (Ok(key_id), Ok(email_text)) = (String::from_utf8(key_id), String::from_utf8(email))
            else {
                return;
            };
            let Ok(email) = Email::parse(&email_text) else {
                return;
            };
            let registration_id = Uuid::from_slice(&registration_id).expect("16 bytes");
            let tampered = SealedPassword {
                key_id,
                encapsulated_key,
                ciphertext,
                nonce,
            };
            let unchanged = tampered == sealed
                && registration_id == f.registration_id
                && email.as_str() == f.email.as_str();
            match f.opening.open(&tampered, registration_id, &email) {
                Ok(opened) => {
                    assert!(unchanged, "a tampered envelope opened");
                    assert_eq!(opened.expose_secret(), PASSWORD);
                }
                Err(e) => assert!(!unchanged, "a genuine envelope was refused: {e}"),
            }
        }
        Input::Keys(spec) => {
            let _ = OpeningKeys::parse(&spec);
        }
    }
});
