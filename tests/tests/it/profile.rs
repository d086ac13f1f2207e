//! The profile model: only email and password are required unless the operator says
//! otherwise (`REQUIRED_PROFILE_FIELDS`), and a whole `name` is accepted and returned
//! where the oldest clients and the OpenID Connect claims use it.

use std::time::Duration;

use registrar_tests::{TestApp, TestOptions};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

fn email(tag: &str) -> String {
    format!("{tag}-{}@example.com", Uuid::new_v4().simple())
}

const PASSWORD: &str = "correct horse battery staple";

/// Registers `body` at `path`, waits for `completed` and logs in: (user id, access token).
async fn register(app: &TestApp, path: &str, body: Value) -> (String, String) {
    let email = body["email"].as_str().unwrap().to_owned();
    let response = app.post_registration_to(path, &[], &body).await;
    assert_eq!(response.status(), 202, "{:?}", response.text().await);
    app.wait_for_status(&email, "completed", Duration::from_secs(30))
        .await;
    let (status, login) = app.login(&email, PASSWORD).await;
    assert_eq!(status, 200, "{login}");
    let (_, _, me) = app
        .call(
            Method::GET,
            "/api/auth/me",
            login["accessToken"].as_str(),
            None,
        )
        .await;
    (
        me["data"]["id"].as_str().unwrap().to_owned(),
        login["accessToken"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_with_only_an_email_and_a_password_completes() {
    let app = TestApp::spawn().await;
    let address = email("bare");
    let (id, token) = register(
        &app,
        "/api/v1/users",
        json!({"email": address, "password": PASSWORD}),
    )
    .await;
    let (status, _, user) = app
        .call(Method::GET, &format!("/api/users/{id}"), Some(&token), None)
        .await;
    assert_eq!(status, 200, "{user}");
    for field in ["name", "firstName", "lastName", "gender"] {
        assert_eq!(user["data"][field], Value::Null, "{field}: {user}");
    }
    let stored = app
        .pg()
        .await
        .query_one(
            "SELECT first_name, gender FROM users WHERE email = $1",
            &[&address],
        )
        .await
        .unwrap();
    assert_eq!(stored.get::<_, Option<String>>(0), None);
    assert_eq!(stored.get::<_, Option<String>>(1), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_clients_register_and_update_with_a_whole_name() {
    let app = TestApp::spawn().await;
    let address = email("named");
    let (id, token) = register(
        &app,
        "/api/auth/register",
        json!({"name": "Ada Lovelace", "email": address, "password": PASSWORD}),
    )
    .await;
    let path = format!("/api/users/{id}");
    let (_, _, user) = app.call(Method::GET, &path, Some(&token), None).await;
    assert_eq!(user["data"]["name"], "Ada Lovelace", "{user}");
    assert_eq!(user["data"]["firstName"], "Ada");
    assert_eq!(user["data"]["lastName"], "Lovelace");

    let (status, _, updated) = app
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(&json!({"name": "Augusta Ada King", "email": address})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["data"]["name"], "Augusta Ada King");
    assert_eq!(updated["data"]["firstName"], "Augusta Ada");
    assert_eq!(updated["data"]["lastName"], "King");

    // A name together with its parts is ambiguous: refused, nothing changes.
    let (status, _, refused) = app
        .call(
            Method::PUT,
            &path,
            Some(&token),
            Some(&json!({"name": "Ada King", "firstName": "Ada", "email": address})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["details"][0]["field"], "name");
    let (_, _, user) = app.call(Method::GET, &path, Some(&token), None).await;
    assert_eq!(user["data"]["name"], "Augusta Ada King");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_required_profile_fields_setting_refuses_a_registration_without_them() {
    let app = TestApp::spawn_with(TestOptions {
        api_args: vec![
            "--required-profile-fields".into(),
            "email,password,lastName,gender".into(),
        ],
        ..Default::default()
    })
    .await;
    // A single-word name has no family name, which this operator requires.
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/auth/register",
            None,
            Some(&json!({"name": "Cher", "email": email("cher"), "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    assert_eq!(fields, ["name", "gender"], "{body}");
    assert!(app.redis_keys().await.is_empty(), "nothing is staged");

    // With them, the registration goes through.
    register(
        &app,
        "/api/auth/register",
        json!({"name": "Grace Hopper", "gender": "female", "email": email("grace"), "password": PASSWORD}),
    )
    .await;
}

#[test]
fn an_api_refuses_to_start_with_an_unknown_required_field() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: registrar_api::config::ApiConfig,
    }
    let error = Cli::try_parse_from(["api", "--required-profile-fields", "email,password,gendr"])
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("unknown profile field `gendr`"),
        "{error}"
    );
}
