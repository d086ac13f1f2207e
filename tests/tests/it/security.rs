//! Email verification, password reset, TOTP two-factor login and session management,
//! walked as a user would: real PostgreSQL, Redis, broker and MailDev (its REST API is
//! the user's mailbox).

use std::time::Duration;

use base64::Engine;
use registrar_tests::{
    link_token, logs, mails_to, wait_for_mails, Account, TestApp, TestOptions, FRONTEND_URL,
};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest;

const MAIL_WAIT: Duration = Duration::from_secs(30);

async fn post(app: &TestApp, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let (status, _, body) = app.call(Method::POST, path, token, Some(body)).await;
    (status, body)
}

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let (status, _, body) = app.call(Method::GET, path, Some(token), None).await;
    (status, body)
}

/// The claims of a JWT, unverified (the api verified it).
pub(crate) fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn sha256(s: &str) -> Vec<u8> {
    sha2::Sha256::digest(s.as_bytes()).to_vec()
}

/// RFC 4648 base32 (no padding), as the enrolment shows the secret.
fn base32_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut bits, mut value, mut out) = (0u32, 0u32, Vec::new());
    for c in s.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c).unwrap() as u32;
        value = (value << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    out
}

pub(crate) fn now_unix() -> u64 {
    chrono::Utc::now().timestamp() as u64
}

pub(crate) fn code_at(secret: &[u8], unix: u64) -> String {
    registrar_api::auth::mfa::code_at(secret, unix)
}

