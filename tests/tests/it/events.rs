//! The user-events topic: every account change publishes exactly its event from the
//! transactional outbox, read back from the real broker and decoded with the schema; a
//! relay that dies between publishing and marking publishes again with the same ids.

use std::collections::HashMap;
use std::time::Duration;

use common::events::user::{UserEvent, UserEventType};
use registrar_consumer::relay::{Mark, Relay};
use registrar_tests::{kafka, link_token, wait_for_mails, TestApp};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

/// The events of the topic, decoded, with their keys; waits for at least `count`.
async fn events(app: &TestApp, count: usize) -> Vec<(String, UserEvent)> {
    kafka::read_all(&app.events_topic, count, Duration::from_secs(30))
        .await
        .into_iter()
        .map(|r| {
            let key = String::from_utf8(r.key.unwrap_or_default()).unwrap();
            (key, UserEvent::decode(&r.payload).unwrap())
        })
        .collect()
}

/// An app whose consumer runs no relay, and a relay the test steps itself (with a pool
/// on the test's database).
async fn app_with_a_relay_of_its_own() -> (TestApp, Relay, deadpool_postgres::Pool) {
    let mut app = TestApp::spawn_without_consumer().await;
    app.consumer_args
        .extend(["--user-events-relay", "false"].map(String::from));
    app.start_consumer().await;
    let config = app.consumer_config();
    let pool = common::store::postgres::pool(&config.postgres).unwrap();
    let relay = Relay::new(
        &config.relay,
        &config.kafka,
        pool.clone(),
        &prometheus::Registry::new(),
    )
    .unwrap();
    (app, relay, pool)
}

async fn events_of(app: &TestApp, user: Uuid, count: usize) -> Vec<UserEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut want = count;
    loop {
        let all = events(app, want).await;
        let total = all.len();
        let mine: Vec<UserEvent> = all
            .into_iter()
            .filter(|(_, e)| e.user_id == user)
            .map(|(key, e)| {
                assert_eq!(key, user.to_string(), "keyed by user id");
                e
            })
            .collect();
        if mine.len() >= count || tokio::time::Instant::now() > deadline {
            return mine;
        }
        // Other users' events came first: wait for more.
        want = total + (count - mine.len());
    }
}

#[tokio::test]
async fn every_account_change_publishes_exactly_its_event() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let admin = app.account_with_role("admin").await;
    let path = format!("/api/users/{}", user.id);
    let patch = |token: &str, body: serde_json::Value| {
        let (path, token) = (path.clone(), token.to_owned());
        let app = &app;
        async move {
            let (status, _, body) = app
                .call(Method::PATCH, &path, Some(&token), Some(&body))
                .await;
            assert_eq!(status, 200, "{body}");
        }
    };
    patch(
        &user.access,
        json!({ "firstName": "Renamed", "occupation": "Pilot" }),
    )
    .await;
    patch(
        &user.access,
        json!({ "password": "a different passphrase 9", "currentPassword": user.password }),
    )
    .await;
    patch(&admin.access, json!({ "role": "moderator" })).await;
    let mail = wait_for_mails(&user.email, "Verify your email", 1, Duration::from_secs(30)).await;
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/auth/verify-email",
            None,
            Some(&json!({ "token": link_token(&mail[0]) })),
        )
        .await;
    assert_eq!(status, 200);
    app.call(
        Method::POST,
        "/api/auth/password-reset",
        None,
        Some(&json!({ "email": user.email })),
    )
    .await;
    let reset = wait_for_mails(
        &user.email,
        "Reset your password",
        1,
        Duration::from_secs(30),
    )
    .await;
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/auth/password-reset/confirm",
            None,
            Some(&json!({ "token": link_token(&reset[0]), "newPassword": "yet another passphrase 8" })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .call(Method::DELETE, &path, Some(&admin.access), None)
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("{path}?erase=true"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 200);

    let got = events_of(&app, user.id, 8).await;
    let types: Vec<UserEventType> = got.iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        [
            UserEventType::Registered,
            UserEventType::Updated,
            UserEventType::PasswordChanged,
            UserEventType::RoleChanged,
            UserEventType::EmailVerified,
            UserEventType::PasswordChanged,
            UserEventType::Deleted,
            UserEventType::Erased,
        ],
        "{got:#?}"
    );
    // In order, one per change: versions strictly increase, ids are unique.
    assert!(
        got.windows(2).all(|w| w[0].version < w[1].version),
        "{got:#?}"
    );
    let ids: std::collections::HashSet<Uuid> = got.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), got.len());
    let registered = &got[0];
    assert_eq!(
        (
            registered.email.as_deref(),
            registered.role.as_deref(),
            registered.version
        ),
        (Some(user.email.as_str()), Some("user"), 1)
    );
    let updated = &got[1];
    assert_eq!(updated.changed_fields, ["firstName", "occupation"]);
    assert_eq!(updated.actor_id, Some(user.id));
    assert!(updated.request_id.is_some(), "the request id travels");
    let role = &got[3];
    assert_eq!(
        (
            role.role.as_deref(),
            role.previous_role.as_deref(),
            role.actor_id
        ),
        (Some("moderator"), Some("user"), Some(admin.id))
    );
    assert_eq!(got[4].email.as_deref(), Some(user.email.as_str()));
    let erased = &got[7];
    assert_eq!(
        (
            erased.email.as_ref(),
            erased.request_id.as_ref(),
            erased.changed_fields.len()
        ),
        (None, None, 0),
        "an erasure carries no personal data"
    );
    // Nothing is left to publish (the cursor moves once the broker acknowledged).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while unpublished(&app).await > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(unpublished(&app).await, 0);
}

