//! The operators' console and the admin routes behind it: a user's sessions,
//! verification, filters, registrations in flight, dead letters, imports' history, the
//! live pipeline and the console's static assets.

use std::time::Duration;

use registrar_tests::{registration_body, wait_until, TestApp, TestOptions};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_ends_a_users_session_and_its_token_stops_working_audited_with_the_admin() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let moderator = app.account_with_role("moderator").await;
    let user = app.register_and_login().await;
    let path = format!("/api/v1/users/{}/sessions", user.id);
    let (status, _, list) = app
        .call(Method::GET, &path, Some(&admin.access), None)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["count"], 1);
    let session = list["data"][0]["id"].as_str().unwrap().to_owned();
    // The user view's passkeys and linked accounts: admins only, empty here.
    for what in ["passkeys", "identities"] {
        let path = format!("/api/v1/users/{}/{what}", user.id);
        let (status, _, body) = app
            .call(Method::GET, &path, Some(&admin.access), None)
            .await;
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(body["data"], json!([]), "{what}");
        let (status, _, _) = app
            .call(Method::GET, &path, Some(&moderator.access), None)
            .await;
        assert_eq!(status, 403, "{what} for a moderator");
        let (status, _, _) = app
            .call(
                Method::GET,
                &format!("/api/v1/users/{}/{what}", Uuid::new_v4()),
                Some(&admin.access),
                None,
            )
            .await;
        assert_eq!(status, 404, "{what} of nobody");
    }
    for (who, token) in [
        ("a moderator", &moderator.access),
        ("the user", &user.access),
    ] {
        let (status, _, _) = app.call(Method::GET, &path, Some(token), None).await;
        assert_eq!(status, 403, "{who} cannot list another's sessions here");
    }
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("{path}/{session}"),
            Some(&moderator.access),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _, body) = app
        .call(
            Method::DELETE,
            &format!("{path}/not-a-uuid"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("{path}/{}", Uuid::new_v4()),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&user.access), None)
        .await;
    assert_eq!(status, 200, "refusals changed nothing");

    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("{path}/{session}"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&user.access), None)
        .await;
    assert_eq!(status, 401, "the ended session's access token is refused");
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({ "refreshToken": user.refresh })),
        )
        .await;
    assert_eq!(status, 401, "and so is its refresh token");
    let (_, _, audit) = app
        .call(
            Method::GET,
            &format!("/api/v1/users/{}/audit", user.id),
            Some(&admin.access),
            None,
        )
        .await;
    let ended = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "auth.session_ended")
        .unwrap_or_else(|| panic!("no audit row: {audit}"));
    assert_eq!(ended["actorId"], json!(admin.id.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_filtered_by_verified_address_second_factor_and_status() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let moderator = app.account_with_role("moderator").await;
    let verified = app.register_and_login().await;
    let unverified = app.register_and_login().await;
    let deleted = app.register_and_login().await;
    let verify = format!("/api/v1/users/{}/verify-email", verified.id);
    let (status, _, _) = app
        .call(Method::POST, &verify, Some(&moderator.access), None)
        .await;
    assert_eq!(status, 403, "moderators do not verify addresses");
    for _ in 0..2 {
        let (status, _, body) = app
            .call(Method::POST, &verify, Some(&admin.access), None)
            .await;
        assert_eq!(status, 200, "verifying is idempotent: {body}");
    }
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{}", deleted.id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 200);

    let emails = |list: &Value| -> Vec<String> {
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |query: &'static str, token: String| {
        let app = &app;
        async move {
            app.call(
                Method::GET,
                &format!("/api/v1/users?limit=100&{query}"),
                Some(&token),
                None,
            )
            .await
        }
    };
    let (_, _, yes) = list("verified=true", moderator.access.clone()).await;
    assert!(emails(&yes).contains(&verified.email));
    assert!(!emails(&yes).contains(&unverified.email));
    let (_, _, no) = list("verified=false", moderator.access.clone()).await;
    assert!(emails(&no).contains(&unverified.email));
    assert!(!emails(&no).contains(&verified.email));
    let (_, _, with_mfa) = list("mfa=true", admin.access.clone()).await;
    assert!(emails(&with_mfa).is_empty(), "nobody has a second factor");
    let (_, _, without) = list("mfa=false", admin.access.clone()).await;
    assert!(emails(&without).contains(&verified.email));
    let (_, _, gone) = list("status=deleted", admin.access.clone()).await;
    assert_eq!(emails(&gone).len(), 1);
    assert!(gone["data"][0]["deletedAt"].is_string());
    let (_, _, live) = list("status=active", admin.access.clone()).await;
    assert!(!live["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["id"] == json!(deleted.id.to_string())));
    let (status, _, _) = list("status=deleted", moderator.access.clone()).await;
    assert_eq!(status, 403, "deleted users are for admins");
    let (status, _, body) = list("status=gone", admin.access.clone()).await;
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = list("verified=perhaps", admin.access.clone()).await;
    assert_eq!(status, 400);

    let (_, _, audit) = app
        .call(
            Method::GET,
            &format!("/api/v1/users/{}/audit", verified.id),
            Some(&admin.access),
            None,
        )
        .await;
    let rows: Vec<&Value> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "user.email_verified")
        .collect();
    assert_eq!(rows.len(), 1, "verified once: {audit}");
    assert_eq!(rows[0]["actorId"], json!(admin.id.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_in_flight_show_pending_ones_failures_by_reason_and_find_one() {
    let app = TestApp::spawn_without_consumer().await;
    // Accounts come from the database: the consumer is not running.
    let admin = app.account_with_role_in_database("admin").await;
    let (email, _, body) = registration_body();
    let response = app.post_registration(&body).await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.unwrap();
    let id = accepted["data"]["registrationId"]
        .as_str()
        .unwrap()
        .to_owned();
    let failed_email = format!("failed.{}@example.com", Uuid::new_v4().simple());
    let mut redis = app.redis_conn().await;
    let _: () = deadpool_redis::redis::cmd("SET")
        .arg(format!("{}user:failed:{failed_email}", app.keys().prefix()))
        .arg(
            json!({ "registrationId": Uuid::new_v4(), "atMs": 1, "reason": "EMAIL_TAKEN" })
                .to_string(),
        )
        .query_async(&mut redis)
        .await
        .unwrap();

    let (status, _, all) = app
        .call(
            Method::GET,
            "/api/v1/admin/registrations",
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["pendingTotal"], 1);
    assert_eq!(all["pending"][0]["email"], json!(email));
    assert_eq!(all["pending"][0]["registrationId"], json!(id));
    assert_eq!(all["failedByReason"], json!({ "EMAIL_TAKEN": 1 }));
    assert_eq!(all["failed"][0]["reason"], "EMAIL_TAKEN");
    assert_eq!(all["complete"], true);

    for q in [email.clone(), id.clone()] {
        let (status, _, found) = app
            .call(
                Method::GET,
                &format!("/api/v1/admin/registrations?q={}", urlencoding(&q)),
                Some(&admin.access),
                None,
            )
            .await;
        assert_eq!(status, 200, "{found}");
        assert_eq!(
            found["matches"].as_array().unwrap().len(),
            1,
            "{q}: {found}"
        );
        assert_eq!(found["matches"][0]["status"], "pending");
    }
    let (status, _, body) = app
        .call(
            Method::GET,
            "/api/v1/admin/registrations?q=neither",
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let user = app.account_with_role_in_database("user").await;
    let (status, _, _) = app
        .call(
            Method::GET,
            "/api/v1/admin/registrations",
            Some(&user.access),
            None,
        )
        .await;
    assert_eq!(status, 403);
}

async fn replay(
    app: &TestApp,
    token: &str,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    app.call(
        Method::POST,
        "/api/v1/admin/dead-letters/replay",
        Some(token),
        Some(&body),
    )
    .await
}

fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_shown_without_its_credential_and_replayed_after_a_dry_run() {
    let mut app = TestApp::spawn_without_consumer().await;
    let admin = app.account_with_role_in_database("admin").await;
    // A consumer without the api's sealing key: the password cannot be opened.
    let (other, _) = common::events::seal::generate_key_pair();
    let base_args = app.consumer_args.clone();
    app.consumer_args.extend([
        "--seal-private-keys".to_owned(),
        format!("elsewhere:{}", other.as_str()),
    ]);
    app.start_consumer().await;
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    let list = || {
        let app = &app;
        let token = admin.access.clone();
        async move {
            app.call(
                Method::GET,
                "/api/v1/admin/dead-letters",
                Some(&token),
                None,
            )
            .await
            .2
        }
    };
    wait_until("the dead letter", || async {
        list().await["count"].as_u64() == Some(1)
    })
    .await;
    let letters = list().await;
    let letter = &letters["data"][0];
    assert_eq!(letters["total"], 1);
    assert_eq!(letter["kind"], "credential");
    assert_eq!(letter["registration"]["email"], json!(email));
    assert_eq!(letter["registration"]["credential"], "sealed-password");
    let text = letters.to_string();
    assert!(
        !text.contains("ciphertext") && !text.contains("encapsulated"),
        "{text}"
    );
    let signature = letter["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "registrar-signature")
        .unwrap();
    assert!(
        signature["value"].as_str().unwrap().ends_with(".…"),
        "the MAC is not shown: {signature}"
    );
    let position = letter["position"].as_str().unwrap().to_owned();
    let (status, _, one) = app
        .call(
            Method::GET,
            &format!("/api/v1/admin/dead-letters/{position}"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(one["data"]["position"], json!(position));
    for (path, expected) in [("x", 400), ("0:999999", 404)] {
        let (status, _, _) = app
            .call(
                Method::GET,
                &format!("/api/v1/admin/dead-letters/{path}"),
                Some(&admin.access),
                None,
            )
            .await;
        assert_eq!(status, expected, "{path}");
    }
    let (status, _, body) = replay(&app, &admin.access, json!({ "dryRun": true })).await;
    assert_eq!(status, 400, "neither positions nor all: {body}");
    let (status, _, body) = replay(&app, &admin.access, json!({ "positions": ["nowhere"] })).await;
    assert_eq!(status, 400, "{body}");
    let user = app.account_with_role_in_database("user").await;
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/admin/dead-letters/replay",
            Some(&user.access),
            Some(&json!({ "all": true })),
        )
        .await;
    assert_eq!(status, 403);

    // The cause is fixed: the consumer gets its key back.
    app.stop_consumer().await;
    app.consumer_args = base_args;
    app.start_consumer().await;
    let users = app.user_count().await;
    let (status, _, dry) = replay(
        &app,
        &admin.access,
        json!({ "positions": [position], "dryRun": true }),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["replayed"], json!([position]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.user_count().await, users, "a dry run sends nothing");
    let (status, _, done) = replay(
        &app,
        &admin.access,
        json!({ "all": true, "kind": "credential" }),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["replayed"], json!([position]));
    app.wait_for_status(&email, "completed", Duration::from_secs(30))
        .await;
    let (_, _, again) = replay(&app, &admin.access, json!({ "positions": [position] })).await;
    assert_eq!(again["replayed"], json!([position]));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        app.user_count().await,
        users + 1,
        "replayed twice, persisted once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_stream_sends_a_sample_each_second_with_the_lag_of_each_partition() {
    let app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        // Nobody listens there: the consumer's figures are null, never a failure.
        api_args: vec![
            "--consumer-metrics-urls".to_owned(),
            "http://127.0.0.1:9/metrics".to_owned(),
        ],
        ..Default::default()
    })
    .await;
    let admin = app.account_with_role_in_database("admin").await;
    let moderator = app.account_with_role_in_database("moderator").await;
    for _ in 0..3 {
        let (_, _, body) = registration_body();
        assert_eq!(app.post_registration(&body).await.status(), 202);
    }
    let (status, _, _) = app
        .call(
            Method::GET,
            "/api/v1/admin/pipeline",
            Some(&moderator.access),
            None,
        )
        .await;
    assert_eq!(status, 403);
    let response = app
        .http
        .get(app.url("/api/v1/admin/pipeline/stream"))
        .bearer_auth(&moderator.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    let response = app
        .http
        .get(app.url("/api/v1/admin/pipeline/stream"))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "{:?}",
        response.headers()
    );
    let mut response = response;
    let mut buffer = String::new();
    let mut samples: Vec<Value> = Vec::new();
    let started = tokio::time::Instant::now();
    while samples.len() < 10 && started.elapsed() < Duration::from_secs(20) {
        let Some(chunk) = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .expect("a sample within 5 s")
            .unwrap()
        else {
            break;
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
                samples.push(serde_json::from_str(data.trim()).unwrap());
            }
        }
        if samples.last().is_some_and(|s| s["totalLag"] == 3) {
            break;
        }
    }
    let last = samples.last().expect("samples");
    assert_eq!(last["totalLag"], 3, "nobody consumes: {samples:?}");
    assert_eq!(
        last["lag"].as_array().unwrap().len(),
        2,
        "one entry per partition"
    );
    assert_eq!(last["consumersRead"], 0);
    assert_eq!(last["consumersConfigured"], 1);
    assert!(last["persistedPerSec"].is_null());
    assert!(samples.len() < 2 || samples[1]["at"].as_i64() > samples[0]["at"].as_i64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_import_history_lists_imports_newest_first_page_by_page() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let mut ids = Vec::new();
    for n in 0..2 {
        let line = json!({ "email": format!("history.{n}.{}@example.com", Uuid::new_v4().simple()),
                           "firstName": "Ada", "lastName": "Lovelace", "password": "import password 2026" });
        let response = app
            .http
            .post(app.url("/api/v1/admin/imports"))
            .bearer_auth(&admin.access)
            .header("content-type", "application/x-ndjson")
            .body(format!("{line}\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = response.json().await.unwrap();
        ids.push(body["importId"].as_str().unwrap().to_owned());
    }
    let (status, _, first) = app
        .call(
            Method::GET,
            "/api/v1/admin/imports?limit=1",
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["data"][0]["importId"], json!(ids[1]));
    assert_eq!(first["data"][0]["lines"], 1);
    assert_eq!(first["nextBefore"], json!(ids[1]));
    let (_, _, second) = app
        .call(
            Method::GET,
            &format!("/api/v1/admin/imports?limit=1&before={}", ids[1]),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(second["data"][0]["importId"], json!(ids[0]));
    assert!(second["nextBefore"].is_null());
    for (query, expected) in [("limit=0", 400), ("before=nope", 400)] {
        let (status, _, _) = app
            .call(
                Method::GET,
                &format!("/api/v1/admin/imports?{query}"),
                Some(&admin.access),
                None,
            )
            .await;
        assert_eq!(status, expected, "{query}");
    }
    let moderator = app.account_with_role("moderator").await;
    let (status, _, _) = app
        .call(
            Method::GET,
            "/api/v1/admin/imports",
            Some(&moderator.access),
            None,
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_under_a_strict_csp_and_names_a_missing_build() {
    let dir = std::env::temp_dir().join(format!("registrar-console-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>console marker</title>",
    )
    .unwrap();
    std::fs::write(dir.join("main.js"), "export {};").unwrap();
    let app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        api_args: vec!["--console-dir".to_owned(), dir.display().to_string()],
        ..Default::default()
    })
    .await;
    for path in ["/console/", "/console"] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(csp, registrar_api::routes::console::CONSOLE_CSP);
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        assert!(response.text().await.unwrap().contains("console marker"));
    }
    let script = app
        .http
        .get(app.url("/console/main.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    let missing = app
        .http
        .get(app.url("/console/nothing.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("make console"));
}
