//! Abuse a client can try that must end in a clear 4xx (or a harmless replacement),
//! never in a 503 or in stored garbage.

use registrar_tests::TestApp;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

async fn status_and_code(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let (status, _, body) = app.call(method, path, Some(token), body).await;
    (status, body["error"]["code"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_in_paths_queries_and_json_are_a_400_not_a_503() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let token = admin.access.as_str();
    let value_with_nul = json!({ "key": "k", "value": { "text": "a\u{0}b" } });
    let key_with_nul = json!({ "key": "a\u{0}b", "value": 1 });
    let cases: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/data/a%00b".into(), None),
        (
            Method::PUT,
            "/api/data/a%00b".into(),
            Some(json!({ "value": 1 })),
        ),
        (Method::DELETE, "/api/data/a%00b".into(), None),
        (Method::GET, "/api/data?cursor=a%00b".into(), None),
        (Method::GET, "/api/users?q=a%00b".into(), None),
        (Method::GET, "/api/users/a%00b@example.com".into(), None),
        (Method::POST, "/api/data".into(), Some(value_with_nul)),
        (Method::POST, "/api/data".into(), Some(key_with_nul)),
        (
            Method::PATCH,
            format!("/api/users/{}", admin.id),
            Some(json!({ "occupation": "x\u{0}y" })),
        ),
    ];
    for (method, path, body) in cases {
        let (status, code) =
            status_and_code(&app, method.clone(), &path, token, body.as_ref()).await;
        assert_eq!(
            (status, code.as_str()),
            (400, Some("VALIDATION_ERROR")),
            "{method} {path}"
        );
    }
    let (status, _, items) = app.call(Method::GET, "/api/data", Some(token), None).await;
    assert_eq!(
        (status, items["count"].as_u64()),
        (200, Some(0)),
        "nothing stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_or_odd_request_id_is_replaced_and_a_tidy_one_kept() {
    let app = TestApp::spawn_without_consumer().await;
    let send = |id: String| {
        let request = app
            .http
            .get(app.url("/api/health/live"))
            .header("x-request-id", id);
        async move { request.send().await.unwrap() }
    };
    let echoed = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let tidy = "req-42.a_b:c".to_owned();
    assert_eq!(echoed(&send(tidy.clone()).await), tidy);
    for odd in ["x".repeat(129), "a b".into(), "<script>".into(), "ü".into()] {
        let replaced = echoed(&send(odd.clone()).await);
        assert_ne!(replaced, odd);
        assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "{replaced}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_methods_are_one_metric_label_and_health_probes_share_one_check() {
    let app = TestApp::spawn_without_consumer().await;
    for name in ["FOOBAR", "BAZ1", "QUUX2"] {
        let method = Method::from_bytes(name.as_bytes()).unwrap();
        let response = app
            .http
            .request(method, app.url("/api/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
    }
    let probes = (0..20).map(|_| app.http.get(app.url("/api/health")).send());
    for response in futures::future::join_all(probes).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    let metrics = app.api_metrics().await;
    assert!(!metrics.contains("FOOBAR") && !metrics.contains("QUUX2"));
    assert!(metrics.contains("method=\"other\""), "{metrics}");
    let checks: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("registrar_health_checks_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(checks <= 2.0, "20 probes ran {checks} dependency checks");
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let (status, _, body) = app.call(Method::GET, path, None, None).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_polling_needs_the_registration_id_and_cannot_tell_whether_an_email_has_an_account(
) {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let location = app.locations.lock().unwrap()[&user.email].clone();
    let unknown = get(&app, "/api/users/nobody.here@example.com").await;
    assert_eq!(unknown.0, 404);
    assert_eq!(
        get(&app, &format!("/api/users/{}", user.email)).await,
        unknown
    );
    let wrong = format!(
        "/api/users/{}?registrationId={}",
        user.email,
        uuid::Uuid::now_v7()
    );
    assert_eq!(get(&app, &wrong).await, unknown);
    let (status, body) = get(&app, &location).await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("completed"))
    );
    assert!(
        body["data"].get("user").is_none(),
        "no profile without a token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_opt_in_setting_an_anonymous_poll_without_the_id_sees_the_latest_registration() {
    let app = TestApp::spawn_with(registrar_tests::TestOptions {
        api_args: vec!["--poll-without-registration-id".into(), "true".into()],
        ..Default::default()
    })
    .await;
    let user = app.register_and_login().await;
    let (status, body) = get(&app, &format!("/api/users/{}", user.email)).await;
    assert_eq!(
        (status, body["data"]["status"].as_str()),
        (200, Some("completed")),
        "{body}"
    );
    assert!(body["data"].get("user").is_none(), "still no profile");
    let unknown = get(&app, "/api/users/nobody.here@example.com").await;
    assert_eq!(unknown.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_someone_elses_email_does_not_change_what_the_first_registrant_sees() {
    let app = TestApp::spawn().await;
    let victim = app.register_and_login().await;
    let victims_location = app.locations.lock().unwrap()[&victim.email].clone();
    let (_, _, mut body) = registrar_tests::registration_body();
    body["email"] = victim.email.clone().into();
    let response = app.post_registration(&body).await;
    assert_eq!(response.status(), 202);
    registrar_tests::wait_for_mails(
        &victim.email,
        "Someone tried to register",
        1,
        Duration::from_secs(30),
    )
    .await;
    let seen = app
        .wait_for_status(&victim.email, "completed", Duration::from_secs(30))
        .await;
    assert!(seen["data"].get("reason").is_none(), "neutral: {seen}");
    let (status, seen) = get(&app, &victims_location).await;
    assert_eq!(
        (status, seen["data"]["status"].as_str()),
        (200, Some("completed"))
    );
}

fn from(app: &TestApp, method: Method, path: &str, client_ip: &str) -> reqwest::RequestBuilder {
    app.http
        .request(method, app.url(path))
        .header("x-forwarded-for", client_ip)
}

async fn login_from(app: &TestApp, email: &str, password: &str, client_ip: &str) -> u16 {
    from(app, Method::POST, "/api/auth/login", client_ip)
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attacker_locking_an_account_from_one_address_does_not_lock_out_its_owner() {
    let app = TestApp::spawn_with(registrar_tests::TestOptions {
        api_args: vec!["--trusted-proxies".into(), "127.0.0.1".into()],
        ..Default::default()
    })
    .await;
    let user = app.register_and_login().await;
    let mut last = 0;
    for _ in 0..6 {
        last = login_from(&app, &user.email, "guessing wrong", "203.0.113.66").await;
    }
    assert_eq!(last, 429, "the attacker's address is locked out");
    assert_eq!(
        login_from(&app, &user.email, &user.password, "198.51.100.7").await,
        200,
        "the owner, elsewhere, is not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_password_guesses_count_towards_the_lockout() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let path = format!("/api/users/{}", user.id);
    let guess = json!({ "password": "a brand new password", "currentPassword": "a wrong guess" });
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, _, _) = app
            .call(Method::PATCH, &path, Some(&user.access), Some(&guess))
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [400, 400, 400, 400, 400, 429]);
    // The lock covers logins from the same address too.
    assert_eq!(app.login(&user.email, &user.password).await.0, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profile_changes_share_the_per_address_auth_rate_limit() {
    let app = TestApp::spawn_with(registrar_tests::TestOptions {
        api_args: vec![
            "--auth-rate-limit-per-minute".into(),
            "1".into(),
            "--auth-rate-limit-burst".into(),
            "3".into(),
        ],
        ..Default::default()
    })
    .await;
    // Registration and login take two of the three.
    let user = app.register_and_login().await;
    let path = format!("/api/users/{}", user.id);
    let change = json!({ "occupation": "Cartographer" });
    let (status, _, _) = app
        .call(Method::PATCH, &path, Some(&user.access), Some(&change))
        .await;
    assert_eq!(status, 200);
    let (status, _, body) = app
        .call(Method::PATCH, &path, Some(&user.access), Some(&change))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("RATE_LIMITED"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_and_common_passwords_are_refused_at_registration_and_on_change() {
    let app = TestApp::spawn_without_consumer().await;
    for password in ["elevenchars", "password1234", "Qwertyuiop123"] {
        let (_, _, mut body) = registrar_tests::registration_body();
        body["password"] = password.into();
        let response = app.post_registration(&body).await;
        assert_eq!(response.status(), 400, "{password}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["error"]["details"][0]["field"], "password");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_ones_own_email_needs_the_current_password() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let path = format!("/api/users/{}", user.id);
    let moved = format!("moved.{}", user.email);
    let (status, _, body) = app
        .call(
            Method::PATCH,
            &path,
            Some(&user.access),
            Some(&json!({ "email": moved })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["details"][0]["field"].as_str()),
        (400, Some("currentPassword"))
    );
    let wrong = json!({ "email": moved, "currentPassword": "not my password" });
    let (status, _, _) = app
        .call(Method::PATCH, &path, Some(&user.access), Some(&wrong))
        .await;
    assert_eq!(status, 400);
    let right = json!({ "email": moved, "currentPassword": user.password });
    let (status, _, body) = app
        .call(Method::PATCH, &path, Some(&user.access), Some(&right))
        .await;
    // Accepted: the new address waits for its verification link.
    assert_eq!(
        (status, body["data"]["pendingEmail"].as_str()),
        (200, Some(moved.as_str()))
    );
    assert_eq!(body["data"]["email"], user.email.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_admin_can_be_neither_demoted_nor_deleted() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let path = format!("/api/users/{}", admin.id);
    let demote = json!({ "role": "user" });
    let (status, _, body) = app
        .call(Method::PATCH, &path, Some(&admin.access), Some(&demote))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("LAST_ADMIN"))
    );
    let confirm = json!({ "currentPassword": admin.password });
    let (status, _, body) = app
        .call(Method::DELETE, &path, Some(&admin.access), Some(&confirm))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("LAST_ADMIN"))
    );
    // With a second admin, the first may step down.
    let _second = app.account_with_role("admin").await;
    let (status, _, body) = app
        .call(Method::PATCH, &path, Some(&admin.access), Some(&demote))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_quota_bounds_items_and_bytes_and_a_refused_write_changes_nothing() {
    let app = TestApp::spawn_with(registrar_tests::TestOptions {
        api_args: vec![
            "--data-max-items".into(),
            "3".into(),
            "--data-max-bytes".into(),
            "100000".into(),
        ],
        ..Default::default()
    })
    .await;
    let user = app.register_and_login().await;
    let token = Some(user.access.as_str());
    for key in ["a", "b", "c"] {
        let item = json!({ "key": key, "value": 1 });
        assert_eq!(
            app.call(Method::POST, "/api/data", token, Some(&item))
                .await
                .0,
            201
        );
    }
    let fourth = json!({ "key": "d", "value": 1 });
    let (status, _, body) = app
        .call(Method::POST, "/api/data", token, Some(&fourth))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("DATA_QUOTA_EXCEEDED"))
    );
    // Bytes: two 60 KB values do not fit in 100 000 bytes.
    let big = json!({ "value": "x".repeat(60_000) });
    assert_eq!(
        app.call(Method::PUT, "/api/data/a", token, Some(&big))
            .await
            .0,
        200
    );
    let (status, _, _) = app
        .call(Method::PUT, "/api/data/b", token, Some(&big))
        .await;
    assert_eq!(status, 409);
    let (_, _, b) = app.call(Method::GET, "/api/data/b", token, None).await;
    assert_eq!(b["data"]["value"], 1, "the refused write changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_page_is_bounded_in_bytes_and_an_export_in_audit_entries() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let token = Some(user.access.as_str());
    for i in 0..6 {
        let item = json!({ "key": format!("k{i}"), "value": "v".repeat(60_000) });
        assert_eq!(
            app.call(Method::POST, "/api/data", token, Some(&item))
                .await
                .0,
            201
        );
    }
    let (_, _, page) = app
        .call(Method::GET, "/api/data?limit=100", token, None)
        .await;
    assert_eq!(page["count"], 4, "256 KiB hold four 60 KB values");
    let next = page["pagination"]["nextCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, _, rest) = app
        .call(
            Method::GET,
            &format!("/api/data?limit=100&cursor={next}"),
            token,
            None,
        )
        .await;
    assert_eq!(rest["count"], 2);
    assert!(rest["pagination"]["nextCursor"].is_null());

    app.pg()
        .await
        .execute(
            "INSERT INTO user_audit_log (user_id, action, actor_id, details)
             SELECT $1, 'test.filler', $1, '{}'::jsonb FROM generate_series(1, 1200)",
            &[&user.id],
        )
        .await
        .unwrap();
    let export_path = format!("/api/users/{}/export", user.id);
    let (status, _, export) = app.call(Method::GET, &export_path, token, None).await;
    assert_eq!(status, 200);
    assert_eq!(export["data"]["audit"].as_array().unwrap().len(), 1000);
    let cursor = export["data"]["auditNextCursor"].as_str().unwrap();
    let (_, _, older) = app
        .call(
            Method::GET,
            &format!("/api/users/{}/audit?limit=100&cursor={cursor}", user.id),
            token,
            None,
        )
        .await;
    assert_eq!(
        older["count"], 100,
        "the export says where the trail goes on"
    );
}
