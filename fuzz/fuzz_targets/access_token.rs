//! Access tokens as every authenticated route verifies them. Arbitrary strings are
//! refused without panicking; a genuine token with fuzzer-chosen byte changes verifies
//! only to the claims it was issued with (nobody forges other claims).
#![no_main]

use std::sync::LazyLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use registrar_api::auth::keys::{Claims, JwtKeys};
use registrar_common::domain::Role;
use secrecy::SecretString;
use uuid::Uuid;

struct Fixture {
    keys: JwtKeys,
    token: String,
    claims: Claims,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    // A fixed seed: "fuzz" repeated, 32 bytes, base64.
    let signing = SecretString::from("fuzz:ZnV6emZ1enpmdXp6ZnV6emZ1enpmdXp6ZnV6emZ1eno=".to_owned());
    let keys = JwtKeys::new(
        &signing,
        &[],
        "registrar",
        "registrar-api",
        Duration::from_secs(900),
    )
    .expect("fixture key");
    let (token, claims) = keys.issue(Uuid::from_u128(7), Role::User, Uuid::from_u128(9));
    Fixture {
        keys,
        token,
        claims,
    }
});

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Raw(&'a str),
    /// (position, replacement byte) applied to the genuine token.
    Edited(Vec<(u16, u8)>),
}

fuzz_target!(|input: Input<'_>| {
    let f = &*FIXTURE;
    match input {
        Input::Raw(token) => {
            if let Ok(claims) = f.keys.verify(token) {
                assert_eq!(claims, f.claims, "a token nobody issued verified");
            }
        }
        Input::Edited(edits) => {
            let mut bytes = f.token.clone().into_bytes();
            for (position, byte) in edits {
                let i = usize::from(position) % bytes.len();
                bytes[i] = byte;
            }
            let Ok(token) = String::from_utf8(bytes) else {
                return;
            };
            if let Ok(claims) = f.keys.verify(&token) {
                assert_eq!(claims, f.claims, "an edited token verified to other claims");
            }
        }
    }
});
