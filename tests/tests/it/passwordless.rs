//! Passwordless email against the real api, consumer and MailDev: a mail with a link and
//! a 6-digit code, each single use and short lived; the same answer for known and
//! unknown addresses; wrong codes locked out like wrong passwords; a sign-up with no
//! password at all that signs in with the mailbox alone.

use std::time::Duration;

use registrar_tests::{
    link_token, mails_to, registration_body, wait_for_mails, TestApp, TestOptions,
};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const SUBJECT: &str = "Your sign-in code";

/// The code of a sign-in mail (its subject ends with it).
fn code_of(mail: &Value) -> String {
    let subject = mail["subject"].as_str().unwrap();
    let code = subject.rsplit(' ').next().unwrap().to_owned();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{subject}"
    );
    assert!(mail["text"].as_str().unwrap().contains(&code));
    code
}

async fn ask(app: &TestApp, email: &str) -> (u16, Value) {
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/passwordless",
            None,
            Some(&json!({ "email": email })),
        )
        .await;
    (status, body)
}

async fn verify(app: &TestApp, body: Value) -> (u16, Value) {
    let (status, _, answer) = app
        .call(
            Method::POST,
            "/api/v1/auth/passwordless/verify",
            None,
            Some(&body),
        )
        .await;
    (status, answer)
}

#[tokio::test]
async fn a_sign_in_mail_signs_in_once_by_code_or_by_link_and_not_after_it_expired() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let unknown = format!(
        "nobody.{}@example.com",
        &Uuid::new_v4().simple().to_string()[..10]
    );
    let known = ask(&app, &account.email).await;
    assert_eq!(
        known,
        ask(&app, &unknown).await,
        "the same answer for an unknown address"
    );
    assert_eq!(known.0, 202);

    let mail = wait_for_mails(&account.email, SUBJECT, 1, Duration::from_secs(30)).await;
    let code = code_of(&mail[0]);
    let token = link_token(&mail[0]);
    let ttl: f64 = app
        .pg()
        .await
        .query_one(
            "SELECT extract(epoch FROM max(expires_at - created_at))::float8 FROM account_tokens WHERE user_id = $1 AND purpose = 'sign_in_code'",
            &[&account.id],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        (590.0..=610.0).contains(&ttl),
        "codes live 10 minutes: {ttl}"
    );

    assert!(mail[0]["text"]
        .as_str()
        .unwrap()
        .contains("/sign-in?token="));
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let (status, body) = verify(&app, json!({ "email": account.email, "code": wrong })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("INVALID_CODE"))
    );
    let (status, tokens) = verify(&app, json!({ "email": account.email, "code": code })).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["accessToken"].as_str().unwrap();
    let (_, _, me) = app
        .call(Method::GET, "/api/v1/auth/me", Some(access), None)
        .await;
    assert_eq!(me["data"]["id"], account.id.to_string());
    assert_eq!(me["data"]["emailVerified"], true, "the mailbox is proven");
    // Single use, and the mail's link went with its code.
    assert_eq!(
        verify(&app, json!({ "email": account.email, "code": code }))
            .await
            .0,
        401
    );
    let (status, body) = verify(&app, json!({ "token": token })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_OR_EXPIRED_TOKEN"))
    );

    // The link of a new mail signs in once.
    ask(&app, &account.email).await;
    let mails = wait_for_mails(&account.email, SUBJECT, 2, Duration::from_secs(30)).await;
    let token = link_token(&mails[1]);
    assert_eq!(verify(&app, json!({ "token": token })).await.0, 200);
    assert_eq!(verify(&app, json!({ "token": token })).await.0, 400);

    // An expired mail works no more (10 minutes, moved into the past here).
    ask(&app, &account.email).await;
    let mails = wait_for_mails(&account.email, SUBJECT, 3, Duration::from_secs(30)).await;
    app.pg()
        .await
        .execute(
            "UPDATE account_tokens SET expires_at = now() - interval '1 second' WHERE user_id = $1 AND purpose IN ('sign_in', 'sign_in_code')",
            &[&account.id],
        )
        .await
        .unwrap();
    assert_eq!(
        verify(&app, json!({ "token": link_token(&mails[2]) }))
            .await
            .0,
        400
    );
    assert_eq!(
        verify(
            &app,
            json!({ "email": account.email, "code": code_of(&mails[2]) })
        )
        .await
        .0,
        401
    );

    // Nothing went to the unknown address; malformed requests are 400s in the envelope.
    assert!(mails_to(&unknown).await.is_empty());
    for bad in [
        json!({}),
        json!({ "email": account.email, "code": "12345" }),
        json!({ "token": "t", "code": "123456" }),
    ] {
        let (status, body) = verify(&app, bad.clone()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("VALIDATION_ERROR")),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn wrong_codes_lock_the_account_like_wrong_passwords_and_clients_are_rate_limited() {
    let app = TestApp::spawn_with(TestOptions {
        api_args: vec!["--mail-requests-per-ip".into(), "3".into()],
        ..Default::default()
    })
    .await;
    let account = app.register_and_login().await;
    ask(&app, &account.email).await;
    let mail = wait_for_mails(&account.email, SUBJECT, 1, Duration::from_secs(30)).await;
    let code = code_of(&mail[0]);
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let mut last = 0;
    for _ in 0..6 {
        last = verify(&app, json!({ "email": account.email, "code": wrong }))
            .await
            .0;
    }
    assert_eq!(last, 429, "locked after 5 wrong codes");
    let (status, body) = verify(&app, json!({ "email": account.email, "code": code })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("ACCOUNT_LOCKED")),
        "even the right code waits"
    );

    // Per client: beyond the limit, 429 whatever the address.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            ask(&app, &format!("x{}@example.com", Uuid::new_v4().simple()))
                .await
                .0,
        );
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}

#[tokio::test]
async fn a_sign_up_without_a_password_completes_and_signs_in_with_the_mailbox_alone() {
    let app = TestApp::spawn().await;
    let (email, _, mut body) = registration_body();
    let (status, _, refused) = app
        .call(
            Method::POST,
            "/api/v1/auth/passwordless/register",
            None,
            Some(&body),
        )
        .await;
    assert_eq!(status, 400, "a password is refused here: {refused}");
    assert_eq!(refused["error"]["details"][0]["field"], "password");
    body.as_object_mut().unwrap().remove("password");
    let response = app
        .post_registration_to("/api/v1/auth/passwordless/register", &[], &body)
        .await;
    assert_eq!(response.status().as_u16(), 202);
    app.wait_for_status(&email, "completed", Duration::from_secs(30))
        .await;
    let hash: String = app
        .pg()
        .await
        .query_one(
            "SELECT password_hash FROM users WHERE email = $1",
            &[&email],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hash, "!none");
    assert_eq!(app.login(&email, "anything at all 123").await.0, 401);

    ask(&app, &email).await;
    let mail = wait_for_mails(&email, SUBJECT, 1, Duration::from_secs(30)).await;
    let (status, tokens) = verify(&app, json!({ "email": email, "code": code_of(&mail[0]) })).await;
    assert_eq!(status, 200, "{tokens}");
}
