//! The consumer's configuration: one typed struct read from the environment.

use std::time::Duration;

use clap::Args;
use common::config::{
    ConfigError, KafkaConfig, LogConfig, PostgresConfig, RedisConfig, ServiceConfig,
};
use common::domain::password::Argon2Config;
use common::events::seal::OpeningKeys;
use common::events::signature::RecordVerifier;

#[derive(Args, Clone, Debug)]
pub struct ConsumerConfig {
    /// Port of the probes (and metrics).
    #[arg(long = "consumer-port", env = "CONSUMER_PORT", default_value_t = 8001)]
    pub port: u16,
    #[command(flatten)]
    pub service: ServiceConfig,
    #[command(flatten)]
    pub postgres: PostgresConfig,
    #[command(flatten)]
    pub redis: RedisConfig,
    #[command(flatten)]
    pub kafka: KafkaConfig,
    #[command(flatten)]
    pub log: LogConfig,
    #[command(flatten)]
    pub argon2: Argon2Config,
    #[command(flatten)]
    pub mail: crate::mailer::MailConfig,
    #[command(flatten)]
    pub relay: crate::relay::RelayConfig,
    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookConfig,
    /// The consumers' private keys as `kid:base64` pairs, comma-separated (current first,
    /// then previous ones still in flight during a rotation).
    #[arg(
        long = "seal-private-keys",
        env = "SEAL_PRIVATE_KEYS",
        hide_env_values = true
    )]
    pub seal_private_keys: String,
    /// Keys whose signatures the consumer accepts on registration records, as
    /// `<key id>:<registration|import>:<base64>`, comma-separated (current and previous
    /// keys while rotating; `api keygen` prints them). A record without a valid signature
    /// is dead-lettered unread.
    #[arg(
        long = "record-verifying-keys",
        env = "RECORD_VERIFYING_KEYS",
        hide_env_values = true
    )]
    pub record_verifying_keys: String,
    /// Consumer group.
    #[arg(
        long = "kafka-group-id",
        env = "KAFKA_GROUP_ID",
        default_value = "registrar-consumer"
    )]
    pub group_id: String,
    /// Group session timeout; a dead member is replaced after it.
    #[arg(
        long = "kafka-session-timeout-ms",
        env = "KAFKA_SESSION_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub session_timeout_ms: u32,
    /// Consumer group protocol: `classic` (client-side assignment, the session timeout
    /// above) or `consumer` (KIP-848: the broker assigns partitions incrementally and
    /// its `group.consumer.session.timeout.ms` applies instead).
    #[arg(
        long = "kafka-group-protocol",
        env = "KAFKA_GROUP_PROTOCOL",
        default_value = "classic",
        value_parser = ["classic", "consumer"]
    )]
    pub group_protocol: String,
    /// Most messages processed together (one transaction, one Redis pipeline).
    #[arg(long = "batch-size", env = "BATCH_SIZE", default_value_t = 256)]
    pub batch_size: usize,
    /// Longest wait for a batch to fill once its first message arrived, in ms. 0: a
    /// batch takes what has arrived and goes (under a backlog batches fill from the
    /// records the Kafka client has fetched ahead, so they are full anyway; a waiting
    /// batch only delayed registrations that came one by one).
    #[arg(long = "batch-wait-ms", env = "BATCH_WAIT_MS", default_value_t = 0)]
    pub batch_wait_ms: u64,
    /// Threads hashing passwords; 0 = one per core.
    #[arg(long = "hash-threads", env = "HASH_THREADS", default_value_t = 0)]
    pub hash_threads: usize,
    /// Nice value (0-19) of the hashing threads: above the request handlers' 0, so an
    /// api on the same cores keeps answering while a backlog waits in Kafka. 0 = none.
    #[arg(long = "hash-nice", env = "HASH_NICE", default_value_t = 10)]
    pub hash_nice: i32,
    /// Cap of the exponential backoff while PostgreSQL, Redis or the broker fail, in ms.
    #[arg(
        long = "retry-backoff-max-ms",
        env = "RETRY_BACKOFF_MAX_MS",
        default_value_t = 30_000
    )]
    pub retry_backoff_max_ms: u64,
}

impl ConsumerConfig {
    pub fn opening_keys(&self) -> Result<OpeningKeys, ConfigError> {
        OpeningKeys::parse(&self.seal_private_keys)
            .map_err(|e| ConfigError::new("SEAL_PRIVATE_KEYS", e))
    }

    pub fn record_verifier(&self) -> Result<RecordVerifier, ConfigError> {
        RecordVerifier::parse(&self.record_verifying_keys)
            .map_err(|e| ConfigError::new("RECORD_VERIFYING_KEYS", e))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return Err(ConfigError::new("BATCH_SIZE", "must be 1-10000"));
        }
        if !(0..=19).contains(&self.hash_nice) {
            return Err(ConfigError::new("HASH_NICE", "must be 0-19"));
        }
        if self.group_id.trim().is_empty() {
            return Err(ConfigError::new("KAFKA_GROUP_ID", "is empty"));
        }
        Ok(())
    }

    pub fn hash_threads(&self) -> usize {
        if self.hash_threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.hash_threads
        }
    }

    pub fn batch_wait(&self) -> Duration {
        Duration::from_millis(self.batch_wait_ms)
    }

    pub fn backoff_max(&self) -> Duration {
        Duration::from_millis(self.retry_backoff_max_ms)
    }
}

/// The consumer's environment variables, from its clap definition (the configuration
/// reference).
pub fn settings() -> Vec<common::config_reference::Setting> {
    use clap::Args as _;
    common::config_reference::settings(&ConsumerConfig::augment_args(clap::Command::new(
        "consumer",
    )))
}
