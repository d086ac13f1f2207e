//! Sessions end when they should: a refresh in flight cannot outlive a revocation, a
//! session has an absolute lifetime, a deleted or demoted user's token stops writing even
//! when Redis missed the revocation, and expired tokens are purged.

use std::time::Duration;

use registrar_tests::{Account, TestApp, TestOptions};
use reqwest::Method;
use serde_json::{json, Value};

async fn refresh(app: &TestApp, token: &str) -> (u16, Value) {
    let body = json!({ "refreshToken": token });
    let (status, _, body) = app
        .call(Method::POST, "/api/auth/refresh", None, Some(&body))
        .await;
    (status, body)
}

/// Refresh tokens of the user that still work.
async fn live_refresh_tokens(app: &TestApp, user: uuid::Uuid) -> i64 {
    app.pg()
        .await
        .query_one(
            "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL",
            &[&user],
        )
        .await
        .unwrap()
        .get(0)
}

/// Sends `path` with `body` in the background; returns its status and JSON body.
fn in_background(app: &TestApp, path: &str, body: Value) -> tokio::task::JoinHandle<(u16, Value)> {
    let request = app.http.post(app.url(path)).json(&body);
    tokio::spawn(async move {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (
            status,
            response.json::<Value>().await.unwrap_or(Value::Null),
        )
    })
}

fn session_of(app: &TestApp, account: &Account) -> uuid::Uuid {
    app.jwt_keys().verify(&account.access).unwrap().sid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_in_flight_during_a_revocation_is_refused_and_leaves_no_live_token() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    // A revocation in progress holds the user's row, as every revoking use case does.
    let mut revoker = app.pg().await;
    let tx = revoker.transaction().await.unwrap();
    tx.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user.id])
        .await
        .unwrap();
    let in_flight = in_background(
        &app,
        "/api/auth/refresh",
        json!({ "refreshToken": user.refresh }),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !in_flight.is_finished(),
        "the refresh waits for the revocation"
    );
    tx.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        &[&user.id],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(in_flight.await.unwrap().0, 401);
    let live = live_refresh_tokens(&app, user.id).await;
    assert_eq!(live, 0, "no refresh token outlives the revocation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_that_races_a_password_reset_gets_no_session() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    // A reset in progress holds the user's row, as every revoking use case does.
    let mut resetter = app.pg().await;
    let tx = resetter.transaction().await.unwrap();
    tx.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", &[&user.id])
        .await
        .unwrap();
    let in_flight = in_background(
        &app,
        "/api/auth/login",
        json!({ "email": user.email, "password": user.password }),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !in_flight.is_finished(),
        "the login's session waits for the reset in progress"
    );
    // The reset replaces the hash and ends every session, then commits.
    tx.execute(
        "UPDATE users SET password_hash = password_hash || 'x' WHERE id = $1",
        &[&user.id],
    )
    .await
    .unwrap();
    tx.execute(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL",
        &[&user.id],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("INVALID_CREDENTIALS")),
        "the password the login checked is no longer the account's: {body}"
    );
    let live = live_refresh_tokens(&app, user.id).await;
    assert_eq!(live, 0, "no session outlives the reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_at_its_absolute_lifetime_however_often_it_is_refreshed() {
    let app = TestApp::spawn_with(TestOptions {
        api_args: vec!["--session-max-lifetime-secs".into(), "4".into()],
        ..Default::default()
    })
    .await;
    let user = app.register_and_login().await;
    let started = std::time::Instant::now();
    let (status, first) = refresh(&app, &user.refresh).await;
    assert_eq!(status, 200, "{first}");
    assert!(first["refreshExpiresIn"].as_u64().unwrap() <= 4, "{first}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, second) = refresh(&app, first["refreshToken"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{second}");
    tokio::time::sleep(
        Duration::from_secs(4).saturating_sub(started.elapsed()) + Duration::from_millis(300),
    )
    .await;
    let (status, _) = refresh(&app, second["refreshToken"].as_str().unwrap()).await;
    assert_eq!(status, 401, "the session is over: log in again");
    assert_eq!(app.login(&user.email, &user.password).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_or_demoted_users_token_stops_writing_even_when_redis_missed_the_revocation() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let user = app.register_and_login().await;
    let other_admin = app.account_with_role("admin").await;
    let item = json!({ "key": "k", "value": 1 });

    let path = format!("/api/users/{}", user.id);
    let (status, _, _) = app
        .call(Method::DELETE, &path, Some(&admin.access), None)
        .await;
    assert_eq!(status, 200);
    // The revocation record never reached Redis (it was down at that moment).
    app.redis_del(&app.keys().revoked_session(session_of(&app, &user)))
        .await;
    let (status, _, body) = app
        .call(Method::POST, "/api/data", Some(&user.access), Some(&item))
        .await;
    assert_eq!(status, 401, "a deleted user's token writes nothing: {body}");

    let path = format!("/api/users/{}", other_admin.id);
    let demote = json!({ "role": "user" });
    let (status, _, _) = app
        .call(Method::PATCH, &path, Some(&admin.access), Some(&demote))
        .await;
    assert_eq!(status, 200);
    app.redis_del(&app.keys().revoked_session(session_of(&app, &other_admin)))
        .await;
    let promote_self = json!({ "role": "admin" });
    let (status, _, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&other_admin.access),
            Some(&promote_self),
        )
        .await;
    assert_eq!(
        status, 401,
        "a demoted admin's token has no admin rights left"
    );
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/data",
            Some(&other_admin.access),
            Some(&item),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_refresh_tokens_are_purged_and_live_ones_kept() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let pg = app.pg().await;
    let long_ago = chrono::Utc::now() - chrono::Duration::days(10);
    let old = common::store::sessions::NewToken {
        family_id: uuid::Uuid::now_v7(),
        user_id: user.id,
        token_hash: b"an expired token",
        expires_at: long_ago,
        session_started_at: long_ago,
        ip: None,
        user_agent: None,
    };
    common::store::sessions::insert(&pg, &old).await.unwrap();
    let before = chrono::Utc::now() - chrono::Duration::days(1);
    let purged = common::store::sessions::purge_expired(&pg, before)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(
        refresh(&app, &user.refresh).await.0,
        200,
        "live sessions stay"
    );
}
