//! `consumer dlq list|show|replay`: a registration dead-lettered because the consumer
//! could not open its password is replayed once the key is back, and persists once
//! however often it is replayed.

use std::time::Duration;

use common::ops::dead_letters::{self as dlq_tool, Selection};
use registrar_tests::{registration_body, wait_until, TestApp};

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
    let verifier = app.consumer_config().record_verifier().unwrap();
    let dry = dlq_tool::replay(&kafka, &verifier, &credential, true)
        .await
        .unwrap();
    assert_eq!(dry.replayed.len(), 1);
    let other_kind = Selection {
        kind: Some("invalid".into()),
        positions: vec![],
    };
    assert!(dlq_tool::replay(&kafka, &verifier, &other_kind, false)
        .await
        .unwrap()
        .replayed
        .is_empty());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.user_count().await, 0, "a dry run replays nothing");

    let replayed = dlq_tool::replay(&kafka, &verifier, &credential, false)
        .await
        .unwrap();
    assert_eq!(replayed.replayed.len(), 1);
    app.wait_for_status(&email, "completed", Duration::from_secs(30))
        .await;
    // Replayed again (by position): the same registration id, still one user.
    let again = Selection {
        kind: None,
        positions: vec![letters[0].position()],
    };
    assert_eq!(
        dlq_tool::replay(&kafka, &verifier, &again, false)
            .await
            .unwrap()
            .replayed
            .len(),
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

/// A dead letter is whatever reached the DLQ topic: its `origin.topic` header must not
/// choose where a replay writes, and a record without a valid signature must not be
/// put back at all.
#[tokio::test]
async fn a_replay_writes_only_to_the_registration_topic_and_refuses_unsigned_dead_letters() {
    use common::events::signature::{Purpose, SIGNATURE_HEADER};
    let app = TestApp::spawn_without_consumer().await;
    let kafka = app.consumer_config().kafka;
    let verifier = app.consumer_config().record_verifier().unwrap();
    let elsewhere = format!("{}-elsewhere", app.topic);
    registrar_tests::kafka::create_topic(&elsewhere, 1).await;
    // A signed registration whose dead letter claims to come from another topic, and an
    // unsigned one.
    let (email, _, _) = registration_body();
    let event = registrar_tests::registration_event(
        &email,
        common::events::registration::Credential::PasswordHash("$2b$04$x".into()),
    );
    let payload = event.encode().unwrap();
    let signature = app.record_signature(Purpose::Import, &email, &payload);
    let dlq = format!("{}.dlq", app.topic);
    registrar_tests::kafka::produce_with_headers(
        &dlq,
        &email,
        &payload,
        &[
            ("origin.topic", &elsewhere),
            ("error.kind", "invalid"),
            (SIGNATURE_HEADER, &signature),
        ],
    )
    .await;
    registrar_tests::kafka::produce_with_headers(
        &dlq,
        "forged@example.com",
        &payload,
        &[("origin.topic", &app.topic), ("error.kind", "invalid")],
    )
    .await;
    let all = Selection {
        kind: None,
        positions: vec![],
    };
    let outcome = dlq_tool::replay(&kafka, &verifier, &all, false)
        .await
        .unwrap();
    assert_eq!(outcome.replayed.len(), 1);
    assert_eq!(outcome.refused.len(), 1);
    assert!(
        outcome.refused[0].1.contains("no registrar-signature"),
        "{:?}",
        outcome.refused
    );
    let on_registration =
        registrar_tests::kafka::read_all(&app.topic, 2, Duration::from_secs(5)).await;
    assert_eq!(
        on_registration.len(),
        1,
        "the signed one, on the registration topic"
    );
    assert_eq!(
        on_registration[0].header(SIGNATURE_HEADER),
        Some(signature.as_str()),
        "the signature travels with the replayed record"
    );
    assert!(
        registrar_tests::kafka::read_all(&elsewhere, 1, Duration::from_secs(2))
            .await
            .is_empty(),
        "nothing was written to the topic the header named"
    );
}
