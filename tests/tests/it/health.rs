//! Health probes of both binaries.

use registrar_tests::{TestApp, TestOptions};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_every_dependency_healthy_and_the_probes_answer() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "OK");
    assert!(body["uptime"].as_f64().unwrap() >= 0.0);
    assert!(body["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
    for service in ["redis", "postgres", "kafka"] {
        assert_eq!(body["services"][service], "healthy", "{service}");
    }
    let live: Value = app.get_json("/api/health/live").await;
    assert_eq!(live["status"], "alive");
    let ready = app
        .http
        .get(app.url("/api/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let probe = app.consumer_probe_address().unwrap();
    for path in ["/health/live", "/health/ready", "/api/health/ready"] {
        let r = app
            .http
            .get(format!("http://{probe}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_and_names_the_broker_when_it_is_unreachable() {
    let app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        api_kafka_brokers: Some("127.0.0.1:1".into()),
        ..Default::default()
    })
    .await;
    let response = app.http.get(app.url("/api/health")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["message"], "DEGRADED");
    assert_eq!(body["services"]["kafka"], "unhealthy");
    assert_eq!(body["services"]["redis"], "healthy");
    let ready = app
        .http
        .get(app.url("/api/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let live = app
        .http
        .get(app.url("/api/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200, "liveness does not depend on the broker");
}