#[tokio::test]
async fn a_completed_registration_mails_a_link_that_verifies_the_email_once() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let (_, me) = get(&app, "/api/auth/me", &account.access).await;
    assert_eq!(me["data"]["emailVerified"], false, "{me}");
    assert_eq!(claims(&account.access)["email_verified"], false);

    let mails = wait_for_mails(&account.email, "Verify your email", 1, MAIL_WAIT).await;
    let text = mails[0]["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("{FRONTEND_URL}/verify-email?token=")),
        "{text}"
    );
    assert!(mails[0]["html"].as_str().unwrap().contains("<a href="));
    let token = link_token(&mails[0]);
    // Only the digest is stored; the outbox row names no token.
    let pg = app.pg().await;
    let stored: i64 = pg
        .query_one(
            "SELECT count(*) FROM account_tokens WHERE token_hash = $1 AND purpose = 'verify_email'",
            &[&sha256(&token)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 1);
    let outbox: String = pg
        .query_one(
            "SELECT string_agg(row_to_json(m)::text, ' ') FROM mail_outbox m",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!outbox.contains(&token));

    let (status, body) = post(
        &app,
        "/api/auth/verify-email",
        None,
        &json!({ "token": token }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["emailVerified"], true);
    assert_eq!(body["email"], account.email.as_str());
    let (_, me) = get(&app, "/api/auth/me", &account.access).await;
    assert_eq!(me["data"]["emailVerified"], true);
    let again = app.log_in_again(account).await;
    assert_eq!(claims(&again.access)["email_verified"], true);

    let (status, body) = post(
        &app,
        "/api/auth/verify-email",
        None,
        &json!({ "token": token }),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_OR_EXPIRED_TOKEN"))
    );
    let (status, body) = post(
        &app,
        "/api/auth/verify-email",
        None,
        &json!({ "token": "nope" }),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_OR_EXPIRED_TOKEN"))
    );
    let (status, body) = post(&app, "/api/auth/verify-email", None, &json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    assert!(
        !logs::captured().contains(&token),
        "a verification token reached the logs"
    );
}

#[tokio::test]
async fn logins_wait_for_a_verified_email_when_the_setting_requires_it() {
    let app = TestApp::spawn_with(TestOptions {
        api_args: vec!["--require-verified-email".into(), "true".into()],
        ..Default::default()
    })
    .await;
    let (email, password, body) = registrar_tests::registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", MAIL_WAIT).await;

    let (status, body) = app.login(&email, &password).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("EMAIL_NOT_VERIFIED")),
        "{body}"
    );
    // A wrong password learns nothing about the address's state.
    let (status, body) = app.login(&email, "wrong password 123").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("INVALID_CREDENTIALS"))
    );

    // Resend: a second link; either verifies.
    let (status, _) = post(
        &app,
        "/api/auth/verify-email/resend",
        None,
        &json!({ "email": email }),
    )
    .await;
    assert_eq!(status, 202);
    let mails = wait_for_mails(&email, "Verify your email", 2, MAIL_WAIT).await;
    let (status, _) = post(
        &app,
        "/api/auth/verify-email",
        None,
        &json!({ "token": link_token(&mails[1]) }),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = app.login(&email, &password).await;
    assert_eq!(status, 200, "{body}");
    // The first link was used up with the second.
    let (status, _) = post(
        &app,
        "/api/auth/verify-email",
        None,
        &json!({ "token": link_token(&mails[0]) }),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn an_email_change_waits_for_the_new_address_and_tells_the_old_one() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let new_email = format!("new-{}", account.email);
    let (status, _, body) = patch_own(
        &app,
        &account,
        json!({ "email": new_email, "currentPassword": account.password }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["email"], account.email.as_str());
    assert_eq!(body["data"]["pendingEmail"], new_email.as_str());

    let notice = wait_for_mails(&account.email, "being changed", 1, MAIL_WAIT).await;
    assert!(!notice[0]["text"].as_str().unwrap().contains("token="));
    let confirm = wait_for_mails(&new_email, "Confirm your new email", 1, MAIL_WAIT).await;
    // Until verified, the old address logs in and the new one does not.
    assert_eq!(app.login(&new_email, &account.password).await.0, 401);
    let (status, body) = post(
        &app,
        "/api/auth/verify-email",
        None,
        &json!({ "token": link_token(&confirm[0]) }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], new_email.as_str());
    let (status, _) = app.login(&new_email, &account.password).await;
    assert_eq!(status, 200);
    assert_eq!(app.login(&account.email, &account.password).await.0, 401);
    let (_, me) = get(&app, "/api/auth/me", &account.access).await;
    assert_eq!(me["data"]["email"], new_email.as_str());
    assert_eq!(me["data"]["emailVerified"], true);
    assert!(me["data"].get("pendingEmail").is_none(), "{me}");
}

#[tokio::test]
async fn a_password_reset_request_answers_alike_for_known_and_unknown_emails() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let unknown = format!("nobody-{}", account.email);
    let (s1, h1, b1) = app
        .call(
            Method::POST,
            "/api/auth/password-reset",
            None,
            Some(&json!({ "email": account.email })),
        )
        .await;
    let (s2, h2, b2) = app
        .call(
            Method::POST,
            "/api/auth/password-reset",
            None,
            Some(&json!({ "email": unknown })),
        )
        .await;
    assert_eq!((s1, &b1), (s2, &b2), "{b1} vs {b2}");
    assert_eq!(s1, 202);
    let names = |h: &reqwest::header::HeaderMap| {
        let mut n: Vec<String> = h
            .keys()
            .map(|k| k.to_string())
            .filter(|k| k != "date" && k != "x-request-id" && k != "content-length")
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&h1), names(&h2));
    wait_for_mails(&account.email, "Reset your password", 1, MAIL_WAIT).await;
    assert!(mails_to(&unknown).await.is_empty());
    let queued: i64 = app
        .pg()
        .await
        .query_one(
            "SELECT count(*) FROM mail_outbox WHERE recipient = $1",
            &[&unknown],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(queued, 0);
    let (status, body) = post(
        &app,
        "/api/auth/password-reset",
        None,
        &json!({ "email": "not-an-email" }),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
}

#[tokio::test]
async fn a_reset_link_sets_the_password_once_ends_every_session_and_expires() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let (status, _) = post(
        &app,
        "/api/auth/password-reset",
        None,
        &json!({ "email": account.email }),
    )
    .await;
    assert_eq!(status, 202);
    let mail = wait_for_mails(&account.email, "Reset your password", 1, MAIL_WAIT).await;
    let text = mail[0]["text"].as_str().unwrap();
    assert!(
        text.contains(&format!("{FRONTEND_URL}/reset-password?token=")),
        "{text}"
    );
    assert!(text.contains("30 minutes"));
    let token = link_token(&mail[0]);

    // The policy applies; a refused password leaves the token usable.
    let (status, body) = confirm_reset(&app, &token, "password").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );
    let new_password = "a brand new passphrase 42";
    let (status, body) = post(
        &app,
        "/api/auth/password-reset/confirm",
        None,
        &json!({ "token": token, "newPassword": new_password }),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Every session ended: refresh token and access token.
    let (status, _) = post(
        &app,
        "/api/auth/refresh",
        None,
        &json!({ "refreshToken": account.refresh }),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(get(&app, "/api/auth/me", &account.access).await.0, 401);
    assert_eq!(app.login(&account.email, &account.password).await.0, 401);
    assert_eq!(app.login(&account.email, new_password).await.0, 200);
    // Used once.
    let (status, body) = confirm_reset(&app, &token, "yet another passphrase 7").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_OR_EXPIRED_TOKEN"))
    );
    wait_for_mails(&account.email, "Your password was changed", 1, MAIL_WAIT).await;
    let actions: Vec<String> = app
        .pg()
        .await
        .query(
            "SELECT action FROM user_audit_log WHERE user_id = $1",
            &[&account.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        actions.contains(&"user.password_reset".to_owned()),
        "{actions:?}"
    );

    // An expired link is refused.
    post(
        &app,
        "/api/auth/password-reset",
        None,
        &json!({ "email": account.email }),
    )
    .await;
    let mails = wait_for_mails(&account.email, "Reset your password", 2, MAIL_WAIT).await;
    let late = link_token(&mails[1]);
    app.pg()
        .await
        .execute(
            "UPDATE account_tokens SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
            &[&sha256(&late)],
        )
        .await
        .unwrap();
    let (status, body) = confirm_reset(&app, late, "yet another passphrase 7").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_OR_EXPIRED_TOKEN"))
    );
    assert!(
        !logs::captured().contains(&token),
        "a reset token reached the logs"
    );
}

#[tokio::test]
async fn reset_requests_beyond_the_per_email_limit_are_slowed_into_one_mail_not_refused() {
    let app = TestApp::spawn_with(TestOptions {
        api_args: vec!["--mail-requests-per-email".into(), "2".into()],
        ..Default::default()
    })
    .await;
    let account = app.register_and_login().await;
    // Someone keeps asking for the owner's reset: every request gets the same 202 (no
    // lockout for the owner); the first two mail at once ...
    let ask = || async {
        let (status, body) = post(
            &app,
            "/api/auth/password-reset",
            None,
            &json!({ "email": account.email }),
        )
        .await;
        assert_eq!(status, 202, "{body}");
    };
    ask().await;
    ask().await;
    wait_for_mails(&account.email, "Reset your password", 2, MAIL_WAIT).await;
    for _ in 0..4 {
        ask().await;
    }
    // ... and the other four are folded into one mail that waits its turn.
    let pg = app.pg().await;
    let waiting: Vec<(i64, bool)> = pg
        .query(
            "SELECT count(*), bool_and(next_attempt_at > now() + interval '30 seconds')
             FROM mail_outbox WHERE user_id = $1 AND kind = 'password_reset' AND sent_at IS NULL",
            &[&account.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get::<_, Option<bool>>(1).unwrap_or(false)))
        .collect();
    assert_eq!(waiting, vec![(1, true)], "one slowed mail waits");
    // When its time comes, the owner gets a link that works.
    pg.execute(
        "UPDATE mail_outbox SET next_attempt_at = now() WHERE user_id = $1 AND sent_at IS NULL",
        &[&account.id],
    )
    .await
    .unwrap();
    let mails = wait_for_mails(&account.email, "Reset your password", 3, MAIL_WAIT).await;
    let (status, body) =
        confirm_reset(&app, link_token(&mails[2]), "the owner got through 42").await;
    assert_eq!(status, 200, "{body}");
    // The limit keys name no address.
    let keys = app.redis_keys().await;
    let limits: Vec<&String> = keys.iter().filter(|k| k.contains("mail-limit")).collect();
    assert!(!limits.is_empty());
    assert!(
        limits.iter().all(|k| !k.contains(&account.email)),
        "{limits:?}"
    );
}

#[tokio::test]
async fn reset_requests_from_one_client_address_are_limited_whatever_the_email() {
    let app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        api_args: vec!["--mail-requests-per-ip".into(), "3".into()],
        ..Default::default()
    })
    .await;
    for i in 0..3 {
        let (status, _) = post(
            &app,
            "/api/auth/password-reset",
            None,
            &json!({ "email": format!("someone.{i}@example.com") }),
        )
        .await;
        assert_eq!(status, 202);
    }
    let (status, headers, body) = app
        .call(
            Method::POST,
            "/api/auth/password-reset",
            None,
            Some(&json!({ "email": "someone.else@example.com" })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("RATE_LIMITED")),
        "{body}"
    );
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn email_change_mails_share_the_new_addresss_per_recipient_limit() {
    let app = TestApp::spawn_with(TestOptions {
        api_args: vec!["--mail-requests-per-email".into(), "2".into()],
        ..Default::default()
    })
    .await;
    let account = app.register_and_login().await;
    // A stranger's address has had its share of mails this hour (reset requests for it
    // count, account or not).
    let victim = format!("victim.{}", account.email);
    for _ in 0..2 {
        let (status, _) = post(
            &app,
            "/api/auth/password-reset",
            None,
            &json!({ "email": victim }),
        )
        .await;
        assert_eq!(status, 202);
    }
    // An email change to it is accepted (pending) but its verification mail is slowed.
    let (status, _, body) = patch_own(
        &app,
        &account,
        json!({ "email": victim, "currentPassword": account.password }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let slowed: bool = app
        .pg()
        .await
        .query_one(
            "SELECT bool_and(next_attempt_at > now() + interval '30 seconds') FROM mail_outbox
             WHERE user_id = $1 AND kind = 'verify_new_email' AND recipient = $2",
            &[&account.id, &victim],
        )
        .await
        .unwrap()
        .get::<_, Option<bool>>(0)
        .unwrap_or(false);
    assert!(slowed, "the verification mail to the new address waits");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        mails_to(&victim).await.is_empty(),
        "nothing reached the new address yet"
    );
}

/// The account changes its own profile (`PATCH /api/users/{id}` with its token).
async fn patch_own(
    app: &TestApp,
    account: &Account,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    app.call(
        Method::PATCH,
        &format!("/api/users/{}", account.id),
        Some(&account.access),
        Some(&body),
    )
    .await
}

/// Sets a new password with a reset link's token.
async fn confirm_reset(app: &TestApp, token: impl AsRef<str>, password: &str) -> (u16, Value) {
    post(
        app,
        "/api/auth/password-reset/confirm",
        None,
        &json!({ "token": token.as_ref(), "newPassword": password }),
    )
    .await
}

/// Enrols TOTP for the account; returns the secret and the recovery codes.
pub(crate) async fn enable_totp(app: &TestApp, account: &Account) -> (Vec<u8>, Vec<String>) {
    let access = account.access.as_str();
    let (status, enrol) = post(
        app,
        "/api/auth/mfa/totp/enroll",
        Some(access),
        &json!({ "password": account.password }),
    )
    .await;
    assert_eq!(status, 200, "{enrol}");
    assert!(enrol["otpauthUri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/Registrar:"));
    assert!(enrol["qrSvg"].as_str().unwrap().contains("<svg"));
    let secret = base32_decode(enrol["secret"].as_str().unwrap());
    let (status, body) = post(
        app,
        "/api/auth/mfa/totp/confirm",
        Some(access),
        &json!({ "code": "000000" }),
    )
    .await;
    let wrong_is_refused = status == 401 && body["error"]["code"] == "INVALID_MFA_CODE";
    // (000000 may, once in a million, be the right code.)
    assert!(wrong_is_refused || status == 200, "{body}");
    let (status, body) = post(
        app,
        "/api/auth/mfa/totp/confirm",
        Some(access),
        &json!({ "code": code_at(&secret, now_unix()) }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let codes: Vec<String> = body["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn challenge(app: &TestApp, email: &str, password: &str) -> String {
    let (status, body) = app.login(email, password).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mfaRequired"], true, "{body}");
    assert!(body.get("accessToken").is_none());
    body["challenge"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn with_totp_a_login_needs_a_code_and_each_code_works_once() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let (secret, recovery) = enable_totp(&app, &account).await;
    let (_, status) = get(&app, "/api/auth/mfa", &account.access).await;
    assert_eq!(
        (
            status["enabled"].clone(),
            status["recoveryCodesLeft"].clone()
        ),
        (json!(true), json!(10))
    );

    // The secret is sealed at rest; recovery codes are MACs under a server key: no row
    // is the plain digest of a code, which a dump alone would let one test guesses on.
    let pg = app.pg().await;
    let sealed: Vec<u8> = pg
        .query_one(
            "SELECT secret_sealed FROM user_mfa WHERE user_id = $1",
            &[&account.id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!sealed.windows(secret.len()).any(|w| w == secret.as_slice()));
    let stored: Vec<Vec<u8>> = pg
        .query(
            "SELECT code_hash FROM mfa_recovery_codes WHERE user_id = $1",
            &[&account.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored.len(), 10);
    for code in &recovery {
        let plain = sha256(&code.replace('-', ""));
        assert!(
            !stored.contains(&plain),
            "a recovery code is stored as its plain digest"
        );
    }

    // Password right: a challenge, no tokens. A wrong code is refused; the next step's
    // code is accepted (the current one was used by the confirmation).
    let ch = challenge(&app, &account.email, &account.password).await;
    let (status, body) = post(
        &app,
        "/api/auth/mfa/verify",
        None,
        &json!({ "challenge": ch, "code": "12345" }),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("INVALID_MFA_CODE"))
    );
    let next = code_at(&secret, now_unix() + 30);
    let (status, tokens) = post(
        &app,
        "/api/auth/mfa/verify",
        None,
        &json!({ "challenge": ch, "code": next }),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["accessToken"].as_str().is_some());
    // The challenge is spent; the same code never works twice.
    let (status, _) = post(
        &app,
        "/api/auth/mfa/verify",
        None,
        &json!({ "challenge": ch, "code": next }),
    )
    .await;
    assert_eq!(status, 401);
    let ch = challenge(&app, &account.email, &account.password).await;
    let (status, body) = post(
        &app,
        "/api/auth/mfa/verify",
        None,
        &json!({ "challenge": ch, "code": next }),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("INVALID_MFA_CODE"))
    );

    // A recovery code works once, in any case.
    let (status, body) = post(
        &app,
        "/api/auth/mfa/verify",
        None,
        &json!({ "challenge": ch, "code": recovery[3].to_uppercase() }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let ch = challenge(&app, &account.email, &account.password).await;
    let (status, _) = post(
        &app,
        "/api/auth/mfa/verify",
        None,
        &json!({ "challenge": ch, "code": recovery[3] }),
    )
    .await;
    assert_eq!(status, 401);
    let (_, status) = get(&app, "/api/auth/mfa", &account.access).await;
    assert_eq!(status["recoveryCodesLeft"], 9);
    let log = logs::captured();
    assert!(
        !log.contains(&recovery[0]) && !log.contains(&ch),
        "an MFA secret reached the logs"
    );
}

#[tokio::test]
async fn fifty_parallel_wrong_totp_codes_lock_the_account_like_wrong_passwords() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let (secret, _) = enable_totp(&app, &account).await;
    let ch = challenge(&app, &account.email, &account.password).await;
    let right = code_at(&secret, now_unix() + 30);
    let wrong = if right == "111111" {
        "222222"
    } else {
        "111111"
    };
    let body = json!({ "challenge": ch, "code": wrong });
    let answers =
        futures::future::join_all((0..50).map(|_| post(&app, "/api/auth/mfa/verify", None, &body)))
            .await;
    let refused = answers
        .iter()
        .filter(|(s, b)| *s == 401 && b["error"]["code"] == "INVALID_MFA_CODE")
        .count();
    let locked = answers
        .iter()
        .filter(|(s, b)| *s == 429 && b["error"]["code"] == "ACCOUNT_LOCKED")
        .count();
    assert_eq!(refused + locked, 50, "{answers:?}");
    // The login's password check counted too: at most 4 codes were checked.
    assert!(refused <= 4, "{refused} codes were checked");
    // Locked: the right code and the right password are refused alike.
    let (status, _) = post(
        &app,
        "/api/auth/mfa/verify",
        None,
        &json!({ "challenge": ch, "code": right }),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(app.login(&account.email, &account.password).await.0, 429);
}

#[tokio::test]
async fn disabling_totp_needs_the_password_and_a_code_and_an_admin_can_reset_it() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let (secret, recovery) = enable_totp(&app, &account).await;
    let (status, body) = post(
        &app,
        "/api/auth/mfa/totp/disable",
        Some(&account.access),
        &json!({ "password": "wrong password 9", "code": recovery[0] }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(
        &app,
        "/api/auth/mfa/totp/disable",
        Some(&account.access),
        &json!({ "password": account.password, "code": "999999" }),
    )
    .await;
    let code = body["error"]["code"].as_str();
    assert!(
        status == 401 && code == Some("INVALID_MFA_CODE")
            || code_at(&secret, now_unix()) == "999999"
    );
    let (status, body) = post(
        &app,
        "/api/auth/mfa/totp/disable",
        Some(&account.access),
        &json!({ "password": account.password, "code": recovery[0] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(app.login(&account.email, &account.password).await.1["accessToken"].is_string());

    // Enabled again, then reset by an admin (audited); a user may not reset it.
    let (_, _) = enable_totp(&app, &account).await;
    let path = format!("/api/users/{}/mfa", account.id);
    let (status, _, _) = app
        .call(Method::DELETE, &path, Some(&account.access), None)
        .await;
    assert_eq!(status, 403);
    let admin = app.account_with_role("admin").await;
    let (status, _, body) = app
        .call(Method::DELETE, &path, Some(&admin.access), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = app
        .call(Method::DELETE, &path, Some(&admin.access), None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("MFA_NOT_ENABLED"))
    );
    assert!(app.login(&account.email, &account.password).await.1["accessToken"].is_string());
    let actor: uuid::Uuid = app
        .pg()
        .await
        .query_one(
            "SELECT actor_id FROM user_audit_log WHERE user_id = $1 AND action = 'auth.mfa_reset'",
            &[&account.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(actor, admin.id);
}

#[tokio::test]
async fn the_session_list_shows_each_login_and_ending_one_kills_its_tokens() {
    let app = TestApp::spawn().await;
    let first = app.register_and_login().await;
    // A second login from another "device".
    let response = app
        .http
        .post(app.url("/api/auth/login"))
        .header("user-agent", "registrar-test-phone/1.0")
        .json(&json!({ "email": first.email, "password": first.password }))
        .send()
        .await
        .unwrap();
    let tokens: Value = response.json().await.unwrap();
    let phone_access = tokens["accessToken"].as_str().unwrap().to_owned();
    let phone_refresh = tokens["refreshToken"].as_str().unwrap().to_owned();

    let (status, list) = get(&app, "/api/auth/sessions", &first.access).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["count"], 2, "{list}");
    let sessions = list["data"].as_array().unwrap();
    let phone = sessions
        .iter()
        .find(|s| s["userAgent"] == "registrar-test-phone/1.0")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(phone["current"], false);
    assert_eq!(phone["ip"], "127.0.0.1");
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    let phone_id = phone["id"].as_str().unwrap().to_owned();

    let (status, _, body) = app
        .call(
            Method::DELETE,
            &format!("/api/auth/sessions/{phone_id}"),
            Some(&first.access),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(&app, "/api/auth/me", &phone_access).await.0, 401);
    let (status, _) = post(
        &app,
        "/api/auth/refresh",
        None,
        &json!({ "refreshToken": phone_refresh }),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(get(&app, "/api/auth/me", &first.access).await.0, 200);
    let (_, list) = get(&app, "/api/auth/sessions", &first.access).await;
    assert_eq!(list["count"], 1);

    // Ended already, unknown, or someone else's: 404.
    let other = app.register_and_login().await;
    let (_, theirs) = get(&app, "/api/auth/sessions", &other.access).await;
    let their_id = theirs["data"][0]["id"].as_str().unwrap().to_owned();
    for id in [
        phone_id.as_str(),
        their_id.as_str(),
        "0190a0a0-0000-7000-8000-000000000000",
    ] {
        let (status, _, _) = app
            .call(
                Method::DELETE,
                &format!("/api/auth/sessions/{id}"),
                Some(&first.access),
                None,
            )
            .await;
        assert_eq!(status, 404, "{id}");
    }
    let (status, _, body) = app
        .call(
            Method::DELETE,
            "/api/auth/sessions/not-a-uuid",
            Some(&first.access),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("VALIDATION_ERROR"))
    );
    assert_eq!(get(&app, "/api/auth/me", &other.access).await.0, 200);
}

#[tokio::test]
async fn an_admins_email_change_applies_at_once_and_mails_the_new_address_a_link() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let admin = app.account_with_role("admin").await;
    let moved = format!("moved-{}", user.email);
    let (status, _, body) = app
        .call(
            Method::PATCH,
            &format!("/api/users/{}", user.id),
            Some(&admin.access),
            Some(&json!({ "email": moved })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["email"], moved.as_str());
    assert_eq!(body["data"]["emailVerified"], false);
    let mail = wait_for_mails(&moved, "Verify your email", 1, MAIL_WAIT).await;
    let (status, _) = post(
        &app,
        "/api/auth/verify-email",
        None,
        &json!({ "token": link_token(&mail[0]) }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(app.login(&moved, &user.password).await.0, 200);
}

#[tokio::test]
async fn a_mail_the_smtp_server_keeps_refusing_is_marked_failed_logged_and_counted() {
    let mut app = TestApp::spawn_without_consumer().await;
    // Nothing listens on port 9 of this host: every send fails.
    app.consumer_args.extend(
        [
            "--smtp-url",
            "smtp://127.0.0.1:9",
            "--mail-max-attempts",
            "1",
            "--smtp-timeout-ms",
            "2000",
        ]
        .map(String::from),
    );
    app.start_consumer().await;
    let (email, _, body) = registrar_tests::registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", MAIL_WAIT).await;
    let pg = app.pg().await;
    let deadline = tokio::time::Instant::now() + MAIL_WAIT;
    let (attempts, error) = loop {
        let row = pg
            .query_opt(
                "SELECT attempts, last_error FROM mail_outbox WHERE recipient = $1 AND failed_at IS NOT NULL",
                &[&email],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            break (row.get::<_, i32>(0), row.get::<_, Option<String>>(1));
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mail was not marked failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(attempts, 1);
    assert!(error.is_some_and(|e| !e.is_empty()));
    let metrics = app.consumer_metrics().await;
    assert!(
        metrics.contains("registrar_mail_given_up_total{kind=\"verify_email\"} 1"),
        "{metrics}"
    );
    assert!(logs::captured().contains("mail_given_up"));
    assert!(mails_to(&email).await.is_empty());
}

async fn post_from(app: &TestApp, path: &str, body: &Value, client_ip: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(path))
        .header("x-forwarded-for", client_ip)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn challenge_from(app: &TestApp, email: &str, password: &str, client_ip: &str) -> String {
    let (status, body) = post_from(
        app,
        "/api/auth/login",
        &json!({ "email": email, "password": password }),
        client_ip,
    )
    .await;
    assert_eq!(
        (status, &body["mfaRequired"]),
        (200, &json!(true)),
        "{body}"
    );
    body["challenge"].as_str().unwrap().to_owned()
}

/// A code that is not the current one (nor the next or previous step's).
fn wrong_code(secret: &[u8]) -> String {
    let near: Vec<String> = [-30i64, 0, 30]
        .iter()
        .map(|d| code_at(secret, (now_unix() as i64 + d) as u64))
        .collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

#[tokio::test]
async fn a_second_factor_challenge_is_good_only_for_the_client_it_was_issued_to() {
    let app = TestApp::spawn_with(TestOptions {
        api_args: vec!["--trusted-proxies".into(), "127.0.0.1".into()],
        ..Default::default()
    })
    .await;
    let account = app.register_and_login().await;
    let (secret, _) = enable_totp(&app, &account).await;
    let ch = challenge_from(&app, &account.email, &account.password, "198.51.100.7").await;
    let right = code_at(&secret, now_unix() + 30);
    let body = json!({ "challenge": ch, "code": right });
    let (status, answer) = post_from(&app, "/api/auth/mfa/verify", &body, "203.0.113.66").await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (401, Some("INVALID_TOKEN")),
        "another address cannot use the challenge, even with the right code"
    );
    let (status, tokens) = post_from(&app, "/api/auth/mfa/verify", &body, "198.51.100.7").await;
    assert_eq!(status, 200, "{tokens}");
}

/// Per (email, address) counting let an IPv6 /48 try about 330k codes in 15 minutes.
/// Now a challenge ends at its fifth wrong code, and the account, whatever the address,
/// waits 2, 4, 8... seconds per try after its third; at the fifth the owner is mailed.
#[tokio::test]
async fn a_challenge_ends_after_five_wrong_codes_and_the_account_backs_off_whatever_the_address() {
    let app = TestApp::spawn_with(TestOptions {
        api_args: vec![
            "--trusted-proxies".into(),
            "127.0.0.1".into(),
            // The per-address lockout would stop this client first; here it is the
            // challenge and the account that must.
            "--login-max-attempts".into(),
            "100".into(),
        ],
        ..Default::default()
    })
    .await;
    let account = app.register_and_login().await;
    let (secret, _) = enable_totp(&app, &account).await;
    let attacker = "203.0.113.66";
    let ch = challenge_from(&app, &account.email, &account.password, attacker).await;
    let wrong = json!({ "challenge": ch, "code": wrong_code(&secret) });
    for _ in 0..3 {
        let (status, body) = post_from(&app, "/api/auth/mfa/verify", &wrong, attacker).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("INVALID_MFA_CODE"))
        );
    }
    // The fourth comes too soon, and so does a code from another address with its own
    // challenge: the account backs off, not the address.
    let (status, body) = post_from(&app, "/api/auth/mfa/verify", &wrong, attacker).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("ACCOUNT_LOCKED")),
        "{body}"
    );
    let elsewhere = "2001:db8:7::1";
    let other = challenge_from(&app, &account.email, &account.password, elsewhere).await;
    let (status, _) = post_from(
        &app,
        "/api/auth/mfa/verify",
        &json!({ "challenge": other, "code": wrong_code(&secret) }),
        elsewhere,
    )
    .await;
    assert_eq!(status, 429, "another address waits as well");
    for wait in [2, 4] {
        tokio::time::sleep(Duration::from_millis(wait * 1000 + 200)).await;
        let (status, body) = post_from(&app, "/api/auth/mfa/verify", &wrong, attacker).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("INVALID_MFA_CODE")),
            "{body}"
        );
    }
    // Five wrong codes: the challenge is gone, the right code no longer helps.
    let right = json!({ "challenge": ch, "code": code_at(&secret, now_unix() + 30) });
    let (status, body) = post_from(&app, "/api/auth/mfa/verify", &right, attacker).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("INVALID_TOKEN")),
        "{body}"
    );
    let mails = wait_for_mails(
        &account.email,
        "Wrong sign-in codes",
        1,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(mails.len(), 1);
}

/// A reset link outlived what it was for: sent before a password change it still set a
/// new password, and sent to an address the account no longer has it still worked.
#[tokio::test]
async fn a_password_change_or_an_address_change_burns_outstanding_reset_links() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let request = |email: String| {
        let app = &app;
        async move {
            let (status, _) = post(
                app,
                "/api/auth/password-reset",
                None,
                &json!({ "email": email }),
            )
            .await;
            assert_eq!(status, 202);
        }
    };
    let confirm = |token: String| {
        let app = &app;
        async move {
            post(
                app,
                "/api/auth/password-reset/confirm",
                None,
                &json!({ "token": token, "newPassword": "a reset that must not work 77" }),
            )
            .await
        }
    };
    // 1. A link, then the owner changes the password while logged in.
    request(account.email.clone()).await;
    let mail = wait_for_mails(&account.email, "Reset your password", 1, MAIL_WAIT).await;
    let before_change = link_token(&mail[0]);
    let path = format!("/api/users/{}", account.id);
    let (status, _, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&account.access),
            Some(&json!({ "password": "the owner's new passphrase 9", "currentPassword": account.password })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = confirm(before_change).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_OR_EXPIRED_TOKEN")),
        "a link from before the password change: {body}"
    );
    // 2. A link, then an admin moves the account to another address.
    request(account.email.clone()).await;
    let mail = wait_for_mails(&account.email, "Reset your password", 2, MAIL_WAIT).await;
    let before_move = link_token(&mail[1]);
    let admin = app.account_with_role("admin").await;
    let moved = format!("moved.{}", account.email);
    let (status, _, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&admin.access),
            Some(&json!({ "email": moved })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = confirm(before_move).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_OR_EXPIRED_TOKEN")),
        "a link sent to the old address: {body}"
    );
}

#[tokio::test]
async fn a_password_change_or_reset_ends_outstanding_second_factor_challenges() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let (secret, _) = enable_totp(&app, &account).await;
    let verify = |challenge: String, code: String| {
        let app = &app;
        async move {
            post(
                app,
                "/api/auth/mfa/verify",
                None,
                &json!({ "challenge": challenge, "code": code }),
            )
            .await
        }
    };
    // 1. The password proved, then changed by the owner before the code came.
    let before_change = challenge(&app, &account.email, &account.password).await;
    let new_password = "the owner's new passphrase 31";
    let (status, _, body) = patch_own(
        &app,
        &account,
        json!({ "password": new_password, "currentPassword": account.password }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // (Codes of the next step: enrolment used the current one.)
    let next_code = || code_at(&secret, now_unix() + 30);
    let (status, body) = verify(before_change, next_code()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("INVALID_TOKEN")),
        "a challenge from before the change, with a right code: {body}"
    );
    // 2. The password proved, then reset through a mailed link.
    let before_reset = challenge(&app, &account.email, new_password).await;
    let (status, _) = post(
        &app,
        "/api/auth/password-reset",
        None,
        &json!({ "email": account.email }),
    )
    .await;
    assert_eq!(status, 202);
    let mail = wait_for_mails(&account.email, "Reset your password", 1, MAIL_WAIT).await;
    let (status, body) = confirm_reset(&app, link_token(&mail[0]), "after the reset 4711").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = verify(before_reset, next_code()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("INVALID_TOKEN")),
        "a challenge from before the reset, with a right code: {body}"
    );
    // A challenge earned with the current password still works.
    let fresh = challenge(&app, &account.email, "after the reset 4711").await;
    let (status, body) = verify(fresh, next_code()).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn second_factor_changes_need_the_password_mail_the_owner_and_other_sessions_can_be_ended() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    // An access token alone (a stolen one) cannot enrol a second factor.
    for body in [json!({}), json!({ "password": "not the password 1" })] {
        let (status, answer) = post(
            &app,
            "/api/auth/mfa/totp/enroll",
            Some(&account.access),
            &body,
        )
        .await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("VALIDATION_ERROR")),
            "{body}: {answer}"
        );
    }
    let (_, recovery) = enable_totp(&app, &account).await;
    wait_for_mails(
        &account.email,
        "Two-factor sign-in was turned on for your account",
        1,
        MAIL_WAIT,
    )
    .await;
    let (status, body) = post(
        &app,
        "/api/auth/mfa/totp/disable",
        Some(&account.access),
        &json!({ "password": account.password, "code": recovery[0] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_for_mails(
        &account.email,
        "Two-factor sign-in was turned off for your account",
        1,
        MAIL_WAIT,
    )
    .await;
    let _ = enable_totp(&app, &account).await;
    let admin = app.account_with_role("admin").await;
    let (status, _, body) = app
        .call(
            Method::DELETE,
            &format!("/api/users/{}/mfa", account.id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for_mails(
        &account.email,
        "An administrator removed your second factor",
        1,
        MAIL_WAIT,
    )
    .await;

    // The owner, told of a change they did not make, ends every other session.
    let (status, other) = app.login(&account.email, &account.password).await;
    assert_eq!(status, 200, "{other}");
    let (status, _, body) = app
        .call(
            Method::DELETE,
            "/api/auth/sessions",
            Some(&account.access),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["count"].as_u64().unwrap() >= 1, "{body}");
    let (status, _, _) = app
        .call(
            Method::GET,
            "/api/auth/me",
            Some(other["accessToken"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(status, 401, "the other session's access token is revoked");
    let (status, _, _) = app
        .call(Method::GET, "/api/auth/me", Some(&account.access), None)
        .await;
    assert_eq!(status, 200, "the caller's own session goes on");
    let (_, sessions) = get(&app, "/api/auth/sessions", &account.access).await;
    assert_eq!(sessions["count"], 1, "{sessions}");
}
