//! The docker-compose broker's access control, run from its own scripts
//! (`deploy/kafka/start.sh`, `setup.sh`, `acls.tsv`) on Apache Kafka: only authenticated
//! principals get in, only the api (and the operator's replay) may write the registration
//! topic, and api and consumer do their whole job with exactly the ACLs granted.

use std::time::Duration;

use common::config::{KafkaConfig, KafkaSecurityProtocol};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use registrar_tests::broker::{deploy_node, DeployNode};
use registrar_tests::{registration_body, TestApp, TestOptions};

const TOPIC: &str = "user-registration";

fn kafka_config(node: &DeployNode, principal: &str, password: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: node.brokers.clone(),
        topic: TOPIC.to_owned(),
        properties: String::new(),
        security_protocol: KafkaSecurityProtocol::SaslPlaintext,
        ssl_ca_location: None,
        sasl_mechanism: Some("SCRAM-SHA-512".to_owned()),
        sasl_username: Some(principal.to_owned()),
        sasl_password: Some(secrecy::SecretString::from(password.to_owned())),
    }
}

fn client(node: &DeployNode, principal: &str) -> ClientConfig {
    common::events::kafka::client_config(&kafka_config(
        node,
        principal,
        &DeployNode::password(principal),
    ))
    .unwrap()
}

/// Produces one record as the api's producer would (idempotent, acks=all).
async fn produce(mut cc: ClientConfig, topic: &str) -> Result<(), String> {
    let producer: FutureProducer = cc
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(topic)
                .key("k")
                .payload("not a registration"),
            Duration::from_secs(10),
        )
        .await
        .map(|_| ())
        .map_err(|(e, _)| e.to_string())
}

/// Reads `topic` in `group` until `expected` records came, or returns the first error.
async fn consume(
    mut cc: ClientConfig,
    topic: &str,
    group: &str,
    expected: usize,
) -> Result<Vec<Vec<u8>>, String> {
    let consumer: StreamConsumer = cc
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut payloads = Vec::new();
    while payloads.len() < expected {
        match tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await {
            Ok(Ok(m)) => payloads.push(rdkafka::Message::payload(&m).unwrap_or_default().to_vec()),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => {
                return Err(format!(
                    "{} of {expected} records within 30 s",
                    payloads.len()
                ))
            }
        }
    }
    Ok(payloads)
}

fn denied(result: Result<impl std::fmt::Debug, String>, what: &str) {
    match result {
        Err(e) => assert!(
            e.contains("uthorization"),
            "{what}: failed, but not for want of rights: {e}"
        ),
        Ok(v) => panic!("{what} was allowed: {v:?}"),
    }
}

#[tokio::test]
async fn the_compose_broker_admits_only_scram_principals_and_only_the_api_writes_registrations() {
    let node = deploy_node();

    // Nobody gets in unauthenticated or with a wrong password.
    let mut plain = ClientConfig::new();
    plain
        .set("bootstrap.servers", &node.brokers)
        .set("message.timeout.ms", "5000");
    assert!(
        produce(plain, TOPIC).await.is_err(),
        "a plaintext client got in"
    );
    let wrong = common::events::kafka::client_config(&kafka_config(
        &node,
        "registrar-api",
        "not-the-password-0000",
    ))
    .unwrap();
    assert!(
        produce(wrong, TOPIC).await.is_err(),
        "a wrong password got in"
    );

    // Only the api and the operator's replay write the registration topic.
    produce(client(&node, "registrar-api"), TOPIC)
        .await
        .unwrap();
    denied(
        produce(client(&node, "registrar-consumer"), TOPIC).await,
        "the consumer writing registrations",
    );
    // The api writes nothing else and reads nothing.
    denied(
        produce(client(&node, "registrar-api"), "user-events").await,
        "the api writing user events",
    );
    denied(
        consume(
            client(&node, "registrar-api"),
            TOPIC,
            "registrar-consumer",
            1,
        )
        .await,
        "the api reading registrations",
    );
    // The operator replays; it writes no account events and reads in no other group.
    denied(
        produce(client(&node, "registrar-operator"), "user-events").await,
        "the operator writing user events",
    );
    denied(
        consume(
            client(&node, "registrar-operator"),
            TOPIC,
            "registrar-consumer",
            1,
        )
        .await,
        "the operator reading registrations in the consumers' group",
    );
    // What the topic holds: the api's record, nothing from the refused writers.
    let held = consume(client(&node, "admin"), TOPIC, "test-reader", 1)
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert!(
        consume(client(&node, "admin"), TOPIC, "test-reader-2", 2)
            .await
            .is_err(),
        "a refused write reached the topic"
    );
}

