//! The `api` binary's command line: configuration errors and `keygen`.

use std::process::Command;

fn api() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_api"));
    c.env_clear()
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    c
}

#[test]
fn a_missing_sealing_key_stops_serve_with_status_2_naming_the_variable() {
    let out = api().arg("serve").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SEAL_KEY_ID"), "{stderr}");
}

#[test]
fn a_malformed_public_key_is_named_without_echoing_its_value() {
    let out = api()
        .arg("serve")
        .env("SEAL_KEY_ID", "k1")
        .env("SEAL_PUBLIC_KEY", "not-base64-secret-value!")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("SEAL_PUBLIC_KEY"), "{stderr}");
    assert!(!stderr.contains("not-base64-secret-value"), "{stderr}");
}

#[test]
fn a_malformed_port_stops_the_binary_with_status_2() {
    let out = api().arg("serve").env("PORT", "eighty").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PORT"));
}

#[test]
fn keygen_prints_env_lines_that_the_binaries_accept() {
    let out = api()
        .args(["keygen", "--key-id", "k2026"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} missing in {text}"))
            .to_owned()
    };
    assert_eq!(value("SEAL_KEY_ID"), "k2026");
    common::events::seal::SealingKey::from_base64("k2026", &value("SEAL_PUBLIC_KEY")).unwrap();
    common::events::seal::OpeningKeys::parse(&value("SEAL_PRIVATE_KEYS")).unwrap();
    let jwt = value("JWT_SIGNING_KEY");
    assert!(jwt.starts_with("jwt-k2026:"), "{jwt}");
    registrar_api::auth::keys::JwtKeys::new(
        &secrecy::SecretString::from(jwt),
        &[],
        "registrar",
        "registrar",
        std::time::Duration::from_secs(900),
    )
    .unwrap();
}

fn sealed_env(c: &mut Command) -> &mut Command {
    use common::events::signature::{generate, Purpose};
    let (_, public) = common::events::seal::generate_key_pair();
    let (registration, _) = generate(Purpose::Registration, "rec1");
    let (import, _) = generate(Purpose::Import, "imp1");
    c.env("SEAL_KEY_ID", "k1")
        .env("SEAL_PUBLIC_KEY", public)
        .env("RECORD_SIGNING_KEY", registration.as_str())
        .env("IMPORT_SIGNING_KEY", import.as_str())
}

#[test]
fn a_missing_jwt_signing_key_stops_serve_with_status_2_naming_the_variable() {
    let out = sealed_env(api().arg("serve")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("JWT_SIGNING_KEY"), "{stderr}");
}

#[test]
fn a_malformed_jwt_signing_key_is_named_without_echoing_its_value() {
    let out = sealed_env(api().arg("serve"))
        .env("JWT_SIGNING_KEY", "k1:not-a-key-secret-value")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("JWT_SIGNING_KEY"), "{stderr}");
    assert!(!stderr.contains("not-a-key-secret-value"), "{stderr}");
}

#[test]
fn create_admin_takes_no_password_argument() {
    let out = api()
        .args([
            "create-admin",
            "--email",
            "a@b.io",
            "--password",
            "hunter22hunter",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password"));
}
