//! Clients of every shape: the canonical `/api/v1` paths and their deprecated aliases,
//! the top-level probes, and the HTTP niceties (compression, `ETag`/304, caching).

use std::time::Duration;

use registrar_tests::{registration_body, TestApp};
use reqwest::Method;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alias_prefix_answers_like_v1_and_points_to_its_successor() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let me = |prefix: &'static str| {
        let app = &app;
        let token = account.access.clone();
        async move {
            app.call(
                Method::GET,
                &format!("{prefix}/auth/me"),
                Some(&token),
                None,
            )
            .await
        }
    };
    let (status, headers, canonical) = me("/api/v1").await;
    assert_eq!(status, 200, "{canonical}");
    assert!(!headers.contains_key("deprecation"), "v1 is not deprecated");
    for alias in ["/api", "/v1"] {
        let (status, headers, body) = me(alias).await;
        assert_eq!(status, 200, "{alias}: {body}");
        assert_eq!(body, canonical, "{alias} answers as v1 does");
        assert!(
            headers["deprecation"].to_str().unwrap().starts_with('@'),
            "RFC 9745 date"
        );
        assert_eq!(
            headers["link"], "</api/v1/auth/me>; rel=\"successor-version\"",
            "{alias}"
        );
    }
    // An error answered under an alias is the same envelope, marked the same way.
    let (status, headers, body) = app
        .call(Method::GET, "/v1/users/nobody@example.com", None, None)
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "NOT_FOUND");
    assert!(headers.contains_key("deprecation"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_top_level_probes_answer_like_the_consumers() {
    let app = TestApp::spawn_without_consumer().await;
    for path in [
        "/health",
        "/health/live",
        "/health/ready",
        "/ready",
        "/api/v1/health",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert!(!response.headers().contains_key("deprecation"), "{path}");
        let body: Value = response.json().await.unwrap();
        assert!(body.is_object(), "{path}: {body}");
    }
    let unknown = app.http.get(app.url("/api/v2/users")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_with_the_current_etag_in_if_none_match_is_a_304_without_body() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let path = format!("/api/v1/users/{}", account.id);
    let read = |if_none_match: Option<String>| {
        let mut request = app.http.get(app.url(&path)).bearer_auth(&account.access);
        if let Some(tag) = if_none_match {
            request = request.header("if-none-match", tag);
        }
        request.send()
    };
    let first = read(None).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "private, no-cache");
    let tag = first.headers()["etag"].to_str().unwrap().to_owned();
    let again = read(Some(tag.clone())).await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], tag.as_str());
    assert!(again.bytes().await.unwrap().is_empty(), "a 304 has no body");
    let listed = read(Some(format!("\"0\", W/{tag}"))).await.unwrap();
    assert_eq!(listed.status(), 304, "weak comparison, any tag of a list");

    let (status, _, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&account.access),
            Some(&serde_json::json!({ "occupation": "Analyst" })),
        )
        .await;
    assert_eq!(status, 200);
    let changed = read(Some(tag.clone())).await.unwrap();
    assert_eq!(changed.status(), 200, "a changed user is sent again");
    assert_ne!(changed.headers()["etag"], tag.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_without_a_version_get_a_weak_etag_from_their_body() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let list = || {
        app.http
            .get(app.url("/api/v1/data"))
            .bearer_auth(&account.access)
    };
    let first = list().send().await.unwrap();
    assert_eq!(first.status(), 200);
    let tag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(tag.starts_with("W/\""), "{tag}");
    let same = list().header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(same.status(), 304);
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/data",
            Some(&account.access),
            Some(&serde_json::json!({ "key": "theme", "value": "dark" })),
        )
        .await;
    assert_eq!(status, 201);
    let changed = list().header("if-none-match", &tag).send().await.unwrap();
    assert_eq!(changed.status(), 200);
    // Polling a pending or finished registration revalidates the same way.
    let poll = app.get_status(&account.email).await;
    assert_eq!(poll.status(), 200);
    assert!(poll.headers()["etag"].to_str().unwrap().starts_with("W/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answers_are_compressed_for_clients_that_accept_it_and_small_ones_are_not() {
    let app = TestApp::spawn_without_consumer().await;
    for encoding in ["gzip", "br"] {
        let response = app
            .http
            .get(app.url("/api/v1/openapi.json"))
            .header("accept-encoding", encoding)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-encoding"], encoding);
        assert_eq!(response.headers()["cache-control"], "public, max-age=300");
        let compressed = response.bytes().await.unwrap().len();
        let plain = app
            .http
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap();
        assert!(!plain.headers().contains_key("content-encoding"));
        let plain = plain.bytes().await.unwrap().len();
        assert!(
            compressed * 3 < plain,
            "{encoding}: {compressed} of {plain} bytes"
        );
    }
    let small = app
        .http
        .get(app.url("/health/live"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert!(!small.headers().contains_key("content-encoding"));
    assert_eq!(small.headers()["cache-control"], "no-store");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_answers_are_never_stored_and_public_keys_are() {
    let app = TestApp::spawn().await;
    let account = app.register_and_login().await;
    let (status, headers, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&serde_json::json!({ "email": account.email, "password": account.password })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "no-store");
    let jwks = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=300");
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_is_unique_case_insensitively_and_logs_in_like_the_email() {
    let app = TestApp::spawn().await;
    let name = unique("ada.");
    let (first_email, password, mut first) = registration_body();
    first["username"] = Value::from(name.to_uppercase());
    first.as_object_mut().unwrap().remove("sex");
    first.as_object_mut().unwrap().remove("occupation");
    assert_eq!(app.post_registration(&first).await.status(), 202);
    app.wait_for_status(&first_email, "completed", Duration::from_secs(30))
        .await;

    // The consumer refuses the same name in another case, as it refuses a taken email.
    let (second_email, _, mut second) = registration_body();
    second["username"] = Value::from(name.clone());
    assert_eq!(app.post_registration(&second).await.status(), 202);
    let failed = app
        .wait_for_status(&second_email, "failed", Duration::from_secs(30))
        .await;
    assert_eq!(failed["data"]["reason"], "USERNAME_TAKEN", "{failed}");

    let (status, tokens) = {
        let (status, _, body) = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(&serde_json::json!({ "username": name.to_uppercase(), "password": password })),
            )
            .await;
        (status, body)
    };
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["accessToken"].as_str().unwrap();
    let (_, _, me) = app
        .call(Method::GET, "/api/v1/auth/me", Some(access), None)
        .await;
    assert_eq!(me["data"]["username"], name.as_str());
    assert_eq!(
        me["data"]["sex"],
        Value::Null,
        "optional fields left out stay empty"
    );

    // A wrong password and an unknown username answer alike.
    for (username, pw) in [
        (name.as_str(), "wrong password 123"),
        ("nobody-here-x", password.as_str()),
    ] {
        let (status, _, body) = app
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(&serde_json::json!({ "username": username, "password": pw })),
            )
            .await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "INVALID_CREDENTIALS");
    }
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&serde_json::json!({ "username": name, "email": first_email, "password": password })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_username_chosen_later_must_be_free_and_well_formed() {
    let app = TestApp::spawn().await;
    let alice = app.register_and_login().await;
    let bob = app.register_and_login().await;
    let name = unique("alice_");
    let patch = |account: &registrar_tests::Account, username: &str| {
        let path = format!("/api/v1/users/{}", account.id);
        let token = account.access.clone();
        let body = serde_json::json!({ "username": username });
        let app = &app;
        async move {
            app.call(Method::PATCH, &path, Some(&token), Some(&body))
                .await
        }
    };
    let (status, _, body) = patch(&alice, &name).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["username"], name.as_str());
    let (status, _, body) = patch(&bob, &name.to_uppercase()).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "USERNAME_TAKEN");
    let (status, _, body) = patch(&bob, "admin").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"][0]["field"], "username");
    assert_eq!(body["error"]["details"][0]["message"], "is reserved");
    let (status, _, _) = patch(&bob, "x y").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_register_route_of_other_apis_goes_through_the_same_pipeline() {
    let app = TestApp::spawn().await;
    let name = unique("jdoe");
    let email = format!("{name}@example.com");
    let password = "correct horse battery staple";
    let response = app
        .http
        .post(app.url("/api/register"))
        .json(&serde_json::json!({
            "username": name, "full_name": "Mary Ann Evans", "age": 36,
            "dateOfBirth": "1990-01-01", "gender": "Female",
            "email": email, "password": password,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    assert!(
        response.headers().contains_key("deprecation"),
        "/api is an alias"
    );
    app.remember_location(&response);
    let accepted: Value = response.json().await.unwrap();
    assert!(accepted["data"]["registrationId"].is_string(), "{accepted}");
    app.wait_for_status(&email, "completed", Duration::from_secs(30))
        .await;

    // OAuth2-style password grant, as a form, by username.
    let form = app
        .http
        .post(app.url("/api/v1/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", name.as_str()),
            ("password", password),
            ("scope", "openid"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert_eq!(form.headers()["cache-control"], "no-store");
    let tokens: Value = form.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_u64().unwrap() > 0);
    let access = tokens["access_token"].as_str().unwrap();
    let (_, _, me) = app
        .call(Method::GET, "/api/v1/auth/me", Some(access), None)
        .await;
    assert_eq!(me["data"]["firstName"], "Mary Ann");
    assert_eq!(me["data"]["lastName"], "Evans");
    assert_eq!(me["data"]["gender"], "female");
    assert_eq!(me["data"]["username"], name.as_str());
    assert_eq!(me["data"]["dateOfBirth"], "1990-01-01");
    assert_eq!(me["data"]["occupation"], Value::Null);

    // JSON, an email in `username`; then the refresh grant.
    let (status, _, json_tokens) = app
        .call(
            Method::POST,
            "/api/token",
            None,
            Some(&serde_json::json!({ "username": email, "password": password })),
        )
        .await;
    assert_eq!(status, 200, "{json_tokens}");
    let (status, _, refreshed) = app
        .call(
            Method::POST,
            "/api/v1/token",
            None,
            Some(&serde_json::json!({ "grant_type": "refresh_token", "refresh_token": json_tokens["refresh_token"] })),
        )
        .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_ne!(refreshed["refresh_token"], json_tokens["refresh_token"]);
    let (status, _, wrong) = app
        .call(
            Method::POST,
            "/api/v1/token",
            None,
            Some(&serde_json::json!({ "username": name, "password": "not the password" })),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(wrong["error"]["code"], "INVALID_CREDENTIALS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_body_of_another_api_with_bad_fields_is_refused_whole() {
    let app = TestApp::spawn_without_consumer().await;
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/v1/register",
            None,
            Some(&serde_json::json!({
                "fullName": "Cher", "age": 200, "gender": "male",
                "email": "cher@example.com", "password": "correct horse battery"
            })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let fields: Vec<&str> = body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["fullName", "age"], "{body}");
    assert!(app.redis_keys().await.is_empty(), "nothing staged");
}
