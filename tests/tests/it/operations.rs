//! What operators rely on: metrics, request ids, protection headers, rate limits, CORS.

use std::time::Duration;

use registrar_tests::kafka::read_all;
use registrar_tests::{registration_body, TestApp, TestOptions};
use serde_json::Value;

/// Sum of every sample of `name` (all label sets) in a Prometheus text exposition.
fn sample_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_binaries_export_metrics_with_routes_not_raw_paths() {
    let app = TestApp::spawn().await;
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", Duration::from_secs(20))
        .await;

    let api = app.api_metrics().await;
    assert!(
        api.contains(r#"registrar_registrations_total{outcome="accepted"} 1"#),
        "{api}"
    );
    assert!(
        api.contains(r#"route="/api/v1/users/{id}""#),
        "alias calls are counted under the canonical route"
    );
    assert!(!api.contains(r#"route="/api/users/{id}""#));
    assert!(!api.contains(&email), "no raw path or email in labels");
    assert!(sample_sum(&api, "registrar_produce_duration_seconds_count") >= 1.0);
    assert!(api.contains("registrar_http_request_duration_seconds_bucket"));

    let consumer = app.consumer_metrics().await;
    assert_eq!(
        sample_sum(&consumer, "registrar_consumer_users_persisted_total"),
        1.0
    );
    assert!(sample_sum(&consumer, "registrar_consumer_messages_total") >= 1.0);
    assert!(sample_sum(&consumer, "registrar_consumer_e2e_latency_seconds_count") >= 1.0);
    assert!(sample_sum(&consumer, "registrar_consumer_batch_size_count") >= 1.0);
    // The test topic has two partitions and this consumer is the group's only member.
    assert_eq!(
        sample_sum(&consumer, "registrar_consumer_assigned_partitions"),
        2.0,
        "the consumer reports the partitions it holds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_lag_rises_while_the_consumer_is_stopped_and_falls_when_it_returns() {
    let mut app = TestApp::spawn_without_consumer().await;
    let mut emails = Vec::new();
    for _ in 0..3 {
        let (email, _, body) = registration_body();
        assert_eq!(app.post_registration(&body).await.status(), 202);
        emails.push(email);
    }
    let lag_of = |text: String| sample_sum(&text, "registrar_consumer_lag");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let lag = lag_of(app.api_metrics().await);
        if lag >= 3.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lag stayed at {lag}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    app.start_consumer().await;
    for email in &emails {
        app.wait_for_status(email, "completed", Duration::from_secs(20))
            .await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let lag = lag_of(app.api_metrics().await);
        if lag == 0.0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lag stayed at {lag}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_id_is_returned_and_travels_to_kafka_and_the_audit_row() {
    let app = TestApp::spawn().await;
    let (email, _, body) = registration_body();
    let response = app
        .post_registration_to("/api/users", &[("x-request-id", "trace-me-123")], &body)
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["x-request-id"], "trace-me-123");
    app.wait_for_status(&email, "completed", Duration::from_secs(20))
        .await;
    let records = read_all(&app.topic, 1, Duration::from_secs(20)).await;
    assert_eq!(records[0].header("request-id"), Some("trace-me-123"));
    let details: Value = app
        .pg()
        .await
        .query_one("SELECT details FROM user_audit_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(details["requestId"], "trace-me-123");

    let generated = app
        .http
        .get(app.url("/api/health/live"))
        .send()
        .await
        .unwrap();
    let id = generated.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID is generated when none is sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let app = TestApp::spawn_without_consumer().await;
    for path in [
        "/api/health/live",
        "/api/nope",
        "/api/users/nobody@example.com",
    ] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(h["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age="));
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_over_the_auth_rate_limit_get_429_with_retry_after() {
    let app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        api_args: [
            "--auth-rate-limit-per-minute",
            "2",
            "--auth-rate-limit-burst",
            "2",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    })
    .await;
    for _ in 0..2 {
        let (_, _, body) = registration_body();
        assert_eq!(app.post_registration(&body).await.status(), 202);
    }
    let (email, _, body) = registration_body();
    let limited = app.post_registration(&body).await;
    assert_eq!(limited.status(), 429);
    assert!(
        limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    let e: Value = limited.json().await.unwrap();
    assert_eq!(e["error"]["code"], "RATE_LIMITED");
    assert_eq!(
        app.redis_get(&app.keys().pending(&email.parse().unwrap()))
            .await,
        None
    );
    // Polling is not under the registration limit.
    assert_ne!(app.get_status(&email).await.status(), 429);
    // Login is under the same per-IP auth limit (before any password is checked).
    let mut codes = Vec::new();
    for _ in 0..3 {
        let (status, body) = app.login(&email, "a wrong password").await;
        codes.push((
            status,
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
    }
    assert!(
        codes.contains(&(429, "RATE_LIMITED".to_owned())),
        "{codes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_the_configured_origin_only() {
    let app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        api_args: ["--cors-origins", "https://app.example.com"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/users"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(
        allowed.headers()["access-control-allow-credentials"],
        "true"
    );
    let denied = preflight("https://evil.example").await.unwrap();
    assert!(!denied.headers().contains_key("access-control-allow-origin"));
}

/// `(method, path)` of every `.route(...)` in one function of the api's router source.
fn routes_in_router_source(function: &str) -> Vec<(String, String)> {
    let source = include_str!("../../../api/src/startup.rs");
    let body = source
        .split(&format!("fn {function}("))
        .nth(1)
        .and_then(|rest| rest.split("\n}\n").next())
        .unwrap_or_else(|| panic!("fn {function} not found in startup.rs"));
    body.split(".route(\"")
        .skip(1)
        .filter_map(|rest| {
            let (path, rest) = rest.split_once('"')?;
            let method = rest
                .trim_start_matches([',', ' ', '\n'])
                .split('(')
                .next()?;
            Some((method.trim().to_owned(), path.to_owned()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_every_route_the_router_serves() {
    let app = TestApp::spawn_without_consumer().await;
    let doc: Value = app.get_json("/api/v1/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let versioned = routes_in_router_source("api_routes");
    assert!(versioned.len() >= 12, "{versioned:?}");
    let top_level: Vec<_> = routes_in_router_source("router")
        .into_iter()
        // The probe aliases every binary answers; documented once under /api/v1/health.
        .filter(|(_, path)| !path.starts_with("/health") && path != "/ready")
        .collect();
    assert!(top_level.len() >= 2, "{top_level:?}");
    let documented = versioned
        .into_iter()
        .map(|(method, path)| (method, format!("/api/v1{path}")))
        .chain(top_level);
    for (method, path) in documented {
        assert!(
            doc["paths"][&path][&method].is_object(),
            "{method} {path} is served but not documented"
        );
        let concrete = path.replace("{email}", "someone@example.com");
        let request = match method.as_str() {
            "post" => app
                .http
                .post(app.url(&concrete))
                .json(&serde_json::json!({})),
            _ => app.http.get(app.url(&concrete)),
        };
        let response = request.send().await.unwrap();
        if response.status() == 404 {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_ne!(
                body["error"]["message"], "No such route",
                "{method} {path} not served"
            );
        }
    }
    let unversioned = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|p| {
            !p.starts_with("/api/v1/")
                && !["/metrics", "/.well-known/jwks.json"].contains(&p.as_str())
        })
        .collect::<Vec<_>>();
    assert!(
        unversioned.is_empty(),
        "documented outside /api/v1: {unversioned:?}"
    );
    let docs = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    let html = docs.text().await.unwrap();
    assert!(html.to_lowercase().contains("swagger"), "Swagger UI served");
    let asset = app
        .http
        .get(app.url("/docs/swagger-ui.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        asset.status(),
        200,
        "assets are vendored, not fetched from a CDN"
    );
}

/// Makes every object schema of the document closed (`additionalProperties: false`), so a
/// field on the wire that the document does not name fails validation too.
fn close_objects(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            map.values_mut().for_each(close_objects);
        }
        Value::Array(items) => items.iter_mut().for_each(close_objects),
        _ => {}
    }
}

/// Checks a real answer against the schema the document gives for this path, method
/// and status.
fn assert_matches_document(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    // The document lists the canonical paths; the calls below use the /api aliases too.
    let path = &registrar_api::versioning::successor(path).unwrap_or_else(|| path.to_owned());
    let schema_ref = &doc["paths"][path][method]["responses"][status.to_string()]["content"]
        ["application/json"]["schema"]["$ref"];
    let schema_ref = schema_ref
        .as_str()
        .unwrap_or_else(|| panic!("{method} {path} {status}: no documented JSON schema"));
    let mut components = doc["components"].clone();
    close_objects(&mut components);
    let schema = serde_json::json!({ "$ref": schema_ref, "components": components });
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not match {schema_ref}: {errors:?}\n{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documented_response_schemas_match_what_real_calls_return() {
    use reqwest::Method;
    let app = TestApp::spawn().await;
    let doc: Value = app.get_json("/api/openapi.json").await;
    let check = |method: &str, path: &str, status: u16, body: &Value| {
        assert_matches_document(&doc, method, path, status, body)
    };

    let (email, _, body) = registration_body();
    let accepted = app.post_registration(&body).await;
    assert_eq!(accepted.status(), 202);
    check("post", "/api/users", 202, &accepted.json().await.unwrap());
    let status: Value = app.get_status(&email).await.json().await.unwrap();
    check("get", "/api/users/{id}", 200, &status);
    let invalid = app
        .post_registration(&serde_json::json!({ "email": "nope" }))
        .await;
    assert_eq!(invalid.status(), 400);
    check("post", "/api/users", 400, &invalid.json().await.unwrap());

    let admin = app.account_with_role("admin").await;
    let token = Some(admin.access.as_str());
    let (status, _, me) = app.call(Method::GET, "/api/auth/me", token, None).await;
    check("get", "/api/auth/me", status, &me);
    let (status, _, list) = app.call(Method::GET, "/api/users", token, None).await;
    check("get", "/api/users", status, &list);
    let audit_path = format!("/api/users/{}/audit", admin.id);
    let (status, _, audit) = app.call(Method::GET, &audit_path, token, None).await;
    check("get", "/api/users/{id}/audit", status, &audit);
    let item = serde_json::json!({ "key": "theme", "value": { "mode": "dark" } });
    let (status, _, created) = app
        .call(Method::POST, "/api/data", token, Some(&item))
        .await;
    check("post", "/api/data", status, &created);
    let (status, _, items) = app.call(Method::GET, "/api/data", token, None).await;
    check("get", "/api/data", status, &items);
    let export_path = format!("/api/users/{}/export", admin.id);
    let (status, _, export) = app.call(Method::GET, &export_path, token, None).await;
    check("get", "/api/users/{id}/export", status, &export);
    let login = serde_json::json!({ "email": admin.email, "password": admin.password });
    let (status, _, tokens) = app
        .call(Method::POST, "/api/auth/login", None, Some(&login))
        .await;
    check("post", "/api/auth/login", status, &tokens);
    let (status, _, deleted) = app
        .call(Method::DELETE, "/api/data/theme", token, None)
        .await;
    check("delete", "/api/data/{key}", status, &deleted);
    let (status, _, health) = app.call(Method::GET, "/api/health", None, None).await;
    check("get", "/api/health", status, &health);

    // The compatibility routes answer what they document.
    let compat = serde_json::json!({
        "fullName": "Grace Hopper", "gender": "female", "username": format!("g{}", &admin.id.simple().to_string()[..8]),
        "email": format!("compat.{}@example.com", admin.id.simple()), "password": "correct horse battery staple"
    });
    let (status, _, accepted) = app
        .call(Method::POST, "/api/v1/register", None, Some(&compat))
        .await;
    assert_eq!(status, 202, "{accepted}");
    check("post", "/api/v1/register", status, &accepted);
    let (status, _, granted) = app
        .call(Method::POST, "/api/v1/token", None, Some(&login))
        .await;
    check("post", "/api/v1/token", status, &granted);
}
