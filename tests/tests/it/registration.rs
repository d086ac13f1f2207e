//! The registration contract of the api, end to end.

use std::time::Duration;

use registrar_tests::{registration_body, TestApp, TestOptions};
use serde_json::{json, Value};

const SETTLE: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_is_persisted_with_an_argon2id_hash_an_audit_row_and_redis_keys() {
    // Production argon2 parameters: the one test that runs the real cost.
    let app = TestApp::spawn_with(TestOptions {
        production_argon2: true,
        ..Default::default()
    })
    .await;
    let (email, password, body) = registration_body();

    let response = app.post_registration(&body).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let accepted: Value = response.json().await.unwrap();
    let registration_id = accepted["data"]["registrationId"].as_str().unwrap();
    assert_eq!(
        location,
        format!("/api/v1/users/{email}?registrationId={registration_id}")
    );
    assert_eq!(accepted["success"], true);
    assert_eq!(
        accepted["message"],
        "User registration submitted successfully"
    );
    assert_eq!(accepted["data"]["email"], email.as_str());
    assert_eq!(accepted["data"]["status"], "pending");
    let registration_id = accepted["data"]["registrationId"]
        .as_str()
        .unwrap()
        .to_owned();

    let done = app.wait_for_status(&email, "completed", SETTLE).await;
    assert_eq!(done["data"]["registrationId"], registration_id.as_str());
    assert!(
        done["data"].get("firstName").is_none(),
        "no profile without a token"
    );

    let pg = app.pg().await;
    let rows = pg
        .query(
            "SELECT id, registration_id::text, password_hash, role, first_name, occupation FROM users WHERE email = $1",
            &[&email],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let hash: String = rows[0].get(2);
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    let hasher = common::domain::password::PasswordHasherService::new(Default::default()).unwrap();
    assert!(hasher.verify(&secrecy::SecretString::from(password.clone()), &hash));
    assert_eq!(rows[0].get::<_, String>(1), registration_id);
    assert_eq!(rows[0].get::<_, String>(3), "user");
    assert_eq!(rows[0].get::<_, String>(4), "Ada");

    let user_id: uuid::Uuid = rows[0].get(0);
    let audit = pg
        .query(
            "SELECT action, actor_id, registration_id::text FROM user_audit_log WHERE user_id = $1",
            &[&user_id],
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].get::<_, String>(0), "user.registered");
    assert_eq!(audit[0].get::<_, String>(2), registration_id);

    assert_eq!(
        app.redis_get(&app.keys().pending(&email.parse().unwrap()))
            .await,
        None
    );
    let completed = app
        .redis_get(&app.keys().completed(&email.parse().unwrap()))
        .await
        .unwrap();
    assert!(completed.contains(&registration_id));
    let ttl = app
        .redis_ttl(&app.keys().completed(&email.parse().unwrap()))
        .await;
    assert!(ttl > 23 * 3600 && ttl <= 24 * 3600, "ttl {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_register_alias_accepts_a_registration() {
    let app = TestApp::spawn().await;
    let (email, _, body) = registration_body();
    let response = app
        .post_registration_to("/api/auth/register", &[], &body)
        .await;
    assert_eq!(response.status(), 202);
    app.wait_for_status(&email, "completed", SETTLE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_key_is_set_with_a_one_hour_ttl_while_the_consumer_is_away() {
    let app = TestApp::spawn_without_consumer().await;
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    let ttl = app
        .redis_ttl(&app.keys().pending(&email.parse().unwrap()))
        .await;
    assert!(ttl > 3500 && ttl <= 3600, "ttl {ttl}");
    let status: Value = app.get_status(&email).await.json().await.unwrap();
    assert_eq!(status["data"]["status"], "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_registration_while_one_is_pending_gets_409() {
    let app = TestApp::spawn_without_consumer().await;
    let (_, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    let second = app.post_registration(&body).await;
    assert_eq!(second.status(), 409);
    let error: Value = second.json().await.unwrap();
    assert_eq!(error["success"], false);
    assert_eq!(error["error"]["code"], "REGISTRATION_PENDING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_registration_of_a_taken_email_polls_neutrally_mails_the_owner_and_leaves_the_user_alone(
) {
    let app = TestApp::spawn().await;
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", SETTLE).await;
    let pg = app.pg().await;
    let before: String = pg
        .query_one(
            "SELECT password_hash FROM users WHERE email = $1",
            &[&email],
        )
        .await
        .unwrap()
        .get(0);

    let mut second = body.clone();
    second["firstName"] = json!("Mallory");
    second["password"] = json!("another-password");
    assert_eq!(app.post_registration(&second).await.status(), 202);
    // The owner learns of it; the second registrant's poll cannot tell the address has
    // an account (it says what a new account's poll says).
    registrar_tests::wait_for_mails(&email, "Someone tried to register", 1, SETTLE).await;
    let seen = app.wait_for_status(&email, "completed", SETTLE).await;
    assert!(seen["data"].get("reason").is_none(), "{seen}");

    let rows = pg
        .query(
            "SELECT first_name, password_hash FROM users WHERE email = $1",
            &[&email],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "Ada");
    assert_eq!(rows[0].get::<_, String>(1), before);
    let audits: i64 = pg
        .query_one("SELECT count(*) FROM user_audit_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(audits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_registrations_of_one_email_make_exactly_one_user() {
    let app = TestApp::spawn().await;
    let (email, _, body) = registration_body();
    let responses = futures::future::join_all((0..50).map(|_| app.post_registration(&body))).await;
    let accepted = responses.iter().filter(|r| r.status() == 202).count();
    let conflicts = responses.iter().filter(|r| r.status() == 409).count();
    assert_eq!(accepted + conflicts, 50, "only 202 and 409 expected");
    assert!(accepted >= 1);
    app.wait_for_status(&email, "completed", SETTLE).await;
    // Late submitters may have got 202 after the first completed; they fail EMAIL_TAKEN.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let users: i64 = app
        .pg()
        .await
        .query_one("SELECT count(*) FROM users WHERE email = $1", &[&email])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_retry_returns_the_first_answer_and_a_different_body_is_rejected() {
    let app = TestApp::spawn_without_consumer().await;
    let (_, _, body) = registration_body();
    let post = |b: Value| {
        app.http
            .post(app.url("/api/users"))
            .header("Idempotency-Key", "retry-42")
            .json(&b)
            .send()
    };
    let first = post(body.clone()).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let retry = post(body.clone()).await.unwrap();
    assert_eq!(retry.status(), 202, "a retry is not a 409");
    let retry: Value = retry.json().await.unwrap();
    assert_eq!(retry, first);

    let mut other = body.clone();
    other["occupation"] = json!("Something else");
    let reused = post(other).await.unwrap();
    assert_eq!(reused.status(), 422);
    let reused: Value = reused.json().await.unwrap();
    assert_eq!(reused["error"]["code"], "IDEMPOTENCY_KEY_REUSED");
}

/// Posts `body` and expects a 400 VALIDATION_ERROR naming `field`, with nothing stored.
async fn assert_rejected(app: &TestApp, body: Value, field: &str) {
    let response = app.post_registration(&body).await;
    assert_eq!(response.status(), 400, "{body}");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["success"], false);
    assert_eq!(error["error"]["code"], "VALIDATION_ERROR");
    let details = error["error"]["details"].as_array().unwrap();
    assert!(
        details.iter().any(|d| d["field"] == field),
        "{field} not in {details:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_validation_rule_answers_400_and_stores_nothing() {
    let app = TestApp::spawn_without_consumer().await;
    let (_, _, valid) = registration_body();
    let cases: Vec<(&str, Value)> = vec![
        ("firstName", json!("A")),
        ("firstName", json!("x".repeat(101))),
        ("lastName", json!("B")),
        ("lastName", json!("x".repeat(101))),
        ("email", json!("not-an-email")),
        ("email", json!("")),
        ("password", json!("short")),
        ("password", json!("p".repeat(129))),
        ("gender", json!("other")),
        ("sex", json!("unknown")),
        ("occupation", json!("x")),
        ("occupation", json!("x".repeat(256))),
        ("username", json!("ab")),
        ("username", json!("root")),
        ("dateOfBirth", json!("1990-13-01")),
        ("firstName", json!(42)),
    ];
    for (field, value) in cases {
        let mut body = valid.clone();
        body[field] = value;
        assert_rejected(&app, body, field).await;
    }
    // By default only the email and the password are required (REQUIRED_PROFILE_FIELDS).
    for field in ["email", "password"] {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(field);
        assert_rejected(&app, body, field).await;
    }
    let mut unknown = valid.clone();
    unknown["role"] = json!("admin");
    assert_rejected(&app, unknown, "role").await;

    assert!(
        app.redis_keys().await.is_empty(),
        "a rejected request stores nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_missing_required_field_is_reported_in_one_answer() {
    let app = TestApp::spawn_with(registrar_tests::TestOptions {
        api_args: vec![
            "--required-profile-fields".into(),
            "email,password,firstName,lastName,gender".into(),
        ],
        without_consumer: true,
        ..Default::default()
    })
    .await;
    let response = app.post_registration(&json!({})).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    let fields: Vec<&str> = error["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    // sex, occupation, username and dateOfBirth are not listed, so optional.
    assert_eq!(
        fields,
        ["firstName", "lastName", "email", "password", "gender"],
        "{error}"
    );
    assert!(app.redis_keys().await.is_empty(), "nothing is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_16_kib_non_json_and_malformed_json_are_rejected_in_the_envelope() {
    let app = TestApp::spawn_without_consumer().await;
    let (_, _, mut body) = registration_body();
    body["occupation"] = json!("x".repeat(17 * 1024));
    let big = app.post_registration(&body).await;
    assert_eq!(big.status(), 413);
    let e: Value = big.json().await.unwrap();
    assert_eq!(e["error"]["code"], "PAYLOAD_TOO_LARGE");

    let text = app
        .http
        .post(app.url("/api/users"))
        .header("content-type", "text/plain")
        .body("firstName=Ada")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);
    let e: Value = text.json().await.unwrap();
    assert_eq!(e["error"]["code"], "UNSUPPORTED_MEDIA_TYPE");

    let broken = app
        .http
        .post(app.url("/api/users"))
        .header("content-type", "application/json")
        .body("{\"firstName\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 400);
    let e: Value = broken.json().await.unwrap();
    assert_eq!(e["error"]["code"], "MALFORMED_JSON");
    assert!(app.redis_keys().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_array_body_is_refused_where_an_object_is_expected() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    app.call(
        reqwest::Method::POST,
        "/api/data",
        Some(&user.access),
        Some(&json!({ "key": "theme", "value": "dark" })),
    )
    .await;
    // serde reads `[false]` as `{"value": false}`; the api must not.
    for (method, path, token, body) in [
        (
            reqwest::Method::PUT,
            "/api/data/theme",
            Some(user.access.as_str()),
            json!([false]),
        ),
        (
            reqwest::Method::POST,
            "/api/users",
            None,
            json!(["Ada", "Lovelace"]),
        ),
        (
            reqwest::Method::POST,
            "/api/auth/login",
            None,
            json!([user.email, user.password]),
        ),
    ] {
        let (status, _, answer) = app.call(method.clone(), path, token, Some(&body)).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("VALIDATION_ERROR")),
            "{method} {path}: {answer}"
        );
    }
    let (_, _, item) = app
        .call(
            reqwest::Method::GET,
            "/api/data/theme",
            Some(&user.access),
            None,
        )
        .await;
    assert_eq!(
        item["data"]["value"], "dark",
        "the refused write changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_an_unknown_email_is_404_and_an_invalid_one_is_400() {
    let app = TestApp::spawn_without_consumer().await;
    let unknown = app.get_status("nobody@example.com").await;
    assert_eq!(unknown.status(), 404);
    let e: Value = unknown.json().await.unwrap();
    assert_eq!(e["error"]["code"], "NOT_FOUND");
    assert_eq!(app.get_status("not-an-email").await.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_falls_back_to_postgresql_when_redis_forgot_the_registration() {
    let app = TestApp::spawn().await;
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", SETTLE).await;
    app.redis_del(&app.keys().completed(&email.parse().unwrap()))
        .await;
    let status: Value = app.get_status(&email).await.json().await.unwrap();
    assert_eq!(status["data"]["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_answer_in_the_error_envelope() {
    let app = TestApp::spawn_without_consumer().await;
    let missing = app.http.get(app.url("/api/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let e: Value = missing.json().await.unwrap();
    assert_eq!(e["error"]["code"], "NOT_FOUND");
    let method = app
        .http
        .delete(app.url("/api/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(method.status(), 405);
    let e: Value = method.json().await.unwrap();
    assert_eq!(e["error"]["code"], "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn finishing_a_registration_clears_its_pending_key_even_after_redis_forgot_its_scripts() {
    use common::domain::email::Email;
    use common::store::registration_status::{Finished, RegistrationStatusStore};
    use deadpool_redis::redis;
    let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
    let redis = common::store::redis::Redis::from_config(&common::config::RedisConfig {
        url: secrecy::SecretString::from(registrar_tests::redis_url()),
        pool_size: 1,
        timeout_ms: 2000,
        key_prefix: prefix.clone(),
        tls_ca_file: None,
    })
    .unwrap();
    let store = RegistrationStatusStore::new(redis);
    let email = Email::parse("scripts@example.com").unwrap();
    let id = uuid::Uuid::new_v4();
    assert!(store.create_pending(&email, id).await.unwrap());
    // The consumer deletes pending keys with EVALSHA; a restarted Redis knows no script.
    let client = redis::Client::open(registrar_tests::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .unwrap();
    store
        .finish(&[Finished::completed(email.clone(), id)])
        .await
        .unwrap();
    let records = store.records(&email).await.unwrap();
    assert!(records.pending.is_none(), "{records:?}");
    assert_eq!(records.completed.map(|c| c.registration_id), Some(id));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut conn)
        .await
        .unwrap();
}
