//! The dead-letter producer: undecodable or invalid records go to `<topic>.dlq` with
//! their original key and bytes and headers naming where they came from and why.

use std::time::Duration;

use common::config::{ConfigError, KafkaConfig};
use common::events::kafka::dlq_headers;
use common::events::signature::SIGNATURE_HEADER;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::record::Item;

/// Why a record was dead-lettered; the `error.kind` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DlqKind {
    /// Not a single-object Avro record of a known schema.
    Undecodable,
    /// Decoded, but breaks the registration rules.
    Invalid,
    /// The sealed password could not be opened.
    Credential,
    /// No valid signature, or import-only fields under a registration key.
    Unauthenticated,
}

impl DlqKind {
    pub const ALL: [DlqKind; 4] = [
        DlqKind::Undecodable,
        DlqKind::Invalid,
        DlqKind::Credential,
        DlqKind::Unauthenticated,
    ];
}

impl DlqKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DlqKind::Undecodable => "undecodable",
            DlqKind::Invalid => "invalid",
            DlqKind::Credential => "credential",
            DlqKind::Unauthenticated => "unauthenticated",
        }
    }
}

pub struct DeadLetter<'a> {
    pub item: &'a Item,
    pub kind: DlqKind,
    pub error: String,
}

pub struct DlqProducer {
    producer: FutureProducer,
    topic: String,
}

impl DlqProducer {
    pub fn new(kafka: &KafkaConfig) -> Result<Self, ConfigError> {
        let mut cc = common::events::kafka::client_config(kafka)?;
        cc.set("client.id", "registrar-consumer-dlq")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", "10000");
        common::events::kafka::operator_overrides(&mut cc, kafka)?;
        let producer = cc
            .create()
            .map_err(|e| ConfigError::new("KAFKA_PROPERTIES", e))?;
        Ok(Self {
            producer,
            topic: kafka.dlq_topic(),
        })
    }

    /// Sends every letter and waits for all acknowledgements.
    pub async fn send_all(&self, letters: &[DeadLetter<'_>]) -> anyhow::Result<()> {
        let mut deliveries = Vec::with_capacity(letters.len());
        for letter in letters {
            let item = letter.item;
            let partition = item.partition.to_string();
            let offset = item.offset.to_string();
            let mut headers = OwnedHeaders::new()
                .insert(Header {
                    key: dlq_headers::TOPIC,
                    value: Some(item.topic.as_str()),
                })
                .insert(Header {
                    key: dlq_headers::PARTITION,
                    value: Some(partition.as_str()),
                })
                .insert(Header {
                    key: dlq_headers::OFFSET,
                    value: Some(offset.as_str()),
                })
                .insert(Header {
                    key: dlq_headers::ERROR,
                    value: Some(letter.error.as_str()),
                })
                .insert(Header {
                    key: dlq_headers::ERROR_KIND,
                    value: Some(letter.kind.as_str()),
                });
            // The original signature travels with the record, so a replay is verified
            // again exactly as the first delivery was.
            if let Some(signature) = &item.signature {
                headers = headers.insert(Header {
                    key: SIGNATURE_HEADER,
                    value: Some(signature.as_slice()),
                });
            }
            let mut record = FutureRecord::to(&self.topic)
                .payload(item.payload.as_slice())
                .headers(headers);
            if let Some(key) = &item.key {
                record = record.key(key.as_slice());
            }
            let delivery = self
                .producer
                .send_result(record)
                .map_err(|(e, _)| anyhow::anyhow!("DLQ enqueue failed: {e}"))?;
            deliveries.push(delivery);
        }
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => anyhow::bail!("DLQ delivery failed: {e}"),
                Err(_) => anyhow::bail!("DLQ delivery report lost"),
            }
        }
        Ok(())
    }

    pub async fn flush(&self, timeout: Duration) {
        let producer = self.producer.clone();
        if let Ok(Err(e)) =
            tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout))).await
        {
            tracing::error!(event = "dlq_flush_failed", error = %e);
        }
    }
}
