//! Publishing registration events: the `RegistrationPublisher` seam and its Kafka
//! implementation (idempotent producer, acks=all, wait for the broker's acknowledgement).
//! Every record it publishes is signed (`common::events::signature`).

use std::sync::Arc;
use std::time::Duration;

use common::config::{ConfigError, KafkaConfig};
use common::events::signature::{Purpose, SIGNATURE_HEADER};

use futures::future::BoxFuture;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

/// The api's two record-signing keys (see `common::events::signature`).
#[derive(Debug, Clone)]
pub struct RecordSigners {
    pub registration: common::events::signature::RecordSigner,
    pub import: common::events::signature::RecordSigner,
}

impl RecordSigners {
    /// A verifier of what these keys sign (the console's dead-letter replay checks a
    /// record as the consumer would).
    pub fn verifier(&self) -> common::events::signature::RecordVerifier {
        let spec = zeroize::Zeroizing::new(format!(
            "{},{}",
            self.registration.verifying_spec().as_str(),
            self.import.verifying_spec().as_str()
        ));
        common::events::signature::RecordVerifier::parse(&spec)
            .unwrap_or_else(|e| unreachable!("a signer's own spec parses: {e}"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The local producer queue is full: back-pressure, answer at once.
    #[error("producer queue is full")]
    QueueFull,
    #[error("the broker did not acknowledge the record: {0}")]
    Unavailable(#[source] anyhow::Error),
}

/// What a record's headers carry besides its payload.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordHeaders<'a> {
    /// The request's `X-Request-Id`.
    pub request_id: Option<&'a str>,
    /// The registration carries a password hash, not a sealed password (an import).
    pub prehashed: bool,
    /// Which key signs the record: an import line's or a sign-up's (the default, the
    /// least privileged).
    pub purpose: Purpose,
}

pub trait RegistrationPublisher: Send + Sync + 'static {
    /// Resolves once the broker acknowledged the record (or it definitely failed).
    fn publish<'a>(
        &'a self,
        key: &'a str,
        payload: &'a [u8],
        headers: RecordHeaders<'a>,
    ) -> BoxFuture<'a, Result<(), PublishError>>;

    /// Can the topic be reached? Used by the health endpoints.
    fn check(&self, timeout: Duration) -> BoxFuture<'_, anyhow::Result<()>>;

    /// Delivers what is queued, bounded by `timeout`; called on shutdown.
    fn flush(&self, timeout: Duration) -> BoxFuture<'_, ()>;

    /// Records handed to the producer and not yet acknowledged or failed.
    fn queued(&self) -> i64 {
        0
    }

    /// The producer's queue is full: a new record would be refused. Checked before any
    /// other work, so overload is answered at the cost of parsing the request only.
    fn is_full(&self) -> bool {
        false
    }
}

pub struct KafkaPublisher {
    producer: FutureProducer,
    signers: RecordSigners,
    topic: String,
    produce_timeout: Duration,
    queue_max_messages: u32,
}

impl KafkaPublisher {
    pub fn new(
        kafka: &KafkaConfig,
        signers: RecordSigners,
        produce_timeout: Duration,
        queue_max_messages: u32,
        linger_ms: u32,
    ) -> Result<Arc<Self>, ConfigError> {
        let mut cc = common::events::kafka::client_config(kafka)?;
        cc.set("client.id", "registrar-api")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                produce_timeout.as_millis().to_string(),
            )
            .set(
                "queue.buffering.max.messages",
                queue_max_messages.to_string(),
            )
            .set("linger.ms", linger_ms.to_string())
            // Bounds the producer's buffer memory (librdkafka's default is 1 GiB).
            .set("queue.buffering.max.kbytes", "32768")
            // Fail fast when the broker is unreachable instead of retrying silently.
            .set("socket.connection.setup.timeout.ms", "3000");
        common::events::kafka::operator_overrides(&mut cc, kafka)?;
        let producer: FutureProducer = cc
            .create()
            .map_err(|e| ConfigError::new("KAFKA_PROPERTIES", e))?;
        Ok(Arc::new(Self {
            producer,
            signers,
            topic: kafka.topic.clone(),
            produce_timeout,
            queue_max_messages,
        }))
    }
}

