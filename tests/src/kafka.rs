//! Kafka helpers for tests: topics per test, raw produce, reading a topic from the start.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};

use crate::kafka_brokers;

fn admin() -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()
        .unwrap_or_else(|e| panic!("admin client: {e}"))
}

/// Creates `<topic>` and `<topic>.dlq`.
pub async fn create_topics(topic: &str, partitions: i32) {
    let dlq = format!("{topic}.dlq");
    let topics = [
        NewTopic::new(topic, partitions, TopicReplication::Fixed(1)),
        NewTopic::new(&dlq, partitions, TopicReplication::Fixed(1)),
    ];
    let results = admin()
        .create_topics(
            &topics,
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap_or_else(|e| panic!("create topics: {e}"));
    for r in results {
        if let Err((name, code)) = r {
            panic!("topic {name} not created: {code}");
        }
    }
}

/// Creates one topic.
pub async fn create_topic(topic: &str, partitions: i32) {
    let results = admin()
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .unwrap_or_else(|e| panic!("create topic: {e}"));
    for r in results {
        if let Err((name, code)) = r {
            panic!("topic {name} not created: {code}");
        }
    }
}

/// Deletes `<topic>`, `<topic>.dlq` and the `others` (best effort: a test's topics are
/// unique to it, so a leftover only costs disk until the broker's retention).
pub async fn delete_topics(topic: &str, others: &[&str]) {
    let dlq = format!("{topic}.dlq");
    let mut names = vec![topic, dlq.as_str()];
    names.extend_from_slice(others);
    let _ = admin().delete_topics(&names, &AdminOptions::new()).await;
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("message.timeout.ms", "10000")
        .create()
        .unwrap_or_else(|e| panic!("producer: {e}"))
}

/// Produces raw bytes (as a misbehaving or foreign producer would).
pub async fn produce_raw(topic: &str, key: &str, payload: &[u8]) {
    producer()
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
}

/// Produces bytes with the headers given.
pub async fn produce_with_headers(
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: &[(&str, &str)],
) {
    producer()
        .send(
            FutureRecord::to(topic)
                .key(key)
                .payload(payload)
                .headers(headers_with(headers)),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
}

#[derive(Debug, Clone)]
pub struct RawRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl RawRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads `topic` from the beginning with a fresh group until `expected` records arrived
/// or `within` passed.
pub async fn read_all(topic: &str, expected: usize, within: Duration) -> Vec<RawRecord> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", format!("test-reader-{}", uuid::Uuid::new_v4()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap_or_else(|e| panic!("reader: {e}"));
    consumer
        .subscribe(&[topic])
        .unwrap_or_else(|e| panic!("subscribe: {e}"));
    let mut records = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    while records.len() < expected {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(m)) => records.push(RawRecord {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Ok(Err(e)) => panic!("reading {topic}: {e}"),
            Err(_) => break,
        }
    }
    records
}

pub fn headers_with(pairs: &[(&str, &str)]) -> OwnedHeaders {
    pairs.iter().fold(OwnedHeaders::new(), |h, (k, v)| {
        h.insert(rdkafka::message::Header {
            key: k,
            value: Some(*v),
        })
    })
}
