//! The api when a dependency is missing: 503 in seconds, nothing left behind.

use std::time::{Duration, Instant};

use registrar_tests::{registration_body, TestApp, TestOptions};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_gets_503_within_seconds_and_leaves_no_pending_key() {
    let app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        api_kafka_brokers: Some("127.0.0.1:1".into()),
        ..Default::default()
    })
    .await;
    let (email, _, body) = registration_body();
    let started = Instant::now();
    let response = app.post_registration(&body).await;
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "SERVICE_UNAVAILABLE");
    assert!(
        !error.to_string().contains("127.0.0.1"),
        "no internals in the body"
    );
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
    assert_eq!(
        app.redis_get(&app.keys().pending(&email.parse().unwrap()))
            .await,
        None
    );
    // The email is free again: a retry is not a 409.
    assert_eq!(app.post_registration(&body).await.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_gets_503_and_nothing_is_published() {
    let app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        api_redis_url: Some("redis://127.0.0.1:1".into()),
        ..Default::default()
    })
    .await;
    let (email, _, body) = registration_body();
    let response = app.post_registration(&body).await;
    assert_eq!(response.status(), 503);
    let records = registrar_tests::kafka::read_all(&app.topic, 1, Duration::from_secs(3)).await;
    assert!(
        records.is_empty(),
        "nothing published without a pending key"
    );
    // Polling degrades to PostgreSQL, which does not know the email: 503, not 404.
    app.remember_registration(&email, uuid::Uuid::now_v7());
    assert_eq!(app.get_status(&email).await.status(), 503);
}

/// An api whose `limit_flag` is set to 1, with one registration holding that one slot:
/// its broker never answers, so the registration waits for the produce timeout.
async fn one_registration_stuck(
    limit_flag: &str,
) -> (
    TestApp,
    tokio::task::JoinHandle<reqwest::Result<reqwest::StatusCode>>,
) {
    let app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        api_kafka_brokers: Some("127.0.0.1:1".into()),
        api_args: vec![limit_flag.into(), "1".into()],
        ..Default::default()
    })
    .await;
    let (_, _, first) = registration_body();
    let stuck = tokio::spawn({
        let http = app.http.clone();
        let url = app.url("/api/v1/users");
        async move { http.post(url).json(&first).send().await.map(|r| r.status()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    (app, stuck)
}

/// A 503 `OVERLOADED` with `Retry-After: 1`, answered within `within` of `started`, and
/// nothing staged for `email`.
async fn assert_overloaded_at_once(
    app: &TestApp,
    response: reqwest::Response,
    started: Instant,
    within: Duration,
    email: &str,
) {
    let elapsed = started.elapsed();
    let url = response.url().path().to_owned();
    assert_eq!(response.status(), 503, "{url}");
    assert_eq!(response.headers()["retry-after"], "1");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "OVERLOADED");
    assert!(
        elapsed < within,
        "{url} answered in {elapsed:?}, not at once"
    );
    assert_eq!(
        app.redis_get(&app.keys().pending(&email.parse().unwrap()))
            .await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_producer_queue_answers_503_with_retry_after_at_once() {
    let (app, stuck) = one_registration_stuck("--producer-queue-max-messages").await;
    let (email, _, second) = registration_body();
    let started = Instant::now();
    let response = app.post_registration(&second).await;
    assert_overloaded_at_once(&app, response, started, Duration::from_secs(1), &email).await;
    assert_eq!(stuck.await.unwrap().unwrap(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_beyond_the_in_flight_limit_are_refused_at_once_and_stage_nothing() {
    let (app, stuck) = one_registration_stuck("--intake-max-in-flight").await;
    // Every registration route shares the one budget, aliases included.
    for path in ["/api/v1/users", "/api/auth/register", "/v1/register"] {
        let (email, _, body) = registration_body();
        let started = Instant::now();
        let response = app
            .http
            .post(app.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_overloaded_at_once(&app, response, started, Duration::from_millis(500), &email)
            .await;
    }
    // Other routes are not part of the budget.
    assert_eq!(app.get_status("nobody@example.com").await.status(), 404);
    assert_eq!(
        stuck.await.unwrap().unwrap(),
        503,
        "the broker never answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_logins_and_authenticated_calls_get_503_never_a_pass() {
    let app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        api_redis_url: Some("redis://127.0.0.1:1".into()),
        ..Default::default()
    })
    .await;
    let (status, body) = app.login("someone@example.com", "a password").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
    // A correctly signed token cannot be checked against revocations: fail closed.
    let keys = app.jwt_keys();
    let (token, _) = keys.issue(
        uuid::Uuid::now_v7(),
        common::domain::Role::Admin,
        uuid::Uuid::now_v7(),
    );
    let (status, headers, _) = app
        .call(reqwest::Method::GET, "/api/users", Some(&token), None)
        .await;
    assert_eq!(status, 503);
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_with_a_token_still_answers_the_status_when_postgresql_is_down() {
    let app = TestApp::spawn_with(TestOptions {
        api_database_url: Some("postgres://postgres@127.0.0.1:1/none".into()),
        ..Default::default()
    })
    .await;
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", Duration::from_secs(30))
        .await;
    let keys = app.jwt_keys();
    let (token, _) = keys.issue(
        uuid::Uuid::now_v7(),
        common::domain::Role::Admin,
        uuid::Uuid::now_v7(),
    );
    let (status, _, answer) = app
        .call(
            reqwest::Method::GET,
            &format!("/api/users/{email}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["status"], "completed");
    assert!(answer["data"].get("user").is_none());
}