impl RegistrationPublisher for KafkaPublisher {
    fn publish<'a>(
        &'a self,
        key: &'a str,
        payload: &'a [u8],
        record_headers: RecordHeaders<'a>,
    ) -> BoxFuture<'a, Result<(), PublishError>> {
        let span =
            tracing::info_span!("kafka.produce", otel.kind = "producer", topic = %self.topic);
        let produce = async move {
            let mut record = FutureRecord::to(&self.topic).key(key).payload(payload);
            let signer = match record_headers.purpose {
                Purpose::Registration => &self.signers.registration,
                Purpose::Import => &self.signers.import,
            };
            let signature = signer.sign(key.as_bytes(), payload);
            let mut headers = OwnedHeaders::new().insert(Header {
                key: SIGNATURE_HEADER,
                value: Some(signature.as_str()),
            });
            if let Some(id) = record_headers.request_id {
                headers = headers.insert(Header {
                    key: common::events::kafka::REQUEST_ID_HEADER,
                    value: Some(id),
                });
            }
            if record_headers.prehashed {
                headers = headers.insert(Header {
                    key: common::events::kafka::CREDENTIAL_HEADER,
                    value: Some(common::events::kafka::CREDENTIAL_PREHASHED),
                });
            }
            // The trace continues in the consumer (`traceparent`, `tracestate`).
            for (name, value) in common::ops::telemetry::current_trace_headers() {
                headers = headers.insert(Header {
                    key: &name,
                    value: Some(value.as_str()),
                });
            }
            record = record.headers(headers);
            let delivery = match self.producer.send_result(record) {
                Ok(delivery) => delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    return Err(PublishError::QueueFull)
                }
                Err((e, _)) => return Err(PublishError::Unavailable(e.into())),
            };
            // librdkafka fails the record after message.timeout.ms; the outer bound only
            // guards against a lost delivery report.
            match tokio::time::timeout(self.produce_timeout + Duration::from_secs(1), delivery)
                .await
            {
                Ok(Ok(Ok(_))) => Ok(()),
                Ok(Ok(Err((e, _)))) => Err(PublishError::Unavailable(e.into())),
                Ok(Err(_canceled)) => Err(PublishError::Unavailable(anyhow::anyhow!(
                    "producer dropped the delivery report"
                ))),
                Err(_) => Err(PublishError::Unavailable(anyhow::anyhow!(
                    "no delivery report within {:?}",
                    self.produce_timeout
                ))),
            }
        };
        Box::pin(tracing::Instrument::instrument(produce, span))
    }

    fn check(&self, timeout: Duration) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            let client = self.producer.clone();
            let topic = self.topic.clone();
            let partitions = tokio::task::spawn_blocking(move || {
                client
                    .client()
                    .fetch_metadata(Some(&topic), Timeout::After(timeout))
                    .map(|m| {
                        m.topics()
                            .first()
                            .map(|t| t.partitions().len())
                            .unwrap_or(0)
                    })
            })
            .await??;
            anyhow::ensure!(partitions > 0, "topic has no partitions");
            Ok(())
        })
    }

    fn queued(&self) -> i64 {
        i64::from(self.producer.in_flight_count())
    }

    fn is_full(&self) -> bool {
        self.queued() >= i64::from(self.queue_max_messages)
    }

    fn flush(&self, timeout: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let producer = self.producer.clone();
            let result =
                tokio::task::spawn_blocking(move || producer.flush(Timeout::After(timeout))).await;
            match result {
                Ok(Ok(())) => tracing::info!(event = "producer_flushed"),
                Ok(Err(e)) => tracing::error!(event = "producer_flush_failed", error = %e),
                Err(e) => tracing::error!(event = "producer_flush_failed", error = %e),
            }
        })
    }
}
