//! Accounts: login, tokens, roles, user management, audit, GDPR and per-user data,
//! against the real services.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use registrar_api::auth::keys::{Claims, JwtKeys};
use registrar_tests::{Account, TestApp, TestOptions};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const PATCH: Method = Method::PATCH;
const DELETE: Method = Method::DELETE;

async fn me(app: &TestApp, token: &str) -> (u16, Value) {
    let (status, _, body) = app.call(GET, "/api/auth/me", Some(token), None).await;
    (status, body)
}

async fn refresh(app: &TestApp, token: &str) -> (u16, Value) {
    let (status, _, body) = app
        .call(
            POST,
            "/api/auth/refresh",
            None,
            Some(&json!({ "refreshToken": token })),
        )
        .await;
    (status, body)
}

/// `method path` with `who`'s token and a JSON body: the status and the answer.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    who: &Account,
    body: Value,
) -> (u16, Value) {
    let (status, _, answer) = app.call(method, path, Some(&who.access), Some(&body)).await;
    (status, answer)
}

async fn audit_actions(app: &TestApp, user: Uuid) -> Vec<String> {
    app.pg()
        .await
        .query(
            "SELECT action FROM user_audit_log WHERE user_id = $1 ORDER BY id",
            &[&user],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test]
async fn a_new_user_registers_logs_in_refreshes_updates_exports_and_deletes() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;

    let (status, body) = me(&app, &user.access).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["email"], user.email);
    assert_eq!(body["data"]["role"], "user");
    assert!(body["data"].get("passwordHash").is_none(), "{body}");

    let (status, tokens) = refresh(&app, &user.refresh).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["tokenType"], "Bearer");
    assert_eq!(tokens["expiresIn"], 900);
    assert_ne!(tokens["refreshToken"], json!(user.refresh));
    let access = tokens["accessToken"].as_str().unwrap().to_owned();

    let (status, headers, body) = app
        .call(
            PATCH,
            &format!("/api/users/{}", user.id),
            Some(&access),
            Some(&json!({ "occupation": "Analyst" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["occupation"], "Analyst");
    assert_eq!(headers["etag"], "\"2\"");

    let (status, _, export) = app
        .call(
            GET,
            &format!("/api/users/{}/export", user.id),
            Some(&access),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(export["data"]["user"]["occupation"], "Analyst");

    // Deleting one's own account re-authenticates.
    let path = format!("/api/users/{}", user.id);
    let (status, _, body) = app.call(DELETE, &path, Some(&access), None).await;
    assert_eq!(
        body["error"]["details"][0]["field"], "currentPassword",
        "{body}"
    );
    assert_eq!(status, 400);
    let confirm = json!({ "currentPassword": user.password });
    let (status, _, body) = app.call(DELETE, &path, Some(&access), Some(&confirm)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(me(&app, &access).await.0, 401);
    let (status, body) = app.login(&user.email, &user.password).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "INVALID_CREDENTIALS");
}

/// One row per route: the expected status for anonymous, self, another user, a
/// moderator and an admin. The target of every row is `self`'s account.
#[tokio::test]
async fn every_route_answers_each_kind_of_caller_as_the_role_table_says() {
    let app = TestApp::spawn().await;
    let (me_, other, moderator, admin) = tokio::join!(
        app.register_and_login(),
        app.register_and_login(),
        app.account_with_role("moderator"),
        app.account_with_role("admin"),
    );
    let (status, _) = send(
        &app,
        POST,
        "/api/data",
        &me_,
        json!({ "key": "mine", "value": 1 }),
    )
    .await;
    assert_eq!(status, 201);
    let id = me_.id;
    let email = me_.email.clone();
    let registration_id: uuid::Uuid = app
        .pg()
        .await
        .query_one("SELECT registration_id FROM users WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    let polled = format!("/api/users/{email}?registrationId={registration_id}");
    let patch = json!({ "occupation": "Engineer" });
    let callers: [Option<&Account>; 5] = [
        None,
        Some(&me_),
        Some(&other),
        Some(&moderator),
        Some(&admin),
    ];
    let rows: Vec<(Method, String, Option<Value>, [u16; 5])> = vec![
        (GET, "/api/auth/me".into(), None, [401, 200, 200, 200, 200]),
        (
            GET,
            "/.well-known/jwks.json".into(),
            None,
            [200, 200, 200, 200, 200],
        ),
        (GET, "/api/users".into(), None, [401, 403, 403, 200, 200]),
        (
            GET,
            "/api/users?includeDeleted=true".into(),
            None,
            [401, 403, 403, 403, 200],
        ),
        (
            GET,
            format!("/api/users/{id}"),
            None,
            [401, 200, 403, 200, 200],
        ),
        // By email: only the owner and admins without the registration's id...
        (
            GET,
            format!("/api/users/{email}"),
            None,
            [404, 200, 404, 404, 200],
        ),
        // ...anyone with it.
        (GET, polled.clone(), None, [200, 200, 200, 200, 200]),
        (
            PATCH,
            format!("/api/users/{id}"),
            Some(patch.clone()),
            [401, 200, 403, 403, 200],
        ),
        (
            PATCH,
            format!("/api/users/{id}"),
            Some(json!({ "role": "user" })),
            [401, 403, 403, 403, 200],
        ),
        (
            GET,
            format!("/api/users/{id}/export"),
            None,
            [401, 200, 403, 403, 200],
        ),
        (
            GET,
            format!("/api/users/{id}/audit"),
            None,
            [401, 200, 403, 403, 200],
        ),
        (GET, "/api/data".into(), None, [401, 200, 200, 200, 200]),
        (
            GET,
            "/api/data/mine".into(),
            None,
            [401, 200, 404, 404, 404],
        ),
        (
            PUT,
            "/api/data/mine".into(),
            Some(json!({ "value": 2 })),
            [401, 200, 404, 404, 404],
        ),
        (
            DELETE,
            format!("/api/users/{id}?erase=true"),
            None,
            [401, 403, 403, 403, 0],
        ),
        (
            DELETE,
            format!("/api/users/{id}"),
            None,
            [401, 0, 403, 403, 0],
        ),
        (POST, "/api/auth/logout".into(), None, [401, 0, 0, 0, 0]),
    ];
    let mut failures = Vec::new();
    for (method, path, body, expected) in &rows {
        for (caller, want) in callers.iter().zip(expected) {
            if *want == 0 {
                continue; // destructive: checked below, in order
            }
            let token = caller.map(|c| c.access.as_str());
            let (status, _, answer) = app.call(method.clone(), path, token, body.as_ref()).await;
            if status != *want {
                failures.push(format!(
                    "{method} {path} as {}: {status} (want {want}) {answer}",
                    caller.map_or("anonymous", |c| c.email.as_str())
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // Profile by email: the owner and an admin see it, others only the status.
    for (caller, sees) in [
        (&me_, true),
        (&other, false),
        (&moderator, false),
        (&admin, true),
    ] {
        let (_, _, body) = app.call(GET, &polled, Some(&caller.access), None).await;
        assert_eq!(body["data"]["status"], "completed");
        assert_eq!(body["data"].get("user").is_some(), sees, "{body}");
    }
    // Destructive cells, in order: self deletes self; admin deletes and erases others.
    let (status, _, _) = app
        .call(
            DELETE,
            &format!("/api/users/{id}"),
            Some(&me_.access),
            Some(&json!({ "currentPassword": me_.password })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .call(POST, "/api/auth/logout", Some(&me_.access), None)
        .await;
    assert_eq!(status, 401, "a deleted user's token is revoked");
    let (status, _, _) = app
        .call(
            DELETE,
            &format!("/api/users/{}", other.id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .call(
            DELETE,
            &format!("/api/users/{}?erase=true", other.id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 200);
    for caller in [&moderator, &admin] {
        let (status, _, _) = app
            .call(POST, "/api/auth/logout", Some(&caller.access), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(me(&app, &caller.access).await.0, 401);
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn forged_expired_and_foreign_tokens_are_rejected() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let (status, body) = me(&app, &user.access).await;
    assert_eq!(status, 200, "{body}");

    let keys = app.jwt_keys();
    let now = chrono::Utc::now().timestamp();
    let base = Claims {
        sub: user.id,
        role: common::domain::Role::User,
        iat: now,
        exp: now + 900,
        jti: Uuid::new_v4(),
        iss: "registrar".into(),
        aud: "registrar".into(),
        sid: Uuid::new_v4(),
        email_verified: false,
    };
    // Control: a well-formed token signed with the real key is accepted.
    assert_eq!(me(&app, &keys.sign(&base)).await.0, 200);

    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(user.access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let claims = serde_json::to_value(&base).unwrap();
    let admin_claims = {
        let mut c = claims.clone();
        c["role"] = json!("admin");
        c
    };
    let signature = user.access.rsplit('.').next().unwrap().to_owned();

    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
        b64(&admin_claims)
    );
    // HS256 keyed with the public key, the classic algorithm-confusion attack.
    let jwks: Value = app.get_json("/.well-known/jwks.json").await;
    let public = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["x"].as_str().unwrap())
        .unwrap();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(kid.clone());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &admin_claims,
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    let expired = keys.sign(&Claims {
        iat: now - 2000,
        exp: now - 1000,
        ..base.clone()
    });
    let wrong_aud = keys.sign(&Claims {
        aud: "another-service".into(),
        ..base.clone()
    });
    let wrong_iss = keys.sign(&Claims {
        iss: "evil".into(),
        ..base.clone()
    });
    let tampered = {
        let parts: Vec<&str> = user.access.split('.').collect();
        format!("{}.{}.{}", parts[0], b64(&admin_claims), signature)
    };
    let (foreign_key, _) = registrar_api::auth::keys::generate("unknown-kid");
    let unknown_kid = JwtKeys::new(
        &foreign_key,
        &[],
        "registrar",
        "registrar",
        Duration::from_secs(900),
    )
    .unwrap()
    .sign(&base);
    let (same_kid_other_key, _) = registrar_api::auth::keys::generate(&kid);
    let wrong_key = JwtKeys::new(
        &same_kid_other_key,
        &[],
        "registrar",
        "registrar",
        Duration::from_secs(900),
    )
    .unwrap()
    .sign(&base);

    for (name, token) in [
        ("alg none", alg_none),
        ("HS256 with the public key", hs256),
        ("expired", expired),
        ("wrong aud", wrong_aud),
        ("wrong iss", wrong_iss),
        ("tampered payload", tampered),
        ("unknown kid", unknown_kid),
        ("signed by another key under our kid", wrong_key),
        ("garbage", "not.a.jwt".to_owned()),
    ] {
        let (status, headers, body) = app.call(GET, "/api/auth/me", Some(&token), None).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["error"]["code"], "INVALID_TOKEN", "{name}");
        assert!(headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
    }
    let (status, _, body) = app.call(GET, "/api/auth/me", None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
}

#[tokio::test]
async fn other_services_can_verify_access_tokens_with_the_published_jwks() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(app.get_json("/.well-known/jwks.json").await).unwrap();
    let header = jsonwebtoken::decode_header(&user.access).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["registrar"]);
    validation.set_issuer(&["registrar"]);
    let data = jsonwebtoken::decode::<Value>(
        &user.access,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap();
    assert_eq!(data.claims["sub"], json!(user.id));
    assert_eq!(data.claims["role"], "user");
    for claim in ["iat", "exp", "jti", "iss", "aud", "sid"] {
        assert!(data.claims.get(claim).is_some(), "{claim} missing");
    }
    let lifetime = data.claims["exp"].as_i64().unwrap() - data.claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 900);
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_whole_family() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let other_session = app.log_in_again(user.clone()).await;

    let (status, first) = refresh(&app, &user.refresh).await;
    assert_eq!(status, 200);
    let second_refresh = first["refreshToken"].as_str().unwrap().to_owned();
    let (status, second) = refresh(&app, &second_refresh).await;
    assert_eq!(status, 200);
    let latest_access = second["accessToken"].as_str().unwrap().to_owned();
    let latest_refresh = second["refreshToken"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, &latest_access).await.0, 200);

    // The first token again: a replay. The family dies, the latest tokens with it.
    let (status, body) = refresh(&app, &user.refresh).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "INVALID_TOKEN");
    assert_eq!(refresh(&app, &latest_refresh).await.0, 401);
    assert_eq!(me(&app, &latest_access).await.0, 401);
    assert_eq!(me(&app, &user.access).await.0, 401);
    // Another session of the same user is untouched.
    assert_eq!(me(&app, &other_session.access).await.0, 200);
    assert_eq!(refresh(&app, &other_session.refresh).await.0, 200);
    assert!(audit_actions(&app, user.id)
        .await
        .contains(&"auth.refresh_reused".to_owned()));
    assert_eq!(refresh(&app, "rt_unknown").await.0, 401);
    let (status, _, _) = app
        .call(POST, "/api/auth/refresh", None, Some(&json!({})))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn logout_ends_its_session_and_leaves_the_others() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let other_session = app.log_in_again(user.clone()).await;
    let (status, _, body) = app
        .call(POST, "/api/auth/logout", Some(&user.access), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(me(&app, &user.access).await.0, 401);
    assert_eq!(refresh(&app, &user.refresh).await.0, 401);
    assert_eq!(me(&app, &other_session.access).await.0, 200);
    let session = app.jwt_keys().verify(&user.access).unwrap().sid;
    let key = app.keys().revoked_session(session);
    let ttl = app.redis_ttl(&key).await;
    assert!(
        ttl > 900 && ttl <= 960,
        "revocation outlives the token: {ttl}"
    );
}

#[tokio::test]
async fn a_deleted_user_can_neither_log_in_nor_refresh() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let confirm = json!({ "currentPassword": user.password });
    let (status, _, _) = app
        .call(
            DELETE,
            &format!("/api/users/{}", user.id),
            Some(&user.access),
            Some(&confirm),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(me(&app, &user.access).await.0, 401);
    assert_eq!(refresh(&app, &user.refresh).await.0, 401);
    assert_eq!(app.login(&user.email, &user.password).await.0, 401);
    // The polling endpoint no longer reports the deleted account as completed.
    assert_eq!(app.get_status(&user.email).await.status().as_u16(), 404);
    let deleted_at: Option<chrono::DateTime<chrono::Utc>> = app
        .pg()
        .await
        .query_one("SELECT deleted_at FROM users WHERE id = $1", &[&user.id])
        .await
        .unwrap()
        .get(0);
    assert!(deleted_at.is_some(), "soft delete keeps the row");
    assert!(audit_actions(&app, user.id)
        .await
        .contains(&"user.deleted".to_owned()));
}

#[tokio::test]
async fn fifty_parallel_wrong_passwords_lock_the_account_after_five() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let attempts = (0..50).map(|i| {
        let app = &app;
        let email = user.email.clone();
        async move { app.login(&email, &format!("wrong-password-{i}")).await }
    });
    let results = futures::future::join_all(attempts).await;
    let unauthorized = results.iter().filter(|(s, _)| *s == 401).count();
    let locked: Vec<_> = results.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(unauthorized, 5, "{results:?}");
    assert_eq!(locked.len(), 45);
    assert!(locked
        .iter()
        .all(|(_, b)| b["error"]["code"] == "ACCOUNT_LOCKED"));
    // Locked: even the right password is refused, with Retry-After.
    let (status, headers, _) = app
        .call(
            POST,
            "/api/auth/login",
            None,
            Some(&json!({"email": user.email, "password": user.password})),
        )
        .await;
    assert_eq!(status, 429);
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry > 800 && retry <= 900, "{retry}");
}

#[tokio::test]
async fn an_unknown_email_and_a_wrong_password_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let wrong_password = app.login(&user.email, "not-the-password").await;
    let unknown_email = app
        .login("nobody.here@example.com", "not-the-password")
        .await;
    assert_eq!(wrong_password.0, 401);
    assert_eq!(wrong_password, unknown_email);
    let (status, _, body) = app
        .call(
            POST,
            "/api/auth/login",
            None,
            Some(&json!({"email": "not-an-email", "password": "x"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _, _) = app
        .call(
            POST,
            "/api/auth/login",
            None,
            Some(&json!({"email": user.email, "password": "x", "admin": true})),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn logging_in_while_the_registration_is_pending_is_409() {
    let app = TestApp::spawn_without_consumer().await;
    let (email, password, body) = registrar_tests::registration_body();
    assert_eq!(app.post_registration(&body).await.status().as_u16(), 202);
    let (status, body) = app.login(&email, &password).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "REGISTRATION_PENDING");
}

#[tokio::test]
async fn a_hash_made_with_weaker_parameters_is_upgraded_at_login() {
    // The consumer hashes with 256 KiB (the test default); the api is configured with
    // more memory, so the stored hash is weaker than configured.
    let app = TestApp::spawn_with(TestOptions {
        api_args: vec!["--argon2-memory-kib".into(), "1024".into()],
        ..Default::default()
    })
    .await;
    let user = app.register_and_login().await;
    let hash: String = app
        .pg()
        .await
        .query_one("SELECT password_hash FROM users WHERE id = $1", &[&user.id])
        .await
        .unwrap()
        .get(0);
    assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
    assert!(audit_actions(&app, user.id)
        .await
        .contains(&"user.password_rehashed".to_owned()));
    // The new hash verifies the same password.
    assert_eq!(app.login(&user.email, &user.password).await.0, 200);
}

#[tokio::test]
async fn login_verifies_hashes_made_with_the_production_argon2_parameters() {
    let app = TestApp::spawn_with(TestOptions {
        production_argon2: true,
        ..Default::default()
    })
    .await;
    let user = app.register_and_login().await;
    let hash: String = app
        .pg()
        .await
        .query_one("SELECT password_hash FROM users WHERE id = $1", &[&user.id])
        .await
        .unwrap()
        .get(0);
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert_eq!(app.login(&user.email, "wrong password!").await.0, 401);
}

/// An api whose hashing pool has one worker, no queue and costly hashes: concurrent
/// logins beyond the first are refused at once.
async fn spawn_with_one_slow_hashing_worker() -> TestApp {
    TestApp::spawn_with(TestOptions {
        without_consumer: true,
        api_args: [
            "--argon2-memory-kib",
            "65536",
            "--argon2-iterations",
            "4",
            "--password-hash-workers",
            "1",
            "--password-hash-queue",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn a_saturated_hashing_pool_answers_503_with_retry_after_instead_of_queueing() {
    let app = spawn_with_one_slow_hashing_worker().await;
    let logins = (0..8).map(|i| {
        let app = &app;
        async move {
            app.call(
                POST,
                "/api/auth/login",
                None,
                Some(&json!({"email": format!("nobody{i}@example.com"), "password": "whatever-it-is"})),
            )
            .await
        }
    });
    let results = futures::future::join_all(logins).await;
    let refused: Vec<_> = results.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(
        results.iter().any(|(s, _, _)| *s == 401),
        "one login is verified"
    );
    assert!(
        !refused.is_empty(),
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    for (_, headers, body) in refused {
        assert_eq!(body["error"]["code"], "OVERLOADED");
        assert_eq!(headers["retry-after"], "1");
    }
    assert!(results.iter().all(|(s, _, _)| *s == 401 || *s == 503));
}

#[tokio::test]
async fn every_change_writes_its_audit_row_with_actor_address_and_fields() {
    let app = TestApp::spawn().await;
    let (user, admin) = tokio::join!(app.register_and_login(), app.account_with_role("admin"));
    let path = format!("/api/users/{}", user.id);
    app.call(
        PATCH,
        &path,
        Some(&user.access),
        Some(&json!({"firstName": "Augusta", "lastName": "Lovelace"})),
    )
    .await;
    app.call(
        PATCH,
        &path,
        Some(&admin.access),
        Some(&json!({"role": "moderator"})),
    )
    .await;
    let user = app.log_in_again(user).await;
    app.call(
        POST,
        "/api/data",
        Some(&user.access),
        Some(&json!({"key": "k", "value": {"a": 1}})),
    )
    .await;
    app.call(
        PUT,
        "/api/data/k",
        Some(&user.access),
        Some(&json!({"value": 2})),
    )
    .await;
    app.call(DELETE, "/api/data/k", Some(&user.access), None)
        .await;

    let (status, _, trail) = app
        .call(
            GET,
            &format!("{path}/audit?limit=100"),
            Some(&user.access),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let rows = trail["data"].as_array().unwrap();
    let actions: Vec<&str> = rows
        .iter()
        .rev()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "user.registered",
            "auth.login",
            "user.updated",
            "user.updated",
            "auth.login",
            "data.created",
            "data.updated",
            "data.deleted"
        ]
    );
    let name_change = &rows[rows.len() - 3];
    assert_eq!(
        name_change["details"]["fields"],
        json!(["firstName"]),
        "lastName did not change"
    );
    assert_eq!(name_change["actorId"], json!(user.id));
    assert_eq!(name_change["ip"], "127.0.0.1");
    let role_change = &rows[rows.len() - 4];
    assert_eq!(role_change["actorId"], json!(admin.id));
    assert_eq!(
        role_change["details"]["role"],
        json!({"from": "user", "to": "moderator"})
    );
    // No row carries a secret or a value.
    let text = trail.to_string();
    assert!(!text.contains(&user.password) && !text.contains("\"a\":1"));

    // Paging with the cursor returns every row once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("&cursor={c}"));
        let (_, _, page) = app
            .call(
                GET,
                &format!("{path}/audit?limit=3{q}"),
                Some(&admin.access),
                None,
            )
            .await;
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_i64().unwrap()),
        );
        match page["pagination"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), rows.len());
    // An id nobody has is not an empty trail.
    let (status, _, _) = app
        .call(
            GET,
            &format!("/api/users/{}/audit", Uuid::now_v7()),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_export_holds_the_profile_the_audit_trail_and_the_data_items() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    for key in ["b", "a"] {
        let (status, _) = send(
            &app,
            POST,
            "/api/data",
            &user,
            json!({"key": key, "value": [key]}),
        )
        .await;
        assert_eq!(status, 201);
    }
    let (status, headers, export) = app
        .call(
            GET,
            &format!("/api/users/{}/export", user.id),
            Some(&user.access),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert!(headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let data = &export["data"];
    assert_eq!(data["user"]["email"], user.email);
    assert_eq!(data["user"]["firstName"], "Ada");
    assert!(data["user"].get("passwordHash").is_none());
    assert_eq!(
        data["data"],
        json!([
            {"key": "a", "value": ["a"], "createdAt": data["data"][0]["createdAt"], "updatedAt": data["data"][0]["updatedAt"]},
            {"key": "b", "value": ["b"], "createdAt": data["data"][1]["createdAt"], "updatedAt": data["data"][1]["updatedAt"]},
        ])
    );
    let actions: Vec<&str> = data["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"user.registered") && actions.contains(&"data.created"),
        "{actions:?}"
    );
    assert!(!export.to_string().contains(&user.password));
}

#[tokio::test]
async fn erasure_leaves_no_personal_data_but_keeps_the_audit_trail() {
    let app = TestApp::spawn().await;
    let (user, admin) = tokio::join!(app.register_and_login(), app.account_with_role("admin"));
    app.call(
        POST,
        "/api/data",
        Some(&user.access),
        Some(&json!({"key": "diary", "value": "secret"})),
    )
    .await;
    let audit_rows_before = audit_actions(&app, user.id).await.len();
    let (status, _, body) = app
        .call(
            DELETE,
            &format!("/api/users/{}?erase=true", user.id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let pg = app.pg().await;
    let row = pg
        .query_one(
            "SELECT email, first_name, last_name, gender, sex, occupation, password_hash, deleted_at IS NOT NULL, erased_at IS NOT NULL FROM users WHERE id = $1",
            &[&user.id],
        )
        .await
        .unwrap();
    assert!(row.get::<_, String>(0).ends_with("@erased.invalid"));
    for i in 1..=5 {
        assert_eq!(row.get::<_, Option<String>>(i), None, "column {i}");
    }
    assert!(!row.get::<_, String>(6).starts_with("$argon2"));
    assert!(row.get::<_, bool>(7) && row.get::<_, bool>(8));
    // Audit rows stay (plus the erasure), without addresses or user agents.
    let actions = audit_actions(&app, user.id).await;
    assert_eq!(actions.len(), audit_rows_before + 1);
    assert_eq!(actions.last().unwrap(), "user.erased");
    let leftovers: i64 = pg
        .query_one(
            "SELECT count(*) FROM user_audit_log WHERE user_id = $1 AND (ip IS NOT NULL OR user_agent IS NOT NULL OR details::text LIKE '%diary%')",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(leftovers, 0);
    // Nothing anywhere mentions the email any more.
    let dump: i64 = pg
        .query_one(
            "SELECT (SELECT count(*) FROM users WHERE email = $1)
                  + (SELECT count(*) FROM user_audit_log WHERE details::text LIKE '%' || $1 || '%')
                  + (SELECT count(*) FROM data_store WHERE user_id = $2)
                  + (SELECT count(*) FROM refresh_tokens WHERE user_id = $2)
                  + (SELECT count(*) FROM mail_outbox WHERE recipient = $1)
                  + (SELECT count(*) FROM account_tokens WHERE email = $1)
                  + (SELECT count(*) FROM user_event_outbox WHERE position(convert_to($1, 'UTF8') in payload) > 0)",
            &[&user.email, &user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dump, 0);
    assert!(app
        .redis_keys()
        .await
        .iter()
        .all(|k| !k.contains(&user.email)));
    assert_eq!(app.login(&user.email, &user.password).await.0, 401);
    // Only an admin erases; erasing twice finds nothing.
    let (status, _, _) = app
        .call(
            DELETE,
            &format!("/api/users/{}?erase=true", user.id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_write_with_a_stale_if_match_is_412_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let path = format!("/api/users/{}", user.id);
    let (_, headers, _) = app.call(GET, &path, Some(&user.access), None).await;
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, "\"1\"");

    let send = |tag: &str, body: Value| {
        let app = &app;
        let path = path.clone();
        let token = user.access.clone();
        let tag = tag.to_owned();
        async move {
            let r = app
                .http
                .patch(app.url(&path))
                .bearer_auth(token)
                .header("If-Match", tag)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let etag = r
                .headers()
                .get("etag")
                .map(|v| v.to_str().unwrap().to_owned());
            (status, etag, r.json::<Value>().await.unwrap())
        }
    };
    let (status, new_etag, _) = send(&etag, json!({"occupation": "Poet"})).await;
    assert_eq!(status, 200);
    assert_eq!(new_etag.as_deref(), Some("\"2\""));
    let (status, _, body) = send(&etag, json!({"occupation": "Countess"})).await;
    assert_eq!(status, 412);
    assert_eq!(body["error"]["code"], "PRECONDITION_FAILED");
    // An empty If-Match names no version: refused, not taken as "no condition".
    let (status, _, body) = send("", json!({"occupation": "Countess"})).await;
    assert_eq!(status, 412);
    assert_eq!(body["error"]["code"], "PRECONDITION_FAILED");
    let (_, _, current) = app.call(GET, &path, Some(&user.access), None).await;
    assert_eq!(current["data"]["occupation"], "Poet");
    assert_eq!(send("*", json!({"occupation": "Countess"})).await.0, 200);
}

#[tokio::test]
async fn put_replaces_the_whole_profile_and_email_stays_unique() {
    let app = TestApp::spawn().await;
    let (user, other) = tokio::join!(app.register_and_login(), app.register_and_login());
    let path = format!("/api/users/{}", user.id);
    let (status, body) = send(&app, PUT, &path, &user, json!({"firstName": "Only"})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["details"][0]["field"],
        "email",
        "only the email: the other fields are required only when REQUIRED_PROFILE_FIELDS lists them: {body}"
    );
    assert_eq!(body["error"]["details"].as_array().unwrap().len(), 1);

    // Changing one's own email re-authenticates.
    let full = |email: &str| {
        json!({
            "firstName": "Grace", "lastName": "Hopper", "email": email,
            "gender": "female", "sex": "female", "occupation": "Admiral",
            "currentPassword": user.password,
        })
    };
    // Another account's address is accepted like any other (a 409 would tell that it has
    // an account), stays pending and is never sent a verification link.
    let (status, _, body) = app
        .call(PUT, &path, Some(&user.access), Some(&full(&other.email)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["pendingEmail"], other.email.as_str());
    assert_eq!(body["data"]["email"], user.email.as_str());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let links: Vec<_> = registrar_tests::mails_to(&other.email)
        .await
        .into_iter()
        .filter(|m| m["subject"].as_str().unwrap_or_default().contains("new"))
        .collect();
    assert!(
        links.is_empty(),
        "no verification link to a taken address: {links:?}"
    );
    let new_email = format!("renamed.{}", user.email);
    let (status, _, body) = app
        .call(
            PUT,
            &path,
            Some(&user.access),
            Some(&full(&new_email.to_uppercase())),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The new address (normalised) waits for its verification; the old one stays.
    assert_eq!(body["data"]["pendingEmail"], new_email);
    assert_eq!(body["data"]["email"], user.email.as_str());
    assert_eq!(body["data"]["lastName"], "Hopper");
    assert_eq!(app.login(&user.email, &user.password).await.0, 200);
    let (status, body) = send(
        &app,
        PATCH,
        &path,
        &user,
        json!({"sex": "robot", "isAdmin": true}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn a_password_change_needs_the_current_password_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let other_session = app.log_in_again(user.clone()).await;
    let path = format!("/api/users/{}", user.id);
    let (status, body) = send(
        &app,
        PATCH,
        &path,
        &user,
        json!({"password": "a-new-password"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"][0]["field"], "currentPassword");
    let (status, _) = send(
        &app,
        PATCH,
        &path,
        &user,
        json!({"password": "a-new-password", "currentPassword": "wrong-one"}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = send(
        &app,
        PATCH,
        &path,
        &user,
        json!({"password": "a-new-password", "currentPassword": user.password}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.login(&user.email, &user.password).await.0, 401);
    assert_eq!(app.login(&user.email, "a-new-password").await.0, 200);
    // The session that changed the password goes on; the other one ends.
    assert_eq!(me(&app, &user.access).await.0, 200);
    assert_eq!(me(&app, &other_session.access).await.0, 401);
    assert_eq!(refresh(&app, &other_session.refresh).await.0, 401);
    let fields: Value = app
        .pg()
        .await
        .query_one(
            "SELECT details FROM user_audit_log WHERE user_id = $1 AND action = 'user.updated'",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(fields, json!({"fields": ["password"]}));
}

#[tokio::test]
async fn only_an_admin_changes_roles_and_the_new_role_needs_a_new_login() {
    let app = TestApp::spawn().await;
    let (user, admin) = tokio::join!(app.register_and_login(), app.account_with_role("admin"));
    let path = format!("/api/users/{}", user.id);
    let (status, _) = send(&app, PATCH, &path, &user, json!({"role": "admin"})).await;
    assert_eq!(status, 403);
    let (status, _) = send(&app, PATCH, &path, &admin, json!({"role": "root"})).await;
    assert_eq!(status, 400);
    let (status, body) = send(&app, PATCH, &path, &admin, json!({"role": "moderator"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["role"], "moderator");
    // Old tokens carried the old role: they are revoked.
    assert_eq!(me(&app, &user.access).await.0, 401);
    let user = app.log_in_again(user).await;
    let (status, _, _) = app.call(GET, "/api/users", Some(&user.access), None).await;
    assert_eq!(status, 200);
    // An admin may set another user's password without knowing the old one.
    let (status, _) = send(
        &app,
        PATCH,
        &path,
        &admin,
        json!({"password": "set-by-an-admin"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(app.login(&user.email, "set-by-an-admin").await.0, 200);
}

#[tokio::test]
async fn data_items_are_scoped_to_their_owner() {
    let app = TestApp::spawn().await;
    let (alice, bob) = tokio::join!(app.register_and_login(), app.register_and_login());
    let create = |who: &Account, key: &str, value: Value| {
        let app = &app;
        let token = who.access.clone();
        let body = json!({"key": key, "value": value});
        async move { app.call(POST, "/api/data", Some(&token), Some(&body)).await }
    };
    let (status, headers, body) = create(&alice, "theme", json!({"mode": "dark"})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(headers["location"], "/api/v1/data/theme");
    assert_eq!(create(&alice, "theme", json!(1)).await.0, 409);
    // Bob cannot see, change or delete Alice's item, and has his own namespace.
    assert_eq!(
        app.call(GET, "/api/data/theme", Some(&bob.access), None)
            .await
            .0,
        404
    );
    assert_eq!(
        app.call(
            PUT,
            "/api/data/theme",
            Some(&bob.access),
            Some(&json!({"value": 0}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        app.call(DELETE, "/api/data/theme", Some(&bob.access), None)
            .await
            .0,
        404
    );
    assert_eq!(create(&bob, "theme", json!("light")).await.0, 201);
    let (_, _, item) = app
        .call(GET, "/api/data/theme", Some(&alice.access), None)
        .await;
    assert_eq!(item["data"]["value"], json!({"mode": "dark"}));
    let (status, _, item) = app
        .call(
            PUT,
            "/api/data/theme",
            Some(&alice.access),
            Some(&json!({"value": [1, 2]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(item["data"]["value"], json!([1, 2]));
    let (_, _, listing) = app.call(GET, "/api/data", Some(&bob.access), None).await;
    assert_eq!(listing["count"], 1);
    assert_eq!(listing["data"][0]["value"], "light");
    assert_eq!(
        app.call(DELETE, "/api/data/theme", Some(&alice.access), None)
            .await
            .0,
        200
    );
    assert_eq!(
        app.call(GET, "/api/data/theme", Some(&alice.access), None)
            .await
            .0,
        404
    );
    assert_eq!(
        app.call(GET, "/api/data/theme", Some(&bob.access), None)
            .await
            .0,
        200
    );

    // Limits: key 1-128 characters, value up to 64 KiB, anything else 400 or 413.
    assert_eq!(create(&alice, &"k".repeat(129), json!(1)).await.0, 400);
    assert_eq!(create(&alice, "", json!(1)).await.0, 400);
    assert_eq!(
        create(&alice, "big", json!("x".repeat(64 * 1024))).await.0,
        400
    );
    assert_eq!(
        create(&alice, "fits", json!("x".repeat(60 * 1024))).await.0,
        201
    );
    assert_eq!(
        create(&alice, "huge", json!("x".repeat(200 * 1024)))
            .await
            .0,
        413
    );
    let (status, _) = send(&app, POST, "/api/data", &alice, json!({"key": "n"})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn staff_list_users_with_filters_offsets_and_a_cursor() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let users = futures::future::join_all((0..5).map(|_| app.register_and_login())).await;
    let (status, _, _) = app
        .call(
            DELETE,
            &format!("/api/users/{}", users[0].id),
            Some(&users[0].access),
            Some(&json!({ "currentPassword": users[0].password })),
        )
        .await;
    assert_eq!(status, 200);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("&cursor={c}"));
        let (status, _, page) = app
            .call(
                GET,
                &format!("/api/users?limit=2{q}"),
                Some(&admin.access),
                None,
            )
            .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["pagination"]["limit"], 2);
        assert!(page["count"].as_u64().unwrap() <= 2);
        seen.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_owned()),
        );
        match page["pagination"]["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        seen.len(),
        5,
        "4 live users and the admin, no duplicates: {seen:?}"
    );
    seen.dedup();
    assert_eq!(seen.len(), 5);
    assert!(!seen.contains(&users[0].id.to_string()));

    let (_, _, all) = app
        .call(
            GET,
            "/api/users?includeDeleted=true&limit=100",
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(all["count"], 6);
    let (_, _, offset) = app
        .call(
            GET,
            "/api/users?limit=2&offset=4",
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(offset["count"], 1);
    assert_eq!(offset["pagination"]["offset"], 4);
    let (_, _, admins) = app
        .call(GET, "/api/users?role=admin", Some(&admin.access), None)
        .await;
    assert_eq!(admins["count"], 1);
    let prefix = &users[2].email[..12].to_uppercase();
    let (_, _, found) = app
        .call(
            GET,
            &format!("/api/users?q={prefix}"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(found["data"][0]["email"], users[2].email, "{found}");
    let (_, _, by_name) = app
        .call(GET, "/api/users?q=lov", Some(&admin.access), None)
        .await;
    assert_eq!(by_name["count"], 5, "every live user is a Lovelace");
    for bad in [
        "limit=101",
        "limit=0",
        "offset=-1",
        "cursor=nonsense",
        "role=root",
        "sort=email",
    ] {
        let (status, _, body) = app
            .call(GET, &format!("/api/users?{bad}"), Some(&admin.access), None)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn create_admin_creates_or_promotes_and_the_admin_can_log_in() {
    let app = TestApp::spawn().await;
    let pool = common::store::postgres::pool(&common::config::PostgresConfig {
        url: secrecy::SecretString::from(app.database_url.clone()),
        pool_size: 2,
        timeout_ms: 5000,
    })
    .unwrap();
    let hasher = common::domain::password::PasswordHasherService::new(
        common::domain::password::Argon2Config {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        },
    )
    .unwrap();
    use common::domain::password_policy::PasswordPolicy;
    use registrar_api::admin::{create_admin, AdminOutcome};
    let outcome = create_admin(
        &pool,
        &hasher,
        &PasswordPolicy::default(),
        " Root@Example.com ",
        || Ok(secrecy::SecretString::from("an admin password".to_owned())),
    )
    .await
    .unwrap();
    assert!(matches!(outcome, AdminOutcome::Created(_)));
    let (status, tokens) = app.login("root@example.com", "an admin password").await;
    assert_eq!(status, 200);
    let token = tokens["accessToken"].as_str().unwrap();
    let (_, body) = me(&app, token).await;
    assert_eq!(body["data"]["role"], "admin");
    assert_eq!(app.call(GET, "/api/users", Some(token), None).await.0, 200);

    let user = app.register_and_login().await;
    let promoted = create_admin(
        &pool,
        &hasher,
        &PasswordPolicy::default(),
        &user.email,
        || Err("not asked".into()),
    )
    .await
    .unwrap();
    assert_eq!(promoted, AdminOutcome::Promoted(user.id));
    assert!(matches!(
        create_admin(
            &pool,
            &hasher,
            &PasswordPolicy::default(),
            &user.email,
            || Err("not asked".into())
        )
        .await
        .unwrap(),
        AdminOutcome::AlreadyAdmin(_)
    ));
    let short = create_admin(
        &pool,
        &hasher,
        &PasswordPolicy::default(),
        "new@example.com",
        || Ok(secrecy::SecretString::from("short".to_owned())),
    )
    .await;
    assert!(short.is_err());
    let common = create_admin(
        &pool,
        &hasher,
        &PasswordPolicy::default(),
        "new@example.com",
        || Ok(secrecy::SecretString::from("password1234".to_owned())),
    )
    .await;
    assert!(
        common.is_err(),
        "a common password is refused for admins too"
    );
}

#[tokio::test]
async fn logins_refused_for_overload_do_not_count_towards_the_lockout() {
    let app = spawn_with_one_slow_hashing_worker().await;
    let email = "busy.user@example.com";
    let logins = (0..4).map(|_| app.login(email, "a wrong password"));
    let results = futures::future::join_all(logins).await;
    let verified = results.iter().filter(|(s, _)| *s == 401).count();
    let overloaded = results.iter().filter(|(s, _)| *s == 503).count();
    assert!(verified >= 1 && overloaded >= 1, "{results:?}");
    // Only the attempts whose password was checked count.
    let counted = app
        .redis_get(
            &app.keys()
                .login_attempts(&email.parse().unwrap(), "127.0.0.1"),
        )
        .await
        .unwrap();
    assert_eq!(counted, verified.to_string());
}

#[tokio::test]
async fn a_stored_number_at_the_edge_of_f64_reads_back_unchanged() {
    // Found by schemathesis: PostgreSQL writes 1.7976931348623157e308 back as a
    // 309-digit integer, which serde_json's default number parser called out of range;
    // the read panicked and the connection was dropped without an answer.
    let app = TestApp::spawn().await;
    let me_ = app.register_and_login().await;
    for (key, raw) in [
        ("max", "[1.7976931348623155e+308, -1.7976931348623157e308]"),
        ("tiny", "[5e-324, 2.2250738585072014e-308, -0.0]"),
        ("long", "[0.1, 123456789012345678901234567890, 1e22]"),
    ] {
        let sent: Value = serde_json::from_str(raw).unwrap();
        let response = app
            .http
            .post(app.url("/api/data"))
            .bearer_auth(&me_.access)
            .header("content-type", "application/json")
            .body(format!(r#"{{"key": "{key}", "value": {raw}}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{key}");
        let (status, _, body) = app
            .call(GET, &format!("/api/data/{key}"), Some(&me_.access), None)
            .await;
        assert_eq!(status, 200, "{key}: {body}");
        assert_eq!(body["data"]["value"], sent, "{key}");
    }
}

#[tokio::test]
async fn no_token_is_issued_for_an_account_erased_while_its_mail_was_in_flight() {
    // The mailer reads the user, then issues the link's token; an erasure in between
    // must not leave a token that names the address (found as a flaky erasure test).
    let app = TestApp::spawn().await;
    let (user, admin) = tokio::join!(app.register_and_login(), app.account_with_role("admin"));
    let pg = app.pg().await;
    let issue = || async {
        common::store::account_tokens::insert(
            &pg,
            &Uuid::new_v4().into_bytes(),
            user.id,
            common::store::account_tokens::Purpose::VerifyEmail,
            &user.email,
            chrono::Utc::now() + chrono::Duration::hours(1),
        )
        .await
        .unwrap()
    };
    assert!(issue().await, "a live account gets its token");
    let (status, _, body) = app
        .call(
            DELETE,
            &format!("/api/users/{}?erase=true", user.id),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!issue().await, "an erased account gets none");
    let left: i64 = pg
        .query_one(
            "SELECT count(*) FROM account_tokens WHERE user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}
