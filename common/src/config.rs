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

/// A secret given in its variable (`var`) or in a file named by another (`file_var`, a
/// mounted Kubernetes secret; trimmed), never both; `None` when neither is set.
pub fn secret_or_file(
    value: Option<&SecretString>,
    file: Option<&std::path::Path>,
    var: &'static str,
    file_var: &'static str,
) -> Result<Option<SecretString>, ConfigError> {
    match (value, file) {
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| Some(SecretString::from(s.trim().to_owned())))
            .map_err(|e| ConfigError::new(file_var, format!("cannot be read: {e}"))),
        (Some(_), Some(_)) => Err(ConfigError::new(
            var,
            format!("set either {var} or {file_var}, not both"),
        )),
        (None, None) => Ok(None),
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

    /// The driver's configuration and the TLS settings (`sslmode`, `sslrootcert`).
    pub fn parsed(
        &self,
    ) -> Result<(tokio_postgres::Config, crate::store::tls::PgTls), ConfigError> {
        let (rest, tls) = crate::store::tls::PgTls::split(self.url.expose_secret())
            .map_err(|e| ConfigError::new("DATABASE_URL", e))?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|_| ConfigError::new("DATABASE_URL", "is not a valid PostgreSQL URL"))?;
        config.ssl_mode(tls.driver_mode());
        Ok((config, tls))
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
    /// Maximum connections in the Redis pool.
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
    /// PEM file of the certificate authorities that sign the Redis server's certificate
    /// (with a `rediss://` URL); without it the system trust store is used.
    #[arg(
        id = "redis_tls_ca_file",
        long = "redis-tls-ca-file",
        env = "REDIS_TLS_CA_FILE"
    )]
    pub tls_ca_file: Option<std::path::PathBuf>,
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
    /// How to talk to the brokers: `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    #[arg(
        id = "kafka_security_protocol",
        long = "kafka-security-protocol",
        env = "KAFKA_SECURITY_PROTOCOL",
        value_enum,
        default_value_t = KafkaSecurityProtocol::Plaintext
    )]
    pub security_protocol: KafkaSecurityProtocol,
    /// PEM file of the certificate authorities that sign the brokers' certificates
    /// (`ssl`, `sasl_ssl`); without it the system trust store is used.
    #[arg(
        id = "kafka_ssl_ca_location",
        long = "kafka-ssl-ca-location",
        env = "KAFKA_SSL_CA_LOCATION"
    )]
    pub ssl_ca_location: Option<std::path::PathBuf>,
    /// SASL mechanism (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER`).
    #[arg(
        id = "kafka_sasl_mechanism",
        long = "kafka-sasl-mechanism",
        env = "KAFKA_SASL_MECHANISM"
    )]
    pub sasl_mechanism: Option<String>,
    /// SASL user name (the component's own principal: `registrar-api`,
    /// `registrar-consumer`).
    #[arg(
        id = "kafka_sasl_username",
        long = "kafka-sasl-username",
        env = "KAFKA_SASL_USERNAME"
    )]
    pub sasl_username: Option<String>,
    /// SASL password (SCRAM, PLAIN).
    #[arg(
        id = "kafka_sasl_password",
        long = "kafka-sasl-password",
        env = "KAFKA_SASL_PASSWORD",
        hide_env_values = true,
        value_parser = secret
    )]
    pub sasl_password: Option<SecretString>,
}

/// librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KafkaSecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl KafkaSecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }
    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

