//! The Kafka consumer: configuration and a context that logs rebalances and commits
//! what was processed before partitions are taken away.

use common::config::ConfigError;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::TopicPartitionList;

use crate::config::ConsumerConfig;

/// Logs rebalances, commits finished work before partitions go, and keeps
/// `registrar_consumer_assigned_partitions` equal to what this member holds.
pub struct LoggingContext {
    assigned: prometheus::IntGauge,
}

impl ClientContext for LoggingContext {}

impl ConsumerContext for LoggingContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(tpl) if consumer.assignment_lost() => {
                // The session ended without the coordinator (it is down, or expired this
                // member): the partitions may have another owner already and a commit
                // would be refused. Nor is one tried: a synchronous commit here blocks
                // the poll until the coordinator answers or the request times out
                // (`socket.timeout.ms`, 60 s), and the new assignment waits behind it.
                tracing::info!(event = "partitions_lost", count = tpl.count());
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(event = "partitions_revoked", count = tpl.count());
                // Offsets are stored only for finished work, so committing them here
                // hands the partitions over without redelivering finished records.
                if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                    tracing::debug!(event = "commit_on_revoke_skipped", reason = %e);
                }
            }
            Rebalance::Assign(tpl) => {
                tracing::info!(event = "partitions_assigned", count = tpl.count());
            }
            Rebalance::Error(e) => tracing::warn!(event = "rebalance_failed", error = %e),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        // After the (incremental, under KIP-848) assignment was applied: the whole set.
        let held = consumer.assignment().map(|a| a.count()).unwrap_or(0);
        self.assigned.set(i64::try_from(held).unwrap_or(i64::MAX));
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(event = "offset_commit_result", error = %e);
        }
    }
}

pub fn create(
    config: &ConsumerConfig,
    assigned: prometheus::IntGauge,
) -> Result<StreamConsumer<LoggingContext>, ConfigError> {
    let mut cc = common::events::kafka::client_config(&config.kafka)?;
    cc.set("group.id", &config.group_id)
        .set("client.id", "registrar-consumer")
        .set("enable.auto.commit", "true")
        // Offsets are stored by hand after each batch's writes succeeded.
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        // librdkafka waits up to 500 ms for a fetch to fill by default: that wait was
        // most of the end-to-end latency at moderate rates.
        .set("fetch.wait.max.ms", "20")
        // The prefetch queue is the consumer's largest memory user (64 MiB per
        // partition by default); hashing, not fetching, is the bottleneck.
        .set("queued.max.messages.kbytes", "8192")
        .set("group.protocol", &config.group_protocol);
    if config.group_protocol == "classic" {
        // Under KIP-848 the broker owns the session and heartbeat settings; librdkafka
        // refuses them on the client.
        cc.set("session.timeout.ms", config.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                (config.session_timeout_ms / 3).max(1).to_string(),
            );
    }
    common::events::kafka::operator_overrides(&mut cc, &config.kafka)?;
    let consumer: StreamConsumer<LoggingContext> = cc
        .create_with_context(LoggingContext { assigned })
        .map_err(|e| ConfigError::new("KAFKA_PROPERTIES", e))?;
    consumer
        .subscribe(&[&config.kafka.topic])
        .map_err(|e| ConfigError::new("KAFKA_TOPIC", e))?;
    Ok(consumer)
}
