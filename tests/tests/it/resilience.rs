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

/// The api's real Kafka publisher, except that the acknowledgement of the record keyed
/// `lose_ack_of` is lost: the record is written and acknowledged, then the api is told
/// the produce timed out, as when the broker appends a record and its answer never
/// arrives in time. With `release`, the error waits until the test allows it.
struct AckLost {
    inner: std::sync::Arc<dyn registrar_api::publisher::RegistrationPublisher>,
    lose_ack_of: String,
    release: Option<std::sync::Arc<tokio::sync::Notify>>,
}

impl registrar_api::publisher::RegistrationPublisher for AckLost {
    fn publish<'a>(
        &'a self,
        key: &'a str,
        payload: &'a [u8],
        headers: registrar_api::publisher::RecordHeaders<'a>,
    ) -> futures::future::BoxFuture<'a, Result<(), registrar_api::publisher::PublishError>> {
        Box::pin(async move {
            self.inner.publish(key, payload, headers).await?;
            if key != self.lose_ack_of {
                return Ok(());
            }
            if let Some(release) = &self.release {
                release.notified().await;
            }
            Err(registrar_api::publisher::PublishError::Unavailable(
                anyhow::anyhow!("Local: Message timed out"),
            ))
        })
    }
    fn check(&self, timeout: Duration) -> futures::future::BoxFuture<'_, anyhow::Result<()>> {
        self.inner.check(timeout)
    }
    fn flush(&self, timeout: Duration) -> futures::future::BoxFuture<'_, ()> {
        self.inner.flush(timeout)
    }
}

fn losing_the_ack_of(
    email: &str,
    release: Option<std::sync::Arc<tokio::sync::Notify>>,
) -> registrar_tests::PublisherWrapper {
    let lose_ack_of = email.to_owned();
    Box::new(move |inner| {
        std::sync::Arc::new(AckLost {
            inner,
            lose_ack_of,
            release,
        })
    })
}

async fn users_with_email(app: &TestApp, email: &str) -> i64 {
    app.pg()
        .await
        .query_one("SELECT count(*) FROM users WHERE email = $1", &[&email])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_answered_503_is_never_persisted_though_its_record_was_written() {
    let (email, _, body) = registration_body();
    let mut app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        wrap_publisher: Some(losing_the_ack_of(&email, None)),
        ..Default::default()
    })
    .await;
    let response = app.post_registration(&body).await;
    assert_eq!(response.status(), 503);
    let written = registrar_tests::kafka::read_all(&app.topic, 1, Duration::from_secs(5)).await;
    assert_eq!(written.len(), 1, "the record is in the log");
    let address: common::domain::email::Email = email.parse().unwrap();
    assert_eq!(app.redis_get(&app.keys().pending(&address)).await, None);

    // A consumer reads the log: the 503'd registration is skipped, a later one persisted.
    app.start_consumer().await;
    let (later, _, later_body) = registration_body();
    let response = app.post_registration(&later_body).await;
    assert_eq!(response.status(), 202);
    app.remember_location(&response);
    app.wait_for_status(&later, "completed", Duration::from_secs(30))
        .await;
    assert_eq!(users_with_email(&app, &email).await, 0, "a 503 left a user");
    assert_eq!(app.get_status(&email).await.status(), 404);
    assert!(app
        .consumer_metrics()
        .await
        .contains("registrar_consumer_registrations_withdrawn_total 1"));
    app.stop_consumer().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_error_after_a_consumer_took_the_record_is_answered_202() {
    let (email, _, body) = registration_body();
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let app = std::sync::Arc::new(
        TestApp::spawn_with(TestOptions {
            wrap_publisher: Some(losing_the_ack_of(&email, Some(release.clone()))),
            ..Default::default()
        })
        .await,
    );
    let posting = {
        let app = app.clone();
        tokio::spawn(async move { app.post_registration(&body).await })
    };
    // The consumer persists the record while the api still waits for its answer.
    registrar_tests::wait_until("the user is persisted", || {
        let app = app.clone();
        let email = email.clone();
        async move { users_with_email(&app, &email).await == 1 }
    })
    .await;
    release.notify_one();
    let response = posting.await.unwrap();
    assert_eq!(response.status(), 202, "the broker did take it");
    app.remember_location(&response);
    app.wait_for_status(&email, "completed", Duration::from_secs(10))
        .await;
    assert!(app
        .api_metrics()
        .await
        .contains("registrar_produce_failures_taken_total 1"));
}
