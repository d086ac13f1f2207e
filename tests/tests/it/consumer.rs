//! The consumer: dead letters, broken credentials, crashes and outages.

use std::time::Duration;

use common::domain::email::Email;
use common::events::registration::{Credential, RegistrationEvent};
use common::events::seal::SealingKey;
use common::events::signature::Purpose;
use registrar_tests::chaos::ChaosProxy;
use registrar_tests::kafka::{produce_raw, read_all};
use registrar_tests::{logs, registration_body, TestApp, TestOptions};
use secrecy::SecretString;
use serde_json::Value;
use uuid::Uuid;

const SETTLE: Duration = Duration::from_secs(30);

/// An event as the api would publish it, sealed to this test's consumer key.
fn sealed_event(app: &TestApp, email: &str, password: &str) -> RegistrationEvent {
    let key = SealingKey::from_base64(&app.seal_key_id, &app.seal_public_key).unwrap();
    let mut event =
        registrar_tests::registration_event(email, Credential::PasswordHash(String::new()));
    app.remember_registration(email, event.registration_id);
    event.credential = Credential::Sealed(key.seal(
        event.registration_id,
        &Email::parse(email).unwrap(),
        &SecretString::from(password.to_owned()),
    ));
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_topic_goes_to_the_dlq_with_its_origin_and_the_next_registration_persists() {
    let app = TestApp::spawn().await;
    // Signed as the api signs, so the record gets past the signature check and fails
    // at decoding.
    app.produce_signed(
        Purpose::Registration,
        "garbage",
        b"\x00\x01 definitely not avro",
    )
    .await;
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", SETTLE).await;

    let dlq = read_all(&format!("{}.dlq", app.topic), 1, SETTLE).await;
    assert_eq!(dlq.len(), 1);
    let letter = &dlq[0];
    assert_eq!(letter.payload, b"\x00\x01 definitely not avro");
    assert_eq!(letter.key.as_deref(), Some(&b"garbage"[..]));
    assert_eq!(letter.header("origin.topic"), Some(app.topic.as_str()));
    assert_eq!(letter.header("error.kind"), Some("undecodable"));
    assert!(letter.header("error").unwrap().contains("C3 01"));

    let source = read_all(&app.topic, 2, SETTLE).await;
    let original = source
        .iter()
        .find(|r| r.key.as_deref() == Some(&b"garbage"[..]))
        .unwrap();
    assert_eq!(
        letter.header("origin.partition"),
        Some(original.partition.to_string().as_str())
    );
    assert_eq!(
        letter.header("origin.offset"),
        Some(original.offset.to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_ciphertext_and_an_unknown_key_id_fail_their_registrations_and_the_consumer_goes_on(
) {
    let app = TestApp::spawn().await;
    let tampered_email = format!("tampered.{}@example.com", Uuid::new_v4().simple());
    let mut tampered = sealed_event(&app, &tampered_email, "tampered-password");
    if let Credential::Sealed(s) = &mut tampered.credential {
        s.ciphertext[0] ^= 0x55;
    }
    let unknown_email = format!("unknown.{}@example.com", Uuid::new_v4().simple());
    let mut unknown = sealed_event(&app, &unknown_email, "unknown-password");
    if let Credential::Sealed(s) = &mut unknown.credential {
        s.key_id = "retired-key".into();
    }
    app.produce_signed(
        Purpose::Registration,
        &tampered_email,
        &tampered.encode().unwrap(),
    )
    .await;
    app.produce_signed(
        Purpose::Registration,
        &unknown_email,
        &unknown.encode().unwrap(),
    )
    .await;

    for email in [&tampered_email, &unknown_email] {
        let failed = app.wait_for_status(email, "failed", SETTLE).await;
        assert_eq!(failed["data"]["reason"], "INVALID_CREDENTIAL_ENVELOPE");
    }
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", SETTLE).await;

    assert_eq!(app.user_count().await, 1);
    let dlq = read_all(&format!("{}.dlq", app.topic), 2, SETTLE).await;
    assert_eq!(dlq.len(), 2);
    assert!(dlq
        .iter()
        .all(|r| r.header("error.kind") == Some("credential")));
    assert!(dlq
        .iter()
        .any(|r| r.header("error").unwrap().contains("retired-key")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_registration_is_a_success_without_a_second_row_or_audit_row() {
    let app = TestApp::spawn().await;
    let email = format!("twice.{}@example.com", Uuid::new_v4().simple());
    let event = sealed_event(&app, &email, "twice-password");
    let bytes = event.encode().unwrap();
    app.produce_signed(Purpose::Registration, &email, &bytes)
        .await;
    app.wait_for_status(&email, "completed", SETTLE).await;
    app.produce_signed(Purpose::Registration, &email, &bytes)
        .await;
    // A later registration on the same partition proves the duplicate was processed.
    let marker = sealed_event(&app, &email.replace("twice", "marker"), "marker-password");
    app.produce_signed(Purpose::Registration, &email, &marker.encode().unwrap())
        .await;
    app.wait_for_status(&email.replace("twice", "marker"), "completed", SETTLE)
        .await;

    let status = app.wait_for_status(&email, "completed", SETTLE).await;
    assert_eq!(
        status["data"]["registrationId"],
        event.registration_id.to_string()
    );
    assert_eq!(
        users_and_audits(&app, &email, event.registration_id).await,
        (1, 1)
    );
}

/// Users with `email` and audit rows of the registration.
async fn users_and_audits(app: &TestApp, email: &str, registration_id: Uuid) -> (i64, i64) {
    let pg = app.pg().await;
    let users: i64 = pg
        .query_one("SELECT count(*) FROM users WHERE email = $1", &[&email])
        .await
        .unwrap()
        .get(0);
    let audits: i64 = pg
        .query_one(
            "SELECT count(*) FROM user_audit_log WHERE registration_id = $1",
            &[&registration_id],
        )
        .await
        .unwrap()
        .get(0);
    (users, audits)
}

/// What a retried produce without idempotence can cause: the same record twice in one
/// batch. One user, one audit row, `completed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_registration_twice_in_one_batch_is_one_user_and_one_audit_row() {
    let mut app = TestApp::spawn_without_consumer().await;
    let email = format!("batchtwice.{}@example.com", Uuid::new_v4().simple());
    let event = sealed_event(&app, &email, "batch-twice-password");
    let bytes = event.encode().unwrap();
    app.produce_signed(Purpose::Registration, &email, &bytes)
        .await;
    app.produce_signed(Purpose::Registration, &email, &bytes)
        .await;
    app.remember_registration(&email, event.registration_id);
    app.start_consumer().await;
    app.wait_for_status(&email, "completed", SETTLE).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        users_and_audits(&app, &email, event.registration_id).await,
        (1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plaintext_password_appears_nowhere_kafka_redis_postgresql_or_logs() {
    let app = TestApp::spawn().await;
    let (email, password, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", SETTLE).await;
    let needle = password.as_bytes();
    let contains = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);

    let records = read_all(&app.topic, 1, SETTLE).await;
    assert_eq!(records.len(), 1);
    assert!(
        !contains(&records[0].payload),
        "password in the Kafka record"
    );
    assert!(records[0]
        .headers
        .iter()
        .all(|(_, v)| !contains(v.as_bytes())));

    for key in app.redis_keys().await {
        let value = app.redis_get(&key).await.unwrap_or_default();
        assert!(!contains(value.as_bytes()), "password in Redis key {key}");
    }

    let pg = app.pg().await;
    for table in ["users", "user_audit_log"] {
        let rows = pg
            .query(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
            .await
            .unwrap();
        for row in rows {
            let text: String = row.get(0);
            assert!(!text.contains(&password), "password in {table}");
        }
    }

    let logs = logs::captured();
    assert!(!logs.is_empty(), "the logs were captured");
    assert!(!logs.contains(&password), "password in the logs");
    assert!(!logs.contains(&email), "full email in the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_aborted_mid_stream_and_restarted_persists_every_accepted_registration_exactly_once(
) {
    let mut app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        production_argon2: true,
        consumer_batch_size: Some(4),
        ..Default::default()
    })
    .await;
    let total: i64 = 40;
    let mut emails = Vec::new();
    for _ in 0..total {
        let (email, _, body) = registration_body();
        assert_eq!(app.post_registration(&body).await.status(), 202);
        emails.push(email);
    }
    app.start_consumer().await;
    let deadline = tokio::time::Instant::now() + SETTLE;
    while app.user_count().await < 8 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "consumer made no progress"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.abort_consumer().await;
    let persisted_at_crash = app.user_count().await;
    assert!(
        persisted_at_crash < total,
        "the crash must happen mid-stream ({persisted_at_crash} of {total} persisted)"
    );

    app.start_consumer().await;
    for email in &emails {
        app.wait_for_status(email, "completed", Duration::from_secs(90))
            .await;
    }
    let pg = app.pg().await;
    let row = pg
        .query_one(
            "SELECT count(*), count(DISTINCT email), (SELECT count(*) FROM user_audit_log) FROM users",
            &[],
        )
        .await
        .unwrap();
    let (users, distinct, audits): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((users, distinct, audits), (total, total, total));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_backs_off_while_postgresql_is_down_and_resumes_by_itself() {
    let proxy = ChaosProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let mut app = TestApp::spawn_without_consumer().await;
    let through_proxy = app
        .database_url
        .replace("127.0.0.1:5432", &proxy.address.to_string());
    app.consumer_args
        .extend(["--database-url".to_string(), through_proxy]);
    app.consumer_args
        .extend(["--database-timeout-ms".to_string(), "500".to_string()]);
    app.start_consumer().await;
    proxy.cut();

    let (email, _, body) = registration_body();
    assert_eq!(
        app.post_registration(&body).await.status(),
        202,
        "intake needs no PostgreSQL"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status: Value = app.get_status(&email).await.json().await.unwrap();
    assert_eq!(status["data"]["status"], "pending");
    assert_eq!(app.user_count().await, 0);
    let probe = app.consumer_probe_address().unwrap();
    let ready = app
        .http
        .get(format!("http://{probe}/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    proxy.restore();
    app.wait_for_status(&email, "completed", SETTLE).await;
    assert_eq!(app.user_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_backs_off_while_redis_is_down_and_resumes_by_itself() {
    let proxy = ChaosProxy::start("127.0.0.1:6379".parse().unwrap()).await;
    let app = TestApp::spawn_with(TestOptions {
        consumer_redis_url: Some(format!("redis://{}", proxy.address)),
        ..Default::default()
    })
    .await;
    proxy.cut();
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The user may be in PostgreSQL already; Redis was not told, so the offset must not
    // have moved on: after the outage the status is completed.
    let status: Value = app.get_status(&email).await.json().await.unwrap();
    assert_eq!(status["data"]["status"], "pending");
    proxy.restore();
    app.wait_for_status(&email, "completed", SETTLE).await;
    assert_eq!(app.user_count().await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_finishes_and_commits_so_a_new_consumer_redelivers_nothing() {
    let mut app = TestApp::spawn().await;
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", SETTLE).await;
    app.stop_consumer().await;
    // Remove the outcome from Redis: only a redelivery would write it again.
    app.redis_del(&app.keys().completed(&email.parse().unwrap()))
        .await;
    app.start_consumer().await;
    let (second, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&second, "completed", SETTLE).await;
    assert_eq!(
        app.redis_get(&app.keys().completed(&email.parse().unwrap()))
            .await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_accepted_registration_is_lost_across_a_graceful_shutdown_under_load() {
    let mut app = TestApp::spawn_with(TestOptions {
        consumer_batch_size: Some(8),
        ..Default::default()
    })
    .await;
    let accepted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = tokio_util::sync::CancellationToken::new();
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (http, url, accepted, stop) = (
            app.http.clone(),
            app.url("/api/users"),
            accepted.clone(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let (email, _, body) = registration_body();
                match http.post(&url).json(&body).send().await {
                    Ok(r) if r.status() == 202 => accepted.lock().unwrap().push(email),
                    Ok(_) => {}
                    Err(_) => break, // the listener is closed: shutdown reached us
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // SIGTERM under load: the api drains and flushes, then the consumer finishes its
    // batch and commits.
    app.shutdown_api().await.unwrap();
    app.stop_consumer().await;
    stop.cancel();
    for c in clients {
        c.await.unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert!(
        accepted.len() >= 10,
        "load was applied ({} accepted)",
        accepted.len()
    );

    // A new consumer finishes what the old one left; every 202 must be in PostgreSQL.
    app.start_consumer().await;
    let pg = app.pg().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let count: i64 = pg
            .query_one("SELECT count(*) FROM users", &[])
            .await
            .unwrap()
            .get(0);
        if count >= accepted.len() as i64 {
            assert_eq!(count, accepted.len() as i64, "exactly once");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} of {} persisted",
            accepted.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for email in &accepted {
        let n: i64 = pg
            .query_one("SELECT count(*) FROM users WHERE email = $1", &[email])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 1, "{email}");
    }
}

/// A batch holds BATCH_SIZE records to hash, or four times as many pre-hashed ones (an
/// import's): their insert is all the work there is, and a bigger transaction costs
/// less per user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_takes_more_prehashed_records_than_records_to_hash() {
    let mut app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        consumer_batch_size: Some(10),
        ..Default::default()
    })
    .await;
    app.consumer_args
        .extend(["--batch-wait-ms", "3000"].map(String::from));
    let producer = registrar_tests::kafka::producer();
    let total = 40;
    for i in 0..total {
        let email = format!("prehashed-{i}-{}@example.com", app.id);
        let mut event = sealed_event(&app, &email, "correct-horse-battery");
        event.credential = Credential::PasswordHash(bcrypt::hash("x", 4).unwrap());
        let payload = event.encode().unwrap();
        let signature = app.record_signature(Purpose::Import, &email, &payload);
        producer
            .send(
                rdkafka::producer::FutureRecord::to(&app.topic)
                    .key(&email)
                    .payload(&payload)
                    .headers(registrar_tests::kafka::headers_with(&[
                        (
                            common::events::kafka::CREDENTIAL_HEADER,
                            common::events::kafka::CREDENTIAL_PREHASHED,
                        ),
                        (common::events::signature::SIGNATURE_HEADER, &signature),
                    ])),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
    app.start_consumer().await;
    let deadline = tokio::time::Instant::now() + SETTLE;
    while app.user_count().await < total {
        assert!(tokio::time::Instant::now() < deadline, "not all persisted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = app.consumer_metrics().await;
    let sample = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} "))?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
    };
    let (records, batches) = (
        sample("registrar_consumer_batch_size_sum"),
        sample("registrar_consumer_batch_size_count"),
    );
    assert_eq!(records, total as f64);
    assert!(
        records / batches > 10.0,
        "{records} records in {batches} batches: no batch went past BATCH_SIZE"
    );
}

fn new_users(prefix: &str, n: usize) -> Vec<common::store::users::NewUser> {
    (0..n)
        .map(|i| {
            let email = format!("{prefix}-{i}@example.com");
            let profile = common::domain::registration::Profile::parse(
                common::domain::registration::ProfileInput {
                    email: Some(&email),
                    first_name: Some("Batch"),
                    last_name: Some("Insert"),
                    gender: Some("female"),
                    sex: Some("female"),
                    occupation: Some("Tester"),
                    ..Default::default()
                },
                common::domain::registration::RequiredFields::NONE,
            )
            .unwrap();
            common::store::users::NewUser {
                registration_id: Uuid::new_v4(),
                profile,
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA".into(),
                submitted_at: chrono::Utc::now(),
                request_id: None,
                role: common::domain::role::Role::User,
                created_at: None,
                email_verified: true,
                import: None,
                provisioning: None,
                passkey: None,
                identity: None,
            }
        })
        .collect()
}

/// Large batches try the plain insert first; a batch with a taken email, a redelivery
/// and a record twice falls back to the checking insert and gets the same outcomes, the
/// batch after it checks too, and a clean batch brings the plain insert back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_with_conflicts_gets_the_same_outcomes_after_the_plain_insert_fails() {
    use common::store::users::{insert_batch, InsertHint, InsertOutcome, PLAIN_INSERT_MIN};
    let app = TestApp::spawn_without_consumer().await;
    let pool = common::store::postgres::pool(&app.consumer_config().postgres).unwrap();
    let mut client = pool.get().await.unwrap();
    let hint = InsertHint::default();
    let run = Uuid::new_v4().simple().to_string();
    let n = PLAIN_INSERT_MIN + 8;

    let first = new_users(&format!("plain-{run}"), n);
    let first_outcomes = insert_batch(&mut client, &first, &hint).await.unwrap();
    assert!(first_outcomes
        .iter()
        .all(|o| matches!(o, InsertOutcome::Created { .. })));
    assert!(!hint.expects_conflicts());

    let mut second = new_users(&format!("mixed-{run}"), n);
    second[3].profile = first[0].profile.clone(); // an email someone owns
    second[7] = first[1].clone(); // a redelivery
    second[12] = second[11].clone(); // the same record twice in the batch
    let outcomes = insert_batch(&mut client, &second, &hint).await.unwrap();
    assert_eq!(outcomes[3], InsertOutcome::EmailTaken);
    let InsertOutcome::Created { user_id } = first_outcomes[1] else {
        unreachable!()
    };
    assert_eq!(outcomes[7], InsertOutcome::AlreadyPersisted { user_id });
    let InsertOutcome::Created { user_id } = outcomes[11] else {
        panic!("{:?}", outcomes[11]);
    };
    assert_eq!(outcomes[12], InsertOutcome::AlreadyPersisted { user_id });
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, InsertOutcome::Created { .. }))
        .count();
    assert_eq!(created, n - 3);
    assert!(hint.expects_conflicts());

    let pg = app.pg().await;
    let count = |sql: &'static str, pattern: String| {
        let pg = &pg;
        async move {
            pg.query_one(sql, &[&pattern])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(
        count(
            "SELECT count(*) FROM users WHERE email LIKE $1",
            format!("mixed-{run}-%")
        )
        .await,
        (n - 3) as i64
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM user_audit_log a JOIN users u ON u.id = a.user_id WHERE u.email LIKE $1",
            format!("%-{run}-%")
        )
        .await,
        (2 * n - 3) as i64,
        "one audit row per new user"
    );

    let third = new_users(&format!("clean-{run}"), n);
    let outcomes = insert_batch(&mut client, &third, &hint).await.unwrap();
    assert!(outcomes
        .iter()
        .all(|o| matches!(o, InsertOutcome::Created { .. })));
    assert!(
        !hint.expects_conflicts(),
        "a clean batch brings the plain insert back"
    );
}

/// Anything that reaches the broker could produce a verified admin with a password
/// hash it knows. Unsigned, or signed by a key the consumer does not list, such a
/// record is dead-lettered as `unauthenticated` and persists nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_admin_record_without_a_valid_signature_is_dead_lettered_and_persists_nothing() {
    let app = TestApp::spawn().await;
    let forged = |email: &str| {
        let mut event = sealed_event(&app, email, "irrelevant-password");
        event.role = Some("admin".into());
        event.email_verified = true;
        event.credential =
            Credential::PasswordHash(bcrypt::hash("attacker-knows-this", 4).unwrap());
        event
    };
    let unsigned = format!("forged.{}@example.com", Uuid::new_v4().simple());
    produce_raw(&app.topic, &unsigned, &forged(&unsigned).encode().unwrap()).await;
    let stranger = format!("stranger.{}@example.com", Uuid::new_v4().simple());
    let payload = forged(&stranger).encode().unwrap();
    let (spec, _) = common::events::signature::generate(Purpose::Import, "attacker");
    let signature = common::events::signature::RecordSigner::parse(Purpose::Import, &spec)
        .unwrap()
        .sign(stranger.as_bytes(), &payload);
    registrar_tests::kafka::produce_with_headers(
        &app.topic,
        &stranger,
        &payload,
        &[(common::events::signature::SIGNATURE_HEADER, &signature)],
    )
    .await;
    // A registration after them proves both were processed.
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", SETTLE).await;

    let dlq = read_all(&format!("{}.dlq", app.topic), 2, SETTLE).await;
    assert_eq!(dlq.len(), 2, "{dlq:?}");
    assert!(dlq
        .iter()
        .all(|r| r.header("error.kind") == Some("unauthenticated")));
    assert!(dlq.iter().any(|r| r
        .header("error")
        .unwrap()
        .contains("no registrar-signature")));
    assert!(dlq
        .iter()
        .any(|r| r.header("error").unwrap().contains("attacker")));
    assert_eq!(
        app.user_count().await,
        1,
        "only the real registration persisted"
    );
}

/// The registration key is on every api pod; only the import key may vouch for a role,
/// a verified address or a password hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_signed_with_the_registration_key_cannot_carry_a_role_a_verified_email_or_a_hash()
{
    let app = TestApp::spawn().await;
    let mut emails = Vec::new();
    for (i, change) in ["role", "verified", "hash"].iter().enumerate() {
        let email = format!("escalate{i}.{}@example.com", Uuid::new_v4().simple());
        let mut event = sealed_event(&app, &email, "escalation-password");
        match *change {
            "role" => event.role = Some("admin".into()),
            "verified" => event.email_verified = true,
            _ => event.credential = Credential::PasswordHash(bcrypt::hash("x", 4).unwrap()),
        }
        app.produce_signed(Purpose::Registration, &email, &event.encode().unwrap())
            .await;
        emails.push(email);
    }
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", SETTLE).await;

    let dlq = read_all(&format!("{}.dlq", app.topic), 3, SETTLE).await;
    assert_eq!(dlq.len(), 3, "{dlq:?}");
    assert!(dlq
        .iter()
        .all(|r| r.header("error.kind") == Some("unauthenticated")));
    for field in ["role", "emailVerified", "passwordHash"] {
        assert!(
            dlq.iter()
                .any(|r| r.header("error").unwrap().starts_with(field)),
            "{field}: {dlq:?}"
        );
    }
    assert_eq!(app.user_count().await, 1);
    // The same role under the import key is honoured (what `api import` does).
    let imported = format!("imported.{}@example.com", Uuid::new_v4().simple());
    let mut event = sealed_event(&app, &imported, "imported-password");
    event.role = Some("moderator".into());
    app.produce_signed(Purpose::Import, &imported, &event.encode().unwrap())
        .await;
    app.wait_for_status(&imported, "completed", SETTLE).await;
    let role: String = app
        .pg()
        .await
        .query_one(
            "SELECT role::text FROM users WHERE email = $1",
            &[&imported],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(role, "moderator");
}