#[test]
fn api_and_consumer_run_the_whole_pipeline_with_exactly_the_granted_acls() {
    // The broker outlives the runtime: the in-process consumer closes (leaves its group)
    // when the runtime shuts down, and librdkafka's close waits for a broker that is
    // gone forever. Locals drop in reverse order, on a panic too.
    let node = deploy_node();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(the_pipeline_with_the_granted_acls(&node));
}

async fn the_pipeline_with_the_granted_acls(node: &DeployNode) {
    let sasl = |principal: &str| {
        [
            "--kafka-brokers".to_owned(),
            node.brokers.clone(),
            "--kafka-topic".to_owned(),
            TOPIC.to_owned(),
            "--kafka-security-protocol".to_owned(),
            "sasl-plaintext".to_owned(),
            "--kafka-sasl-mechanism".to_owned(),
            "SCRAM-SHA-512".to_owned(),
            "--kafka-sasl-username".to_owned(),
            principal.to_owned(),
            "--kafka-sasl-password".to_owned(),
            DeployNode::password(principal),
        ]
    };
    let mut api_args = sasl("registrar-api").to_vec();
    // The group whose lag the api reports (the console's live view).
    api_args.extend([
        "--kafka-group-id".to_owned(),
        "registrar-consumer".to_owned(),
    ]);
    let mut app = TestApp::spawn_with(TestOptions {
        without_consumer: true,
        api_args,
        ..Default::default()
    })
    .await;
    app.consumer_args.extend(sasl("registrar-consumer"));
    app.consumer_args.extend(
        [
            "--kafka-group-id",
            "registrar-consumer",
            "--user-events-topic",
            "user-events",
            "--client-events-topic",
            "oidc-client-events",
        ]
        .map(str::to_owned),
    );
    app.start_consumer().await;

    // A sign-up goes through: the api writes, the consumer reads in its group, persists
    // and publishes the account event.
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", Duration::from_secs(60))
        .await;
    let events = consume(client(node, "admin"), "user-events", "test-reader", 1)
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&events[0]).contains("user.registered"),
        "{:?}",
        String::from_utf8_lossy(&events[0])
    );

    // A forged record (the operator may write the topic, but holds no signing key) is
    // dead-lettered by the consumer, and the operator reads the dead letter back.
    produce(client(node, "registrar-operator"), TOPIC)
        .await
        .unwrap();
    let operator = kafka_config(
        node,
        "registrar-operator",
        &DeployNode::password("registrar-operator"),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let dead = loop {
        let dead = common::ops::dead_letters::read_all(&operator)
            .await
            .unwrap();
        if !dead.is_empty() || tokio::time::Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(dead.len(), 1, "the forged record was not dead-lettered");
    assert_eq!(dead[0].kind(), "unauthenticated");

    // The console, through the api's own principal: the dead letters, and the group's
    // lag per partition (which needs Describe on the consumers' group).
    let admin = app.account_with_role("admin").await;
    let (status, _, letters) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/admin/dead-letters",
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 200, "{letters}");
    assert_eq!(letters["count"], 1);
    let (_, _, pipeline) = app
        .call(
            reqwest::Method::GET,
            "/api/v1/admin/pipeline",
            Some(&admin.access),
            None,
        )
        .await;
    assert!(
        !pipeline["data"]["lag"].as_array().unwrap().is_empty(),
        "the api measured no lag under its ACLs: {pipeline}"
    );
}
