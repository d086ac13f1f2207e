//! Crash recovery with real processes: the consumer binary is `kill -9`ed under load (as
//! an OOM kill does) and a new one started at once; the group must hand the partitions
//! over and every accepted registration must become exactly one user.

use std::time::{Duration, Instant};

use futures::StreamExt;
use registrar_tests::{registration_body, TestApp, TestOptions};

/// Posts `n` registrations, `concurrency` at a time; returns how many got a 202.
async fn post_many(app: &TestApp, n: usize, concurrency: usize) -> usize {
    let bodies: Vec<_> = (0..n).map(|_| registration_body().2).collect();
    futures::stream::iter(bodies.iter())
        .map(|body| app.post_registration(body))
        .buffer_unordered(concurrency)
        .filter(|r| futures::future::ready(r.status() == 202))
        .count()
        .await
}

async fn wait_for_users(app: &TestApp, at_least: i64, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if app.user_count().await >= at_least {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_with_sigkill_under_load_is_replaced_and_every_202_becomes_one_user() {
    let app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        partitions: Some(4),
        ..Default::default()
    })
    .await;
    let mut first = app.spawn_consumer_process("crash-first");
    let mut accepted = post_many(&app, 120, 8).await;
    assert!(
        wait_for_users(&app, 1, Duration::from_secs(30))
            .await
            .is_some(),
        "the first consumer never persisted anything (log: {})",
        first.log_path.display()
    );
    // Keep the load going while the consumer dies and its successor joins.
    let load = post_many(&app, 120, 8);
    let kill_and_restart = async {
        first.kill_9();
        let killed_at = Instant::now();
        (app.spawn_consumer_process("crash-second"), killed_at)
    };
    let (more, (second, killed_at)) = tokio::join!(load, kill_and_restart);
    accepted += more;
    assert_eq!(accepted, 240, "every registration was accepted");

    let expected = accepted as i64;
    let remaining = Duration::from_secs(30).saturating_sub(killed_at.elapsed());
    let took = wait_for_users(&app, expected, remaining).await;
    assert!(
        took.is_some(),
        "30 s after the kill only {} of {expected} users exist (log: {})",
        app.user_count().await,
        second.log_path.display()
    );
    eprintln!(
        "recovered: all {expected} users {:?} after the kill",
        killed_at.elapsed()
    );
    // Exactly once: no more users than 202s, one registration audit row each, even for
    // the records the killed consumer had persisted but not committed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.user_count().await, expected);
    let audited: i64 = app
        .pg()
        .await
        .query_one(
            "SELECT count(*) FROM user_audit_log WHERE action = 'user.registered'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, expected);
}
