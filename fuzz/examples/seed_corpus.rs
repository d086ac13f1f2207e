//! Writes the seed inputs of every fuzz target into `fuzz/corpus/<target>/` (kept in the
//! repository; libFuzzer adds what it finds beside them):
//! `cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus`.

use std::fs;
use std::path::{Path, PathBuf};

use registrar_common::events::registration::{
    compat, Credential, RegistrationEvent, HISTORIC_SCHEMAS,
};
use registrar_common::events::seal::SealedPassword;
use registrar_common::store::users::ListCursor;
use uuid::Uuid;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = dir.join(target);
    fs::create_dir_all(&dir).expect("corpus directory");
    fs::write(dir.join(name), bytes).expect("seed file");
}

fn event(credential: Credential, request_id: Option<String>) -> RegistrationEvent {
    RegistrationEvent {
        registration_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
        email: "jane.doe@example.com".into(),
        first_name: Some("Jane".into()),
        last_name: Some("Doe".into()),
        gender: Some("female".into()),
        sex: Some("female".into()),
        occupation: Some("Engineer".into()),
        credential,
        submitted_at_ms: 1_700_000_000_000,
        request_id,
        username: Some("jane.doe".into()),
        date_of_birth: Some("1990-04-01".into()),
        role: None,
        created_at_ms: None,
        email_verified: false,
        import: None,
        provisioning: None,
        identity: None,
    }
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let sealed = Credential::Sealed(SealedPassword {
        key_id: "k1".into(),
        encapsulated_key: vec![7; 32],
        ciphertext: vec![9; 44],
        nonce: None,
    });
    let epoch_sealed = Credential::Sealed(SealedPassword {
        key_id: "k1".into(),
        encapsulated_key: vec![7; 32],
        ciphertext: vec![9; 44],
        nonce: Some(vec![5; 24]),
    });
    let hashed = Credential::PasswordHash("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
    let sealed_event = event(sealed, Some("req-1".into()));
    let epoch_event = event(epoch_sealed, Some("req-2".into()));
    let hashed_event = event(hashed, None);
    for (name, e) in [
        ("sealed", &sealed_event),
        ("epoch-sealed", &epoch_event),
        ("hash", &hashed_event),
    ] {
        write(&dir, "avro_registration_event", &format!("current-{name}"), &e.encode().expect("encode"));
        for index in 0..HISTORIC_SCHEMAS.len() {
            write(
                &dir,
                "avro_registration_event",
                &format!("historic-{index}-{name}"),
                &compat::encode_with_historic(e, index),
            );
        }
    }

    let cursor = ListCursor {
        created_at: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).expect("time"),
        id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002),
    };
    write(&dir, "list_cursor", "issued", cursor.encode().as_bytes());

    let bodies = [
        r#"{"firstName":"John","lastName":"Doe","email":"John.Doe@Example.com","password":"correct horse battery","gender":"male","sex":"male","occupation":"Software Engineer"}"#,
        r#"{"firstName":"Zoë","lastName":"Ñúñez","email":"  zoe@example.org ","password":"a much longer passphrase with ünïcode","gender":"non-binary","sex":"intersex","occupation":"Teacher"}"#,
        r#"{"firstName":"J","lastName":"","email":"not-an-email","password":"short","gender":"other","sex":"x","occupation":"a"}"#,
        r#"{"firstName":"Ada","lastName":"Lovelace","email":"ada@example.com","password":"correct horse battery","gender":"female","username":"Ada.L","dateOfBirth":"1990-12-10"}"#,
        r#"{"firstName":null,"unknown":1}"#,
    ];
    for (i, body) in bodies.iter().enumerate() {
        write(&dir, "registration_body", &format!("body-{i}"), body.as_bytes());
    }
    println!("seeds written under {}", dir.display());
}
