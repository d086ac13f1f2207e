//! `consumer dlq list|show|replay`: the dead letters of `<KAFKA_TOPIC>.dlq`, with their
//! headers, and putting chosen ones back on the registration topic once the cause is
//! fixed, each checked again as the consumer checks a record (signature, decoding).
//! A replayed record keeps its key and bytes, so its registration id: replaying twice, or
//! replaying a record that was persisted meanwhile, persists it once.

use std::time::Duration;

use crate::config::KafkaConfig;
use crate::domain::email::Email;
use crate::events::kafka::dlq_headers;
use crate::events::registration::RegistrationEvent;
use crate::events::signature::{Purpose, RecordVerifier, SIGNATURE_HEADER};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};

/// Header a replayed record carries: where in the DLQ it came from.
pub const REPLAYED_FROM: &str = "replayed-from";

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadLetterRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl DeadLetterRecord {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn kind(&self) -> &str {
        self.header(dlq_headers::ERROR_KIND).unwrap_or("unknown")
    }

    /// `<partition>:<offset>`, how the commands name a record.
    pub fn position(&self) -> String {
        format!("{}:{}", self.partition, self.offset)
    }

    /// What the record is, without personal data: its registration id and masked email
    /// when it decodes.
    pub fn summary(&self) -> String {
        match RegistrationEvent::decode(&self.payload) {
            Ok(e) => {
                let email = Email::parse(&e.email)
                    .map(|m| m.masked().to_string())
                    .unwrap_or_else(|_| "(invalid email)".to_owned());
                format!("registration {} for {email}", e.registration_id)
            }
            Err(e) => format!("{} bytes, not a registration ({e})", self.payload.len()),
        }
    }
}

/// Which dead letters a command is about.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `error.kind` (undecodable, invalid, credential).
    pub kind: Option<String>,
    /// `<partition>:<offset>` positions.
    pub positions: Vec<String>,
}

impl Selection {
    pub fn matches(&self, r: &DeadLetterRecord) -> bool {
        self.kind.as_deref().is_none_or(|k| r.kind() == k)
            && (self.positions.is_empty() || self.positions.contains(&r.position()))
    }
}

/// Reads every dead letter present now (from each partition's low to high watermark).
pub async fn read_all(kafka: &KafkaConfig) -> anyhow::Result<Vec<DeadLetterRecord>> {
    let mut cc = crate::events::kafka::client_config(kafka)?;
    cc.set(
        "group.id",
        format!("registrar-dlq-tool-{}", uuid::Uuid::new_v4()),
    )
    .set("enable.auto.commit", "false")
    .set("auto.offset.reset", "earliest");
    let topic = kafka.dlq_topic();
    tokio::task::spawn_blocking(move || read_blocking(&cc, &topic)).await?
}

fn read_blocking(cc: &rdkafka::ClientConfig, topic: &str) -> anyhow::Result<Vec<DeadLetterRecord>> {
    let consumer: BaseConsumer = cc.create()?;
    let timeout = Timeout::After(Duration::from_secs(10));
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut assignment = TopicPartitionList::new();
    let mut remaining = std::collections::HashMap::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout)?;
        if high > low {
            assignment.add_partition_offset(topic, p, Offset::Offset(low))?;
            remaining.insert(p, high);
        }
    }
    let mut records = Vec::new();
    if remaining.is_empty() {
        return Ok(records);
    }
    consumer.assign(&assignment)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !remaining.is_empty() && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = message?;
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push(DeadLetterRecord {
            partition: m.partition(),
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
            headers,
        });
        if remaining
            .get(&m.partition())
            .is_some_and(|high| m.offset() + 1 >= *high)
        {
            remaining.remove(&m.partition());
        }
    }
    anyhow::ensure!(remaining.is_empty(), "timed out reading {topic}");
    records.sort_by_key(|r| (r.partition, r.offset));
    Ok(records)
}

/// What a replay did: the records put back, and those refused with the reason.
#[derive(Debug, Default)]
pub struct ReplayOutcome {
    pub replayed: Vec<DeadLetterRecord>,
    pub refused: Vec<(DeadLetterRecord, String)>,
}

/// The checks the consumer applies before anything else, applied again before a dead
/// letter goes back: a valid signature of a key the consumer accepts, a record that
/// decodes, and no import-only field under a registration key. A dead letter is
/// whatever reached the topic, so its own headers are evidence, never instructions.
pub fn check_replayable(verifier: &RecordVerifier, r: &DeadLetterRecord) -> Result<(), String> {
    let purpose = verifier
        .verify(
            r.header(SIGNATURE_HEADER).map(str::as_bytes),
            r.key.as_deref().unwrap_or_default(),
            &r.payload,
        )
        .map_err(|e| e.to_string())?;
    let event = RegistrationEvent::decode(&r.payload).map_err(|e| e.to_string())?;
    if purpose == Purpose::Registration {
        if let Some(field) = event.import_only_field() {
            return Err(format!(
                "{field} is honoured only from records signed with an import key"
            ));
        }
    }
    Ok(())
}

/// Puts the selected dead letters back on the configured registration topic
/// (`KAFKA_TOPIC`; never the topic a header names), key, bytes and signature unchanged,
/// with a `replayed-from` header, after [`check_replayable`]. Returns what was replayed
/// (or, with `dry_run`, would be) and what was refused.
pub async fn replay(
    kafka: &KafkaConfig,
    verifier: &RecordVerifier,
    selection: &Selection,
    dry_run: bool,
) -> anyhow::Result<ReplayOutcome> {
    let mut outcome = ReplayOutcome::default();
    for r in read_all(kafka)
        .await?
        .into_iter()
        .filter(|r| selection.matches(r))
    {
        match check_replayable(verifier, &r) {
            Ok(()) => outcome.replayed.push(r),
            Err(reason) => {
                tracing::warn!(event = "dlq_replay_refused", position = %r.position(), kind = r.kind(), reason = %reason);
                outcome.refused.push((r, reason));
            }
        }
    }
    if dry_run || outcome.replayed.is_empty() {
        return Ok(outcome);
    }
    let mut cc = crate::events::kafka::client_config(kafka)?;
    cc.set("client.id", "registrar-dlq-replay")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "15000");
    crate::events::kafka::operator_overrides(&mut cc, kafka)?;
    let producer: FutureProducer = cc.create()?;
    let dlq = kafka.dlq_topic();
    let topic = kafka.topic.clone();
    for r in &outcome.replayed {
        let from = format!("{dlq}:{}", r.position());
        let mut headers = OwnedHeaders::new().insert(Header {
            key: REPLAYED_FROM,
            value: Some(from.as_str()),
        });
        if let Some(signature) = r.header(SIGNATURE_HEADER) {
            headers = headers.insert(Header {
                key: SIGNATURE_HEADER,
                value: Some(signature),
            });
        }
        let mut record = FutureRecord::to(&topic)
            .payload(&r.payload)
            .headers(headers);
        if let Some(key) = &r.key {
            record = record.key(key.as_slice());
        }
        producer
            .send(record, Duration::from_secs(15))
            .await
            .map_err(|(e, _)| anyhow::anyhow!("replaying {from}: {e}"))?;
        tracing::info!(event = "dlq_replayed", from = %from, to = %topic, kind = r.kind(), record = %r.summary());
    }
    Ok(outcome)
}