impl KafkaConfig {
    /// The security settings as librdkafka properties, checked for consistency; the
    /// password is exposed here only, to be handed to librdkafka.
    pub fn security_properties(&self) -> Result<Vec<(&'static str, String)>, ConfigError> {
        let protocol = self.security_protocol;
        let mut props = vec![("security.protocol", protocol.as_str().to_owned())];
        if let Some(ca) = &self.ssl_ca_location {
            if !protocol.uses_tls() {
                return Err(ConfigError::new(
                    "KAFKA_SSL_CA_LOCATION",
                    "needs KAFKA_SECURITY_PROTOCOL ssl or sasl_ssl",
                ));
            }
            if !ca.is_file() {
                return Err(ConfigError::new(
                    "KAFKA_SSL_CA_LOCATION",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
            props.push(("ssl.ca.location", ca.display().to_string()));
        }
        let sasl_given = self.sasl_mechanism.is_some()
            || self.sasl_username.is_some()
            || self.sasl_password.is_some();
        if !protocol.uses_sasl() {
            if sasl_given {
                return Err(ConfigError::new(
                    "KAFKA_SASL_MECHANISM",
                    "and the SASL credentials need KAFKA_SECURITY_PROTOCOL sasl_ssl or sasl_plaintext",
                ));
            }
            return Ok(props);
        }
        let mechanism = self.sasl_mechanism.clone().ok_or_else(|| {
            ConfigError::new(
                "KAFKA_SASL_MECHANISM",
                "is required with a SASL security protocol",
            )
        })?;
        props.push(("sasl.mechanism", mechanism.clone()));
        if mechanism != "OAUTHBEARER" && mechanism != "GSSAPI" {
            let username = self.sasl_username.clone().ok_or_else(|| {
                ConfigError::new(
                    "KAFKA_SASL_USERNAME",
                    format!("is required with {mechanism}"),
                )
            })?;
            let password = self.sasl_password.as_ref().ok_or_else(|| {
                ConfigError::new(
                    "KAFKA_SASL_PASSWORD",
                    format!("is required with {mechanism}"),
                )
            })?;
            props.push(("sasl.username", username));
            props.push(("sasl.password", password.expose_secret().to_owned()));
        }
        Ok(props)
    }

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
    /// Log format: `json` (one object per line) or `pretty` (for a terminal).
    #[arg(
        id = "log_format",long = "log-format", env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub format: LogFormat,
    /// OTLP/HTTP collector base URL (`http://collector:4318`); unset: no span export.
    /// The exporter also reads the other standard `OTEL_EXPORTER_OTLP_*` variables, and
    /// `OTEL_SERVICE_NAME` overrides `registrar-api`/`registrar-consumer`.
    #[arg(
        id = "otlp_endpoint",
        long = "otlp-endpoint",
        env = "OTEL_EXPORTER_OTLP_ENDPOINT"
    )]
    pub otlp_endpoint: Option<String>,
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
            properties: "security.protocol=SASL_SSL, sasl.mechanism=PLAIN".into(),
            ..kafka()
        };
        assert_eq!(k.extra_properties().unwrap().len(), 2);
        assert_eq!(k.dlq_topic(), "t.dlq");
        let bad = KafkaConfig {
            properties: "oops".into(),
            ..k
        };
        assert_eq!(bad.extra_properties().unwrap_err().var, "KAFKA_PROPERTIES");
    }

    fn kafka() -> KafkaConfig {
        KafkaConfig {
            brokers: "b:9092".into(),
            topic: "t".into(),
            properties: String::new(),
            security_protocol: KafkaSecurityProtocol::Plaintext,
            ssl_ca_location: None,
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
        }
    }

    #[test]
    fn kafka_sasl_ssl_settings_become_librdkafka_properties() {
        let k = KafkaConfig {
            security_protocol: KafkaSecurityProtocol::SaslSsl,
            sasl_mechanism: Some("SCRAM-SHA-512".into()),
            sasl_username: Some("registrar".into()),
            sasl_password: Some(SecretString::from("pw".to_owned())),
            ..kafka()
        };
        let props = k.security_properties().unwrap();
        assert_eq!(
            props,
            vec![
                ("security.protocol", "sasl_ssl".to_owned()),
                ("sasl.mechanism", "SCRAM-SHA-512".to_owned()),
                ("sasl.username", "registrar".to_owned()),
                ("sasl.password", "pw".to_owned()),
            ]
        );
    }

    #[test]
    fn kafka_security_settings_that_contradict_each_other_are_refused() {
        let sasl_without_protocol = KafkaConfig {
            sasl_mechanism: Some("PLAIN".into()),
            ..kafka()
        };
        assert_eq!(
            sasl_without_protocol.security_properties().unwrap_err().var,
            "KAFKA_SASL_MECHANISM"
        );
        let sasl_without_password = KafkaConfig {
            security_protocol: KafkaSecurityProtocol::SaslSsl,
            sasl_mechanism: Some("PLAIN".into()),
            sasl_username: Some("u".into()),
            ..kafka()
        };
        assert_eq!(
            sasl_without_password.security_properties().unwrap_err().var,
            "KAFKA_SASL_PASSWORD"
        );
        let ca_without_tls = KafkaConfig {
            ssl_ca_location: Some("/etc/hostname".into()),
            ..kafka()
        };
        assert_eq!(
            ca_without_tls.security_properties().unwrap_err().var,
            "KAFKA_SSL_CA_LOCATION"
        );
    }
}
