//! Passkeys against the real api and consumer, with a software authenticator that can
//! lie about its origin and RP id, replay an assertion and roll its counter back:
//! adding, listing, renaming and deleting passkeys; signing in; a passkey-first sign-up
//! through the pipeline; dropping the password. (Chromium's virtual authenticator
//! drives the same routes from the sign-up page in `make e2e`.)

use std::time::Duration;

use registrar_tests::authenticator::SoftAuthenticator;
use registrar_tests::{Account, TestApp, TestOptions};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const ORIGIN: &str = "http://localhost:5173";

async fn spawn() -> TestApp {
    TestApp::spawn_with(TestOptions {
        api_args: vec![
            "--webauthn-rp-id".into(),
            "localhost".into(),
            "--webauthn-origins".into(),
            ORIGIN.into(),
        ],
        ..Default::default()
    })
    .await
}

/// Adds a passkey made by `authenticator` to the account.
async fn add_passkey(
    app: &TestApp,
    account: &Account,
    authenticator: &mut SoftAuthenticator,
) -> Value {
    let (status, _, options) = app
        .call(
            Method::POST,
            "/api/v1/auth/passkeys/options",
            Some(&account.access),
            None,
        )
        .await;
    assert_eq!(status, 200, "{options}");
    let selection = &options["options"]["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{options}");
    assert_eq!(selection["userVerification"], "required");
    let credential = authenticator.create(&options["options"], ORIGIN, None);
    let (status, _, added) = app
        .call(
            Method::POST,
            "/api/v1/auth/passkeys",
            Some(&account.access),
            Some(&json!({ "ceremonyId": options["ceremonyId"], "credential": credential, "name": "Laptop" })),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    added["data"].clone()
}

/// Starts a sign-in; returns the ceremony id and the options.
async fn sign_in_options(app: &TestApp) -> (String, Value) {
    let (status, _, options) = app
        .call(
            Method::POST,
            "/api/v1/auth/passkey/login/options",
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{options}");
    assert_eq!(options["options"]["mediation"], "conditional");
    (
        options["ceremonyId"].as_str().unwrap().to_owned(),
        options["options"].clone(),
    )
}

async fn sign_in_with(app: &TestApp, ceremony: &str, assertion: &Value) -> (u16, Value) {
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/passkey/login",
            None,
            Some(&json!({ "ceremonyId": ceremony, "credential": assertion })),
        )
        .await;
    (status, body)
}

async fn sign_in(app: &TestApp, authenticator: &mut SoftAuthenticator) -> (u16, Value) {
    let (ceremony, options) = sign_in_options(app).await;
    let assertion = authenticator.get(&options, ORIGIN, None);
    sign_in_with(app, &ceremony, &assertion).await
}

async fn audit_actions(app: &TestApp, user: Uuid) -> Vec<String> {
    app.pg()
        .await
        .query(
            "SELECT action FROM user_audit_log WHERE user_id = $1 ORDER BY id",
            &[&user],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn a_user_adds_lists_renames_and_deletes_passkeys_and_signs_in_with_one() {
    let app = spawn().await;
    let account = app.register_and_login().await;
    let mut authenticator = SoftAuthenticator::new();
    let added = add_passkey(&app, &account, &mut authenticator).await;
    assert_eq!(added["name"], "Laptop");
    assert_eq!(added["authenticatorType"], "synced");
    assert_eq!(added["backedUp"], true);
    assert_eq!(added["transports"], json!(["internal", "hybrid"]));
    assert!(added["lastUsedAt"].is_null());

    // The passkey signs in: a session, no second-factor step.
    let (status, tokens) = sign_in(&app, &mut authenticator).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["accessToken"].as_str().unwrap();
    let (_, _, me) = app
        .call(Method::GET, "/api/v1/auth/me", Some(access), None)
        .await;
    assert_eq!(me["data"]["email"], account.email.as_str());

    let (status, _, list) = app
        .call(
            Method::GET,
            "/api/v1/auth/passkeys",
            Some(&account.access),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["count"], 1);
    assert!(list["data"][0]["lastUsedAt"].is_string(), "{list}");
    assert!(
        list["data"][0].get("credential").is_none(),
        "no key material in the list"
    );
    let id = list["data"][0]["id"].as_str().unwrap().to_owned();

    let (status, _, renamed) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/auth/passkeys/{id}"),
            Some(&account.access),
            Some(&json!({ "name": "Work laptop" })),
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["data"]["name"], "Work laptop");
    for bad in [
        json!({ "name": "" }),
        json!({ "name": "x".repeat(101) }),
        json!({}),
    ] {
        let (status, _, body) = app
            .call(
                Method::PATCH,
                &format!("/api/v1/auth/passkeys/{id}"),
                Some(&account.access),
                Some(&bad),
            )
            .await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    }

    // Another user cannot see, rename or delete it.
    let other = app.register_and_login().await;
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/auth/passkeys/{id}"),
            Some(&other.access),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // The account has a password, so its only passkey may go; then it signs in no more.
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/auth/passkeys/{id}"),
            Some(&account.access),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = sign_in(&app, &mut authenticator).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "PASSKEY_REJECTED");

    let actions = audit_actions(&app, account.id).await;
    for action in [
        "auth.passkey_added",
        "auth.passkey_used",
        "auth.passkey_renamed",
        "auth.passkey_deleted",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} missing from {actions:?}"
        );
    }
}

