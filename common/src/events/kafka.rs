//! librdkafka client configuration shared by producer and consumer.

use rdkafka::ClientConfig;

use crate::config::{ConfigError, KafkaConfig};

/// Bootstrap servers, the security settings (TLS, SASL) and the operator's extra
/// properties (tuning, mutual TLS, anything else librdkafka takes).
pub fn client_config(config: &KafkaConfig) -> Result<ClientConfig, ConfigError> {
    if config.brokers.trim().is_empty() {
        return Err(ConfigError::new("KAFKA_BROKERS", "is empty"));
    }
    if config.topic.trim().is_empty() {
        return Err(ConfigError::new("KAFKA_TOPIC", "is empty"));
    }
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &config.brokers);
    for (k, v) in config.security_properties()? {
        cc.set(k, v);
    }
    for (k, v) in config.extra_properties()? {
        cc.set(k, v);
    }
    Ok(cc)
}

/// Applies the operator's `KAFKA_PROPERTIES` again, after a client's own defaults, so
/// that whatever the operator sets wins (for example a larger `linger.ms`, or SASL
/// settings the variables do not name).
pub fn operator_overrides(cc: &mut ClientConfig, config: &KafkaConfig) -> Result<(), ConfigError> {
    for (k, v) in config.extra_properties()? {
        cc.set(k, v);
    }
    Ok(())
}

/// The next message, read past the client's error events. librdkafka puts every broker
/// state change (`AllBrokersDown`, a failed reconnect) on the consumer's queue as an error
/// event, which the client context logs already; the client reconnects by itself, so
/// they need no handling. They must be read at once, though: while a broker is down they
/// pile up by the hundred, and a rebalance queued behind them waits until they are read
/// (one every half second kept a consumer without partitions for a minute after the
/// broker was back).
pub async fn next_message<C: rdkafka::consumer::ConsumerContext + 'static>(
    consumer: &rdkafka::consumer::StreamConsumer<C>,
) -> rdkafka::message::BorrowedMessage<'_> {
    loop {
        match consumer.recv().await {
            Ok(message) => return message,
            Err(e) => tracing::debug!(event = "kafka_client_error_event", error = %e),
        }
    }
}

/// Header names on dead-lettered records.
pub mod dlq_headers {
    pub const TOPIC: &str = "origin.topic";
    pub const PARTITION: &str = "origin.partition";
    pub const OFFSET: &str = "origin.offset";
    pub const ERROR: &str = "error";
    pub const ERROR_KIND: &str = "error.kind";
}

/// Header carrying the api's request id to the consumer.
pub const REQUEST_ID_HEADER: &str = "request-id";
/// Header of a registration that carries a password hash (`phc`) rather than a sealed
/// password: nothing to hash, so the consumer takes more of them per batch.
pub const CREDENTIAL_HEADER: &str = "credential";
/// Value of [`CREDENTIAL_HEADER`] for a pre-hashed credential.
pub const CREDENTIAL_PREHASHED: &str = "phc";
