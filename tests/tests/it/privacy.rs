//! What the api keeps from whom: staff addresses are not shown to the user they acted
//! on, staff reads are audited, and erasure reaches Redis too.

use registrar_tests::{registration_body, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

async fn call_as(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    agent: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(method, app.url(path))
        .bearer_auth(token)
        .header("user-agent", agent);
    if let Some(b) = body {
        request = request.json(b);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_sees_that_staff_acted_but_not_from_where_and_staff_reads_are_audited() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let admin = app.account_with_role("admin").await;
    let moderator = app.account_with_role("moderator").await;
    let path = format!("/api/users/{}", user.id);
    let change = json!({ "occupation": "Astronomer" });
    let (status, _) = call_as(
        &app,
        Method::PATCH,
        &path,
        &admin.access,
        "staff-console/1",
        Some(&change),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call_as(
        &app,
        Method::GET,
        &path,
        &moderator.access,
        "mod-tool/2",
        None,
    )
    .await;
    assert_eq!(status, 200);

    let audit_path = format!("/api/users/{}/audit?limit=100", user.id);
    let (_, own) = call_as(&app, Method::GET, &audit_path, &user.access, "me", None).await;
    let rows = own["data"].as_array().unwrap();
    let by = |action: &str, actor: uuid::Uuid| {
        rows.iter()
            .find(|r| r["action"] == action && r["actorId"] == actor.to_string())
            .unwrap_or_else(|| panic!("no {action} by {actor} in {own}"))
            .clone()
    };
    let update = by("user.updated", admin.id);
    assert!(
        update["ip"].is_null() && update["userAgent"].is_null(),
        "{update}"
    );
    let viewed = by("user.viewed", moderator.id);
    assert!(viewed["userAgent"].is_null(), "{viewed}");
    let (_, export) = call_as(
        &app,
        Method::GET,
        &format!("/api/users/{}/export", user.id),
        &user.access,
        "me",
        None,
    )
    .await;
    assert!(!export.to_string().contains("staff-console"), "{export}");

    let (_, seen_by_admin) = call_as(
        &app,
        Method::GET,
        &audit_path,
        &admin.access,
        "staff-console/1",
        None,
    )
    .await;
    assert!(
        seen_by_admin.to_string().contains("mod-tool/2"),
        "admins see every detail"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_removes_the_emails_status_login_attempts_and_idempotency_answers_from_redis() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let (email, password, body) = registration_body();
    let response = app
        .post_registration_to("/api/users", &[("idempotency-key", "erase-me-key")], &body)
        .await;
    assert_eq!(response.status(), 202);
    app.wait_for_status(&email, "completed", std::time::Duration::from_secs(30))
        .await;
    assert_eq!(app.login(&email, "not the password").await.0, 401);
    let (_, me) = app.login(&email, &password).await;
    let token = me["accessToken"].as_str().unwrap().to_owned();
    let user_id = app.jwt_keys().verify(&token).unwrap().sub;
    assert_eq!(app.login(&email, "wrong again").await.0, 401);
    assert!(app.redis_keys().await.iter().any(|k| k.contains(&email)));

    let scans_before = scan_calls(&app).await;
    let path = format!("/api/users/{user_id}?erase=true");
    let (status, _) = call_as(&app, Method::DELETE, &path, &admin.access, "console", None).await;
    assert_eq!(status, 200);
    // Erasure finds the keys through their indexes: a SCAN over a production keyspace of
    // millions of keys ran out of time and left the login attempts behind.
    assert_eq!(
        scan_calls(&app).await,
        scans_before,
        "erasure scanned the keyspace"
    );
    let left: Vec<String> = app
        .redis_keys()
        .await
        .into_iter()
        .filter(|k| k.contains(&email) || k.contains("erase-me-key"))
        .collect();
    assert!(left.is_empty(), "left in Redis after erasure: {left:?}");
}

/// How many SCAN commands the Redis server has run (INFO commandstats).
async fn scan_calls(app: &TestApp) -> u64 {
    let mut conn = app.redis_conn().await;
    let info: String = deadpool_redis::redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_scan:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
