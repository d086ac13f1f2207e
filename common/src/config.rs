//! Configuration pieces shared by both binaries, read from the environment (and `.env`)
//! with clap. Values that hold secrets are validated after parsing so that an error names
//! the variable without echoing its value.

use std::fmt;
use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

/// A configuration value that is present but unusable. The binaries print it and exit
/// with status 2, like clap does for a missing variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var} {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(var: &'static str, message: impl fmt::Display) -> Self {
        Self {
            var,
            message: message.to_string(),
        }
    }

    /// Prints the error and exits with the usage-error status.
    pub fn exit(&self) -> ! {
        eprintln!("error: {self}");
        std::process::exit(2)
    }
}

/// Loads `.env` from the working directory if there is one; real environment variables
/// win over it. Call before any thread starts.
pub fn load_dotenv() {
    // Only the working directory's file: dotenvy's default also searches parent
    // directories, which would pick up an unrelated project's secrets.
    let path = std::path::Path::new(".env");
    if !path.exists() {
        return;
    }
    if let Err(e) = dotenvy::from_path(path) {
        eprintln!("error: cannot read .env: {e}");
        std::process::exit(2);
    }
}

pub fn secret(s: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(s.to_owned()))
}

#[derive(Args, Clone, Debug)]
pub struct PostgresConfig {
    /// PostgreSQL connection URL.
    #[arg(
        id = "database_url",
        long = "database-url",
        env = "DATABASE_URL",
        value_name = "DATABASE_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/registrar",
        hide_env_values = true,
        hide_default_value = true,
        value_parser = secret
    )]
    pub url: SecretString,
    /// Maximum connections in the pool.
    #[arg(
        id = "database_pool_size",
        long = "database-pool-size",
        env = "DATABASE_POOL_SIZE",
        default_value_t = 16
    )]
    pub pool_size: usize,
    /// Bound on connecting and on waiting for a pooled connection, in milliseconds.
    #[arg(
        id = "database_timeout_ms",
        long = "database-timeout-ms",
        env = "DATABASE_TIMEOUT_MS",
        default_value_t = 3000
    )]
    pub timeout_ms: u64,
}

impl PostgresConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn parsed(&self) -> Result<tokio_postgres::Config, ConfigError> {
        self.url
            .expose_secret()
            .parse()
            .map_err(|_| ConfigError::new("DATABASE_URL", "is not a valid PostgreSQL URL"))
    }
}

#[derive(Args, Clone, Debug)]
pub struct RedisConfig {
    /// Redis URL (`redis://host:port/db` or `rediss://` for TLS).
    #[arg(
        id = "redis_url",
        long = "redis-url",
        env = "REDIS_URL",
        value_name = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true,
        value_parser = secret
    )]
    pub url: SecretString,
    #[arg(
        id = "redis_pool_size",
        long = "redis-pool-size",
        env = "REDIS_POOL_SIZE",
        default_value_t = 32
    )]
    pub pool_size: usize,
    /// Bound on every Redis round trip, in milliseconds.
    #[arg(
        id = "redis_timeout_ms",
        long = "redis-timeout-ms",
        env = "REDIS_TIMEOUT_MS",
        default_value_t = 1000
    )]
    pub timeout_ms: u64,
    /// Prefix for every key (empty in production; tests isolate themselves with it).
    #[arg(
        id = "redis_key_prefix",
        long = "redis-key-prefix",
        env = "REDIS_KEY_PREFIX",
        default_value = ""
    )]
    pub key_prefix: String,
}

impl RedisConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[derive(Args, Clone, Debug)]
pub struct KafkaConfig {
    /// Comma-separated bootstrap brokers.
    #[arg(
        id = "kafka_brokers",
        long = "kafka-brokers",
        env = "KAFKA_BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub brokers: String,
    /// Registration topic; the dead-letter topic is `<topic>.dlq`.
    #[arg(
        id = "kafka_topic",
        long = "kafka-topic",
        env = "KAFKA_TOPIC",
        default_value = "user-registration"
    )]
    pub topic: String,
    /// Extra librdkafka properties as `key=value` pairs separated by commas, e.g.
    /// `security.protocol=SASL_SSL,sasl.mechanism=SCRAM-SHA-512`.
    #[arg(
        id = "kafka_properties",
        long = "kafka-properties",
        env = "KAFKA_PROPERTIES",
        default_value = "",
        hide_env_values = true
    )]
    pub properties: String,
}

impl KafkaConfig {
    pub fn dlq_topic(&self) -> String {
        format!("{}.dlq", self.topic)
    }

    pub fn extra_properties(&self) -> Result<Vec<(String, String)>, ConfigError> {
        self.properties
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                    .ok_or_else(|| ConfigError::new("KAFKA_PROPERTIES", "expects key=value pairs"))
            })
            .collect()
    }
}

/// What every binary's process needs besides its dependencies: where to listen, how long
/// health checks may take, how long to drain on SIGTERM.
#[derive(Args, Clone, Debug)]
pub struct ServiceConfig {
    /// Address to listen on.
    #[arg(id = "host", long = "host", env = "HOST", default_value = "0.0.0.0")]
    pub host: std::net::IpAddr,
    /// Bound on each dependency check of the health endpoints, in milliseconds.
    #[arg(
        id = "health_timeout_ms",
        long = "health-timeout-ms",
        env = "HEALTH_TIMEOUT_MS",
        default_value_t = 1000
    )]
    pub health_timeout_ms: u64,
    /// Seconds to finish in-flight work, commit and flush after SIGTERM.
    #[arg(
        id = "shutdown_grace_secs",
        long = "shutdown-grace-secs",
        env = "SHUTDOWN_GRACE_SECS",
        default_value_t = 25
    )]
    pub shutdown_grace_secs: u64,
}

impl ServiceConfig {
    pub fn health_timeout(&self) -> Duration {
        Duration::from_millis(self.health_timeout_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    pub fn address(&self, port: u16) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host, port)
    }
}

/// Runs a binary's async entry point on a multi-threaded runtime and exits with the
/// status it returns.
pub fn run_main<F: std::future::Future<Output = i32>>(main: F) -> ! {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    std::process::exit(runtime.block_on(main))
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Args, Clone, Debug)]
pub struct LogConfig {
    /// A tracing filter: `info`, `debug`, `registrar_consumer=debug,info`...
    #[arg(
        id = "log_level",
        long = "log-level",
        env = "LOG_LEVEL",
        default_value = "info"
    )]
    pub level: String,
    #[arg(
        id = "log_format",long = "log-format", env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub format: LogFormat,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_error_names_the_variable() {
        let e = ConfigError::new("SEAL_PUBLIC_KEY", "is not valid base64");
        assert_eq!(
            e.to_string(),
            "invalid configuration: SEAL_PUBLIC_KEY is not valid base64"
        );
    }

    #[test]
    fn kafka_properties_are_parsed_as_pairs() {
        let k = KafkaConfig {
            brokers: String::new(),
            topic: "t".into(),
            properties: "security.protocol=SASL_SSL, sasl.mechanism=PLAIN".into(),
        };
        assert_eq!(k.extra_properties().unwrap().len(), 2);
        assert_eq!(k.dlq_topic(), "t.dlq");
        let bad = KafkaConfig {
            properties: "oops".into(),
            ..k
        };
        assert_eq!(bad.extra_properties().unwrap_err().var, "KAFKA_PROPERTIES");
    }
}