#[tokio::test]
async fn a_ceremony_is_single_use_and_bound_to_the_session_that_started_it() {
    let app = spawn().await;
    let account = app.register_and_login().await;
    let second_session = app.log_in_again(account.clone()).await;
    let mut authenticator = SoftAuthenticator::new();

    let (_, _, options) = app
        .call(
            Method::POST,
            "/api/v1/auth/passkeys/options",
            Some(&account.access),
            None,
        )
        .await;
    let credential = authenticator.create(&options["options"], ORIGIN, None);
    let body = json!({ "ceremonyId": options["ceremonyId"], "credential": credential });
    // Finished from another session of the same user: refused, and the ceremony is spent.
    let (status, _, refused) = app
        .call(
            Method::POST,
            "/api/v1/auth/passkeys",
            Some(&second_session.access),
            Some(&body),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["details"][0]["field"], "ceremonyId");
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/passkeys",
            Some(&account.access),
            Some(&body),
        )
        .await;
    assert_eq!(status, 400, "a used ceremony does not work twice");

    // An attestation from another origin, or for another RP id, is refused.
    for (origin, rp_id) in [
        ("https://evil.example", None),
        (ORIGIN, Some("example.com")),
    ] {
        let (_, _, options) = app
            .call(
                Method::POST,
                "/api/v1/auth/passkeys/options",
                Some(&account.access),
                None,
            )
            .await;
        let credential = SoftAuthenticator::new().create(&options["options"], origin, rp_id);
        let (status, _, body) = app
            .call(
                Method::POST,
                "/api/v1/auth/passkeys",
                Some(&account.access),
                Some(&json!({ "ceremonyId": options["ceremonyId"], "credential": credential })),
            )
            .await;
        assert_eq!(status, 400, "{origin} {rp_id:?}: {body}");
        assert_eq!(body["error"]["details"][0]["field"], "credential");
    }
    let (_, _, list) = app
        .call(
            Method::GET,
            "/api/v1/auth/passkeys",
            Some(&account.access),
            None,
        )
        .await;
    assert_eq!(list["count"], 0, "nothing was stored");
}

#[tokio::test]
async fn a_passkey_sign_in_refuses_replays_other_origins_other_rp_ids_and_a_counter_that_goes_back()
{
    let app = spawn().await;
    let account = app.register_and_login().await;
    let mut authenticator = SoftAuthenticator::new();
    add_passkey(&app, &account, &mut authenticator).await;
    let cloned = authenticator.clone();

    // A replayed assertion: same ceremony (spent), and a new ceremony (other challenge).
    let (ceremony, options) = sign_in_options(&app).await;
    let assertion = authenticator.get(&options, ORIGIN, None);
    assert_eq!(sign_in_with(&app, &ceremony, &assertion).await.0, 200);
    let (status, body) = sign_in_with(&app, &ceremony, &assertion).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("PASSKEY_REJECTED"))
    );
    let (fresh, _) = sign_in_options(&app).await;
    assert_eq!(sign_in_with(&app, &fresh, &assertion).await.0, 401);

    // Another origin, another RP id.
    let (ceremony, options) = sign_in_options(&app).await;
    let assertion = authenticator.get(&options, "https://evil.example", None);
    assert_eq!(sign_in_with(&app, &ceremony, &assertion).await.0, 401);
    let (ceremony, options) = sign_in_options(&app).await;
    let assertion = authenticator.get(&options, ORIGIN, Some("example.com"));
    assert_eq!(sign_in_with(&app, &ceremony, &assertion).await.0, 401);

    // A copy of the authenticator whose counter lags behind the stored one: cloned.
    let stored: i64 = app
        .pg()
        .await
        .query_one(
            "SELECT sign_count FROM passkeys WHERE user_id = $1",
            &[&account.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored,
        i64::from(authenticator.counter) - 2,
        "the refused assertions moved nothing"
    );
    let mut lagging = cloned;
    let (status, body) = sign_in(&app, &mut lagging).await;
    assert_eq!(status, 401, "a counter at or below the stored one: {body}");
    // The real one still works.
    assert_eq!(sign_in(&app, &mut authenticator).await.0, 200);

    // Malformed answers are 400s in the envelope.
    for bad in [
        json!({}),
        json!({ "ceremonyId": "x" }),
        json!({ "ceremonyId": "x", "credential": {"id": 1} }),
    ] {
        let (status, _, body) = app
            .call(Method::POST, "/api/v1/auth/passkey/login", None, Some(&bad))
            .await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    }
}