/// Events after the relay's cursor.
async fn unpublished(app: &TestApp) -> i64 {
    app.pg()
        .await
        .query_one(
            "SELECT count(*) FROM user_event_outbox
             WHERE seq > (SELECT published_seq FROM user_event_relay)",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_relay_killed_between_publish_and_mark_publishes_again_with_the_same_ids() {
    let (app, relay, _pool) = app_with_a_relay_of_its_own().await;
    let mut users = Vec::new();
    for _ in 0..3 {
        users.push(app.register_and_login().await.id);
    }

    assert_eq!(
        relay.step(Mark::CrashBeforeMarking).await.unwrap(),
        3,
        "published, not marked"
    );
    assert_eq!(
        relay.step(Mark::Sent).await.unwrap(),
        3,
        "the same events again"
    );
    assert_eq!(relay.step(Mark::Sent).await.unwrap(), 0, "then nothing");

    let outbox: Vec<Uuid> = app
        .pg()
        .await
        .query(
            "SELECT event_id FROM user_event_outbox
             WHERE seq <= (SELECT published_seq FROM user_event_relay) ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(outbox.len(), 3);
    let published = events(&app, 6).await;
    assert_eq!(published.len(), 6, "each event twice");
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    for (_, e) in &published {
        *seen.entry(e.event_id).or_default() += 1;
        assert!(users.contains(&e.user_id));
    }
    for id in &outbox {
        assert_eq!(
            seen.get(id),
            Some(&2),
            "event {id}: a duplicate with the same id, no gap"
        );
    }
    assert_eq!(seen.len(), 3);
}

/// An event whose transaction drew a lower `seq` but commits after a higher-numbered one
/// is neither skipped nor published out of order: the relay waits for the transactions
/// that hold numbers below the ones it publishes.
#[tokio::test]
async fn an_event_committed_after_a_later_numbered_one_is_published_first() {
    let (app, relay, pool) = app_with_a_relay_of_its_own().await;
    let relay = relay.with_batch(2);
    // One account's events: one key, one partition, so the topic keeps their order.
    let user = Uuid::now_v7();
    let event = || UserEvent::new(UserEventType::Updated, user, 2);

    // The late one draws its number first and commits last.
    let mut late_client = pool.get().await.unwrap();
    let late_tx = late_client.transaction().await.unwrap();
    let late = event();
    common::store::user_events::append(&*late_tx, std::slice::from_ref(&late))
        .await
        .unwrap();
    let early = [event(), event()];
    common::store::user_events::append(&**pool.get().await.unwrap(), &early)
        .await
        .unwrap();

    // The step waits for the late transaction instead of publishing past it.
    let step = tokio::spawn({
        let relay = std::sync::Arc::new(relay);
        let r = relay.clone();
        async move { (r.step(Mark::Sent).await.unwrap(), relay) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !step.is_finished(),
        "the relay waits for the open transaction"
    );
    late_tx.commit().await.unwrap();
    // Usually the waiting step publishes a full batch from the late event on; on a
    // slow machine its wait may run out first, and it publishes nothing. Either way the
    // order below holds.
    let (first, relay) = step.await.unwrap();
    assert!(first == 2 || first == 0, "{first}");
    let mut published = first;
    for _ in 0..4 {
        published += relay.step(Mark::Sent).await.unwrap();
    }
    assert_eq!(published, 3);
    let ids: Vec<Uuid> = events(&app, 3)
        .await
        .into_iter()
        .map(|(_, e)| e.event_id)
        .collect();
    assert_eq!(
        ids,
        [late.event_id, early[0].event_id, early[1].event_id],
        "in number order: the late event first"
    );
    assert_eq!(unpublished(&app).await, 0);
}

/// A writer that keeps its transaction open longer than the relay's wait holds the relay
/// back (nothing published past it, no error), and a rolled-back number is passed over.
#[tokio::test]
async fn the_relay_neither_passes_an_open_writer_nor_stops_at_a_rolled_back_one() {
    let (app, relay, pool) = app_with_a_relay_of_its_own().await;
    let event = || UserEvent::new(UserEventType::Updated, Uuid::now_v7(), 2);

    let mut open_client = pool.get().await.unwrap();
    let open_tx = open_client.transaction().await.unwrap();
    common::store::user_events::append(&*open_tx, &[event()])
        .await
        .unwrap();
    let after = [event()];
    common::store::user_events::append(&**pool.get().await.unwrap(), &after)
        .await
        .unwrap();
    assert_eq!(
        relay.step(Mark::Sent).await.unwrap(),
        0,
        "the open writer holds the relay back"
    );
    open_tx.rollback().await.unwrap();
    assert_eq!(relay.step(Mark::Sent).await.unwrap(), 1);
    assert_eq!(relay.step(Mark::Sent).await.unwrap(), 0);
    let got = events(&app, 1).await;
    assert_eq!(got[0].1.event_id, after[0].event_id);
    assert_eq!(unpublished(&app).await, 0);
}

/// The retention purge removes published events older than the retention and keeps
/// unpublished ones, however old.
#[tokio::test]
async fn the_purge_removes_old_published_events_and_keeps_unpublished_ones() {
    let (app, relay, pool) = app_with_a_relay_of_its_own().await;
    let event = || UserEvent::new(UserEventType::Updated, Uuid::now_v7(), 2);
    let pg = pool.get().await.unwrap();
    common::store::user_events::append(&**pg, &[event(), event(), event()])
        .await
        .unwrap();
    assert_eq!(relay.step(Mark::Sent).await.unwrap(), 3);
    common::store::user_events::append(&**pg, &[event()])
        .await
        .unwrap();
    pg.execute(
        "UPDATE user_event_outbox SET created_at = now() - interval '10 days'",
        &[],
    )
    .await
    .unwrap();
    // One published event is recent: it stays.
    pg.execute(
        "UPDATE user_event_outbox SET created_at = now()
         WHERE seq = (SELECT max(seq) FROM user_event_outbox
                      WHERE seq <= (SELECT published_seq FROM user_event_relay))",
        &[],
    )
    .await
    .unwrap();

    let purged = common::store::user_events::purge_published(
        &**pg,
        chrono::Utc::now() - chrono::Duration::days(7),
    )
    .await
    .unwrap();
    assert_eq!(purged, 2, "the two old published events");
    let left: i64 = pg
        .query_one("SELECT count(*) FROM user_event_outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        left, 2,
        "the recent published one and the old unpublished one"
    );
    assert_eq!(unpublished(&app).await, 1);
}
