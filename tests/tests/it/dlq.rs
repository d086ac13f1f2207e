//! `consumer dlq list|show|replay`: a registration dead-lettered because the consumer
//! could not open its password is replayed once the key is back, and persists once
//! however often it is replayed.

use std::time::Duration;

use registrar_consumer::dlq_tool::{self, Selection};
use registrar_tests::{registration_body, TestApp};

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_dead_letter_replayed_after_its_cause_is_fixed_persists_once() {
    let mut app = TestApp::spawn_without_consumer().await;
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
    let kafka = app.consumer_config().kafka;
    wait_until("the dead letter", || async {
        !dlq_tool::read_all(&kafka).await.unwrap().is_empty()
    })
    .await;
    let letters = dlq_tool::read_all(&kafka).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].kind(), "credential");
    assert!(
        letters[0].summary().starts_with("registration "),
        "{}",
        letters[0].summary()
    );
    assert!(
        !letters[0].summary().contains(&email),
        "the summary masks the email"
    );

    // The cause is fixed: the consumer gets its key back.
    app.stop_consumer().await;
    app.consumer_args = base_args;
    app.start_consumer().await;

    let credential = Selection {
        kind: Some("credential".into()),
        positions: vec![],
    };
    let dry = dlq_tool::replay(&kafka, &credential, true).await.unwrap();
    assert_eq!(dry.len(), 1);
    let other_kind = Selection {
        kind: Some("invalid".into()),
        positions: vec![],
    };
    assert!(dlq_tool::replay(&kafka, &other_kind, false)
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.user_count().await, 0, "a dry run replays nothing");

    let replayed = dlq_tool::replay(&kafka, &credential, false).await.unwrap();
    assert_eq!(replayed.len(), 1);
    app.wait_for_status(&email, "completed", Duration::from_secs(30))
        .await;
    // Replayed again (by position): the same registration id, still one user.
    let again = Selection {
        kind: None,
        positions: vec![letters[0].position()],
    };
    assert_eq!(
        dlq_tool::replay(&kafka, &again, false).await.unwrap().len(),
        1
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(app.user_count().await, 1);
    let registered: i64 = app
        .pg()
        .await
        .query_one(
            "SELECT count(*) FROM user_audit_log WHERE action = 'user.registered'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(registered, 1);
    assert!(registrar_tests::logs::captured().contains("dlq_replayed"));
}