#[tokio::test]
async fn a_passkey_first_sign_up_completes_through_the_pipeline_without_a_password() {
    let app = spawn().await;
    let email = format!(
        "passkey.{}@example.com",
        &Uuid::new_v4().simple().to_string()[..12]
    );
    let (status, _, options) = app
        .call(
            Method::POST,
            "/api/v1/auth/passkey/register/options",
            None,
            Some(&json!({ "email": email, "displayName": "Grace Hopper" })),
        )
        .await;
    assert_eq!(status, 200, "{options}");
    assert_eq!(
        options["options"]["publicKey"]["user"]["name"],
        email.as_str()
    );
    let mut authenticator = SoftAuthenticator::new();
    let credential = authenticator.create(&options["options"], ORIGIN, None);

    // A display name the authenticator cannot show is refused, not cut (found by the
    // generated-input run: it was silently replaced by the address).
    for bad in ["x".repeat(101), "Grace\u{7}Hopper".to_owned()] {
        let (status, _, body) = app
            .call(
                Method::POST,
                "/api/v1/auth/passkey/register/options",
                None,
                Some(&json!({ "email": email, "displayName": bad })),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["details"][0]["field"], "displayName");
    }

    // The ceremony was for this address: another one is refused.
    let other = json!({
        "ceremonyId": options["ceremonyId"], "credential": credential,
        "email": "someone.else@example.com",
    });
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/passkey/register",
            None,
            Some(&other),
        )
        .await;
    assert_eq!(status, 400, "{body}");

    // A new ceremony, then the sign-up.
    let (_, _, options) = app
        .call(
            Method::POST,
            "/api/v1/auth/passkey/register/options",
            None,
            Some(&json!({ "email": email })),
        )
        .await;
    let credential = authenticator.create(&options["options"], ORIGIN, None);
    let response = app
        .post_registration_to(
            "/api/v1/auth/passkey/register",
            &[],
            &json!({
                "ceremonyId": options["ceremonyId"], "credential": credential,
                "passkeyName": "Phone", "email": email, "name": "Grace Hopper",
            }),
        )
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let accepted: Value = response.json().await.unwrap();
    let registration_id: Uuid = accepted["data"]["registrationId"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        authenticator.user_handle,
        registration_id.as_bytes(),
        "the user handle is the registration id"
    );
    app.wait_for_status(&email, "completed", Duration::from_secs(30))
        .await;

    let row = app
        .pg()
        .await
        .query_one(
            "SELECT u.id, u.password_hash, u.first_name, p.name FROM users u JOIN passkeys p ON p.user_id = u.id WHERE u.email = $1",
            &[&email],
        )
        .await
        .unwrap();
    let user_id: Uuid = row.get(0);
    assert_eq!(row.get::<_, String>(1), "!none", "nothing was hashed");
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("Grace"));
    assert_eq!(row.get::<_, String>(3), "Phone");

    // No password signs in; the passkey does.
    let (status, _) = app.login(&email, "any password at all").await;
    assert_eq!(status, 401);
    let (status, tokens) = sign_in(&app, &mut authenticator).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["accessToken"].as_str().unwrap();

    // Its only passkey is its only way in.
    let (_, _, list) = app
        .call(Method::GET, "/api/v1/auth/passkeys", Some(access), None)
        .await;
    let id = list["data"][0]["id"].as_str().unwrap();
    let (status, _, body) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/auth/passkeys/{id}"),
            Some(access),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "LAST_SIGN_IN_METHOD");

    let audit: Value = app
        .pg()
        .await
        .query_one(
            "SELECT details FROM user_audit_log WHERE user_id = $1 AND action = 'user.registered'",
            &[&user_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit["credential"], "passkey");
}

#[tokio::test]
async fn a_user_with_a_passkey_may_drop_the_password_and_sign_in_with_the_passkey_alone() {
    let app = spawn().await;
    let account = app.register_and_login().await;
    let (status, _, body) = app
        .call(
            Method::DELETE,
            "/api/v1/auth/password",
            Some(&account.access),
            None,
        )
        .await;
    assert_eq!(status, 409, "no passkey yet: {body}");
    let mut authenticator = SoftAuthenticator::new();
    add_passkey(&app, &account, &mut authenticator).await;
    let (status, _, _) = app
        .call(
            Method::DELETE,
            "/api/v1/auth/password",
            Some(&account.access),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app.login(&account.email, &account.password).await;
    assert_eq!(status, 401, "the old password is gone");
    assert_eq!(sign_in(&app, &mut authenticator).await.0, 200);
    assert!(audit_actions(&app, account.id)
        .await
        .iter()
        .any(|a| a == "auth.password_removed"));
}
