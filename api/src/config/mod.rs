//! The api's configuration: one typed struct read from the environment.

use std::time::Duration;

use clap::Args;
use common::config::{
    ConfigError, KafkaConfig, LogConfig, PostgresConfig, RedisConfig, ServiceConfig,
};
use common::domain::password::Argon2Config;
use common::events::seal::{EpochPolicy, Sealer, SealingKey};
use common::events::signature::{Purpose, RecordSigner};

use secrecy::SecretString;

use crate::auth::keys::JwtKeys;
pub use crate::publisher::RecordSigners;

mod oidc;
pub mod passkeys;
pub use oidc::OidcConfig;

#[derive(Args, Clone, Debug)]
pub struct ApiConfig {
    /// Port the HTTP api listens on.
    #[arg(long, env = "PORT", default_value_t = 8000)]
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
    pub oidc: OidcConfig,
    #[command(flatten)]
    pub passkeys: passkeys::PasskeyConfig,
    /// Id of the consumers' key pair the api seals passwords to.
    #[arg(long = "seal-key-id", env = "SEAL_KEY_ID")]
    pub seal_key_id: String,
    /// The consumers' X25519 public key, base64 (`api keygen` prints one).
    #[arg(long = "seal-public-key", env = "SEAL_PUBLIC_KEY")]
    pub seal_public_key: String,
    /// HMAC-SHA256 key that signs every registration record the api publishes, as
    /// `<key id>:<base64 32 bytes>` (`api keygen` prints one). Consumers verify with the
    /// same key, listed in `RECORD_VERIFYING_KEYS`.
    #[arg(
        long = "record-signing-key",
        env = "RECORD_SIGNING_KEY",
        hide_env_values = true
    )]
    pub record_signing_key: String,
    /// HMAC-SHA256 key that signs import records, same form, and a different key: only
    /// records it signs may carry a role, a verified address or a password hash.
    #[arg(
        long = "import-signing-key",
        env = "IMPORT_SIGNING_KEY",
        hide_env_values = true
    )]
    pub import_signing_key: String,
    /// Seconds one sealing epoch (one HPKE encapsulation shared by many passwords) lasts;
    /// 0 = seal every password with its own encapsulation (the event format of schema v3
    /// and earlier, for consumers not yet upgraded).
    #[arg(
        long = "seal-epoch-secs",
        env = "SEAL_EPOCH_SECS",
        default_value_t = 300
    )]
    pub seal_epoch_secs: u64,
    /// Passwords sealed in one epoch at most before the next one starts.
    #[arg(
        long = "seal-epoch-messages",
        env = "SEAL_EPOCH_MESSAGES",
        default_value_t = 100_000
    )]
    pub seal_epoch_messages: u64,
    /// How long a registration waits for the broker's acknowledgement before 503.
    #[arg(
        long = "produce-timeout-ms",
        env = "PRODUCE_TIMEOUT_MS",
        default_value_t = 5000
    )]
    pub produce_timeout_ms: u64,
    /// Messages the producer may hold unacknowledged; beyond it registrations get 503
    /// with Retry-After at once.
    #[arg(
        long = "producer-queue-max-messages",
        env = "PRODUCER_QUEUE_MAX_MESSAGES",
        default_value_t = 100_000
    )]
    pub producer_queue_max_messages: u32,
    /// Registrations handled at once; more are refused at once with 503 `OVERLOADED` and
    /// `Retry-After` instead of queueing inside the api (0 = no limit).
    #[arg(
        long = "intake-max-in-flight",
        env = "INTAKE_MAX_IN_FLIGHT",
        default_value_t = 512
    )]
    pub intake_max_in_flight: usize,
    /// Client connections held open at once; the next one waits in the listen backlog
    /// until one closes (0 = no cap).
    #[arg(
        long = "max-connections",
        env = "MAX_CONNECTIONS",
        default_value_t = 2048
    )]
    pub max_connections: usize,
    /// Producer batching delay in milliseconds (librdkafka `linger.ms`).
    #[arg(
        long = "producer-linger-ms",
        env = "PRODUCER_LINGER_MS",
        default_value_t = 2
    )]
    pub producer_linger_ms: u32,
    /// Apply migrations at start (`api migrate` applies them alone).
    #[arg(long = "run-migrations", env = "RUN_MIGRATIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub run_migrations: bool,
    /// Consumer group whose lag the api reports (`registrar_consumer_lag`).
    #[arg(
        long = "kafka-group-id",
        env = "KAFKA_GROUP_ID",
        default_value = "registrar-consumer"
    )]
    pub group_id: String,
    /// The consumers' Prometheus endpoints the console's live pipeline view reads,
    /// comma-separated (`http://consumer:8001/metrics`; one per consumer pod for exact
    /// rates). Empty: the view shows the api's own figures only.
    #[arg(
        long = "consumer-metrics-urls",
        env = "CONSUMER_METRICS_URLS",
        default_value = "http://127.0.0.1:8001/metrics"
    )]
    pub consumer_metrics_urls: String,
    /// Directory of the built operators' console, served under `/console`.
    #[arg(
        long = "console-dir",
        env = "CONSOLE_DIR",
        default_value = "console/dist"
    )]
    pub console_dir: std::path::PathBuf,
    /// Allowed CORS origins, comma-separated (`*` for any, without credentials).
    #[arg(long = "cors-origins", env = "CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// One frontend origin (the common single-app setup); used when `CORS_ORIGINS` is empty.
    #[arg(long = "frontend-url", env = "FRONTEND_URL", default_value = "")]
    pub frontend_url: String,
    /// Requests per minute per client IP on every route; 0 turns the limit off.
    #[arg(
        long = "rate-limit-per-minute",
        env = "RATE_LIMIT_PER_MINUTE",
        default_value_t = 600
    )]
    pub rate_limit_per_minute: u32,
    /// Requests a client may send at once before the per-minute rate applies.
    #[arg(
        long = "rate-limit-burst",
        env = "RATE_LIMIT_BURST",
        default_value_t = 120
    )]
    pub rate_limit_burst: u32,
    /// Requests per minute per client address on registration, login, refresh, second
    /// factor, verification, password reset and imports' siblings (the routes that check
    /// secrets or send mail); 0 turns it off.
    #[arg(
        long = "auth-rate-limit-per-minute",
        env = "AUTH_RATE_LIMIT_PER_MINUTE",
        default_value_t = 20
    )]
    pub auth_rate_limit_per_minute: u32,
    /// Requests a client address may send at once above that rate on those routes.
    #[arg(
        long = "auth-rate-limit-burst",
        env = "AUTH_RATE_LIMIT_BURST",
        default_value_t = 10
    )]
    pub auth_rate_limit_burst: u32,
    /// Proxies (IPs or CIDRs) whose `X-Forwarded-For` is believed.
    #[arg(long = "trusted-proxies", env = "TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Parameters of the hashes the api writes (password changes, re-hashing at login);
    /// the same variables as the consumer's.
    #[command(flatten)]
    pub argon2: Argon2Config,
    /// The access-token signing key, `<kid>:<base64 Ed25519 seed>` (`api keygen`).
    #[arg(
        long = "jwt-signing-key",
        env = "JWT_SIGNING_KEY",
        hide_env_values = true,
        value_parser = common::config::secret
    )]
    pub jwt_signing_key: Option<SecretString>,
    /// A file holding the signing key instead (a mounted Kubernetes secret).
    #[arg(long = "jwt-signing-key-file", env = "JWT_SIGNING_KEY_FILE")]
    pub jwt_signing_key_file: Option<std::path::PathBuf>,
    /// Public keys of earlier signing keys, `<kid>:<base64>` comma-separated: their
    /// tokens stay valid until they expire.
    #[arg(
        long = "jwt-verification-keys",
        env = "JWT_VERIFICATION_KEYS",
        default_value = ""
    )]
    pub jwt_verification_keys: String,
    /// `iss` of the access tokens.
    #[arg(long = "jwt-issuer", env = "JWT_ISSUER", default_value = "registrar")]
    pub jwt_issuer: String,
    /// `aud` of the access tokens.
    #[arg(
        long = "jwt-audience",
        env = "JWT_AUDIENCE",
        default_value = "registrar"
    )]
    pub jwt_audience: String,
    /// Access-token lifetime in seconds.
    #[arg(
        long = "access-token-ttl-secs",
        env = "ACCESS_TOKEN_TTL_SECS",
        default_value_t = 900
    )]
    pub access_token_ttl_secs: u64,
    /// Refresh-token lifetime in seconds.
    #[arg(
        long = "refresh-token-ttl-secs",
        env = "REFRESH_TOKEN_TTL_SECS",
        default_value_t = 604_800
    )]
    pub refresh_token_ttl_secs: u64,
    /// Absolute session lifetime in seconds: refreshing never extends a session past
    /// this age; the user logs in again.
    #[arg(
        long = "session-max-lifetime-secs",
        env = "SESSION_MAX_LIFETIME_SECS",
        default_value_t = 2_592_000
    )]
    pub session_max_lifetime_secs: u64,
    /// Password hashes computed at once in the api; 0 means one per core.
    #[arg(
        long = "password-hash-workers",
        env = "PASSWORD_HASH_WORKERS",
        default_value_t = 0
    )]
    pub password_hash_workers: usize,
    /// Logins that may wait for a hashing worker; beyond it they get 503 at once.
    #[arg(
        long = "password-hash-queue",
        env = "PASSWORD_HASH_QUEUE",
        default_value_t = 64
    )]
    pub password_hash_queue: usize,
    /// Longest wait for a hashing worker before 503, in milliseconds.
    #[arg(
        long = "password-hash-max-wait-ms",
        env = "PASSWORD_HASH_MAX_WAIT_MS",
        default_value_t = 2000
    )]
    pub password_hash_max_wait_ms: u64,
    /// Most key/value items one user may store.
    #[arg(
        long = "data-max-items",
        env = "DATA_MAX_ITEMS",
        default_value_t = 1000
    )]
    pub data_max_items: i64,
    /// Most bytes (keys plus values as stored) one user's key/value data may take.
    #[arg(
        long = "data-max-bytes",
        env = "DATA_MAX_BYTES",
        default_value_t = 1_048_576
    )]
    pub data_max_bytes: i64,
    /// Shortest password accepted for registrations and password changes (at least 8;
    /// common passwords are refused at any length).
    #[arg(
        long = "password-min-length",
        env = "PASSWORD_MIN_LENGTH",
        default_value_t = common::domain::password_policy::DEFAULT_MIN_CHARS
    )]
    pub password_min_length: usize,
    /// The profile fields every registration (and every `PUT` of a user) must carry,
    /// comma-separated: email and password always, and any of firstName, lastName,
    /// gender, sex, occupation, username, dateOfBirth. The others are optional and
    /// checked when present.
    #[arg(
        long = "required-profile-fields",
        env = "REQUIRED_PROFILE_FIELDS",
        default_value = "email,password",
        value_parser = common::domain::registration::RequiredFields::parse
    )]
    pub required_profile_fields: common::domain::registration::RequiredFields,
    /// Networks webhook endpoints may point into although they are internal (loopback,
    /// private, link-local...), comma-separated CIDRs; empty: none. The consumers'
    /// setting of the same name decides where deliveries connect.
    #[arg(
        long = "webhook-allow-networks",
        env = "WEBHOOK_ALLOW_NETWORKS",
        default_value = "",
        value_parser = common::domain::webhook_target::TargetGuard::parse
    )]
    pub webhook_allow_networks: common::domain::webhook_target::TargetGuard,
    /// Failed logins per account before it is locked for the rest of the window.
    #[arg(
        long = "login-max-attempts",
        env = "LOGIN_MAX_ATTEMPTS",
        default_value_t = 5
    )]
    pub login_max_attempts: u64,
    /// The lockout window in seconds.
    #[arg(
        long = "login-lockout-secs",
        env = "LOGIN_LOCKOUT_SECS",
        default_value_t = 900
    )]
    pub login_lockout_secs: u64,
    /// Lines of a bulk import read and checked per chunk; a chunk is published while
    /// the next one is read, so an import holds at most two in memory.
    #[arg(
        long = "import-chunk-lines",
        env = "IMPORT_CHUNK_LINES",
        default_value_t = 2000,
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub import_chunk_lines: u32,
    /// Largest import body accepted, in bytes (a larger `Content-Length` is refused with
    /// 413 before anything is read; a body without one stops there).
    #[arg(long = "import-max-bytes", env = "IMPORT_MAX_BYTES", default_value_t = 512 * 1024 * 1024)]
    pub import_max_bytes: u64,
    /// Most lines one import may hold; the import stops at the line after (413).
    #[arg(
        long = "import-max-lines",
        env = "IMPORT_MAX_LINES",
        default_value_t = 1_000_000
    )]
    pub import_max_lines: u64,
    /// Imports one admin may run at once over the api (the CLI import is not counted).
    #[arg(
        long = "imports-per-admin",
        env = "IMPORTS_PER_ADMIN",
        default_value_t = 1
    )]
    pub imports_per_admin: u32,
    /// Lines per second one import publishes at most, so that it shares the producer,
    /// the topic and the consumers with sign-ups instead of queueing ahead of them;
    /// 0: as fast as the broker takes them.
    #[arg(
        long = "import-rate-per-sec",
        env = "IMPORT_RATE_PER_SEC",
        default_value_t = 5000
    )]
    pub import_rate_per_sec: u32,
    /// Bound on handling one request, in milliseconds.
    #[arg(
        long = "request-timeout-ms",
        env = "REQUEST_TIMEOUT_MS",
        default_value_t = 15_000
    )]
    pub request_timeout_ms: u64,
    /// Seconds a finished registration's state (completed, failed) is answered from the
    /// api's memory when polled by registration id; 0 = always ask Redis.
    #[arg(long = "poll-cache-secs", env = "POLL_CACHE_SECS", default_value_t = 5)]
    pub poll_cache_secs: u64,
    /// Answer an anonymous poll of `GET /api/v1/users/{email}` that has no
    /// `registrationId` with the email's latest registration, as clients written for the
    /// oldest API expect. Off by default: on, anyone can learn whether an address has
    /// registered (docs/src/security.md).
    #[arg(
        long = "poll-without-registration-id",
        env = "POLL_WITHOUT_REGISTRATION_ID",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub poll_without_registration_id: bool,
    /// SCIM requests one SCIM token may make per minute; beyond it 429. 0 = unlimited.
    #[arg(
        long = "scim-rate-per-minute",
        env = "SCIM_RATE_PER_MINUTE",
        default_value_t = 600
    )]
    pub scim_rate_per_minute: u64,
    /// How long `POST /scim/v2/Users` waits for the consumer to persist the account
    /// before answering 503 (the account is created all the same; a retry finds it).
    #[arg(
        long = "scim-create-wait-ms",
        env = "SCIM_CREATE_WAIT_MS",
        default_value_t = 10_000
    )]
    pub scim_create_wait_ms: u64,
    /// The largest SCIM page (`count`), and the most members a Group lists.
    #[arg(
        long = "scim-max-results",
        env = "SCIM_MAX_RESULTS",
        default_value_t = 200
    )]
    pub scim_max_results: usize,
    /// Refuse logins (403 EMAIL_NOT_VERIFIED) until the account's email is verified.
    #[arg(
        long = "require-verified-email",
        env = "REQUIRE_VERIFIED_EMAIL",
        default_value_t = false,
        action = clap::ArgAction::Set
    )]
    pub require_verified_email: bool,
    /// Mails per recipient per window (password reset, verification resend, an email
    /// change's verification) before further ones are slowed down.
    #[arg(
        long = "mail-requests-per-email",
        env = "MAIL_REQUESTS_PER_EMAIL",
        default_value_t = 3
    )]
    pub mail_requests_per_email: u64,
    /// Mail requests (password reset, verification resend) per client address per window.
    #[arg(
        long = "mail-requests-per-ip",
        env = "MAIL_REQUESTS_PER_IP",
        default_value_t = 20
    )]
    pub mail_requests_per_ip: u64,
    /// The window of both mail-request limits, in seconds.
    #[arg(
        long = "mail-request-window-secs",
        env = "MAIL_REQUEST_WINDOW_SECS",
        default_value_t = 3600
    )]
    pub mail_request_window_secs: u64,
    /// The key TOTP secrets are encrypted under at rest: `<kid>:<base64 32 bytes>`
    /// (`api keygen` prints one). Without it, two-factor enrolment is refused (501).
    #[arg(
        long = "mfa-encryption-key",
        env = "MFA_ENCRYPTION_KEY",
        hide_env_values = true,
        value_parser = common::config::secret
    )]
    pub mfa_encryption_key: Option<SecretString>,
    /// Earlier MFA encryption keys (comma-separated `<kid>:<base64>`), still used to
    /// decrypt secrets sealed before a rotation; each is re-sealed under the current key
    /// at its next use.
    #[arg(
        long = "mfa-decryption-keys",
        env = "MFA_DECRYPTION_KEYS",
        default_value = "",
        hide_env_values = true,
        value_parser = common::config::secret
    )]
    pub mfa_decryption_keys: SecretString,
    /// The issuer shown by authenticator apps.
    #[arg(long = "mfa-issuer", env = "MFA_ISSUER", default_value = "Registrar")]
    pub mfa_issuer: String,
    /// Lifetime of the challenge a login with a second factor hands out, in seconds.
    #[arg(
        long = "mfa-challenge-ttl-secs",
        env = "MFA_CHALLENGE_TTL_SECS",
        default_value_t = 300
    )]
    pub mfa_challenge_ttl_secs: u64,
}

impl ApiConfig {
    pub fn sealing_key(&self) -> Result<SealingKey, ConfigError> {
        SealingKey::from_base64(&self.seal_key_id, &self.seal_public_key).map_err(|e| match e {
            common::events::seal::KeyError::KeyId => ConfigError::new("SEAL_KEY_ID", e),
            other => ConfigError::new("SEAL_PUBLIC_KEY", other),
        })
    }

    /// The registration and import signing keys; they must differ.
    pub fn record_signers(&self) -> Result<RecordSigners, ConfigError> {
        let registration = RecordSigner::parse(Purpose::Registration, &self.record_signing_key)
            .map_err(|e| ConfigError::new("RECORD_SIGNING_KEY", e))?;
        let import = RecordSigner::parse(Purpose::Import, &self.import_signing_key)
            .map_err(|e| ConfigError::new("IMPORT_SIGNING_KEY", e))?;
        let same_key = self
            .record_signing_key
            .split_once(':')
            .map(|(_, k)| k.trim())
            == self
                .import_signing_key
                .split_once(':')
                .map(|(_, k)| k.trim());
        if same_key || registration.key_id() == import.key_id() {
            return Err(ConfigError::new(
                "IMPORT_SIGNING_KEY",
                "must be another key, with another key id, than RECORD_SIGNING_KEY",
            ));
        }
        Ok(RecordSigners {
            registration,
            import,
        })
    }

    /// The sealer of passwords: per epoch unless `SEAL_EPOCH_SECS=0`.
    pub fn sealer(&self) -> Result<Sealer, ConfigError> {
        if self.seal_epoch_messages == 0 {
            return Err(ConfigError::new(
                "SEAL_EPOCH_MESSAGES",
                "must be at least 1",
            ));
        }
        let policy = (self.seal_epoch_secs > 0).then(|| EpochPolicy {
            max_age: Duration::from_secs(self.seal_epoch_secs),
            max_messages: self.seal_epoch_messages,
        });
        Ok(Sealer::new(self.sealing_key()?, policy))
    }

    /// The encryption keys of TOTP secrets, when `MFA_ENCRYPTION_KEY` is set.
    pub fn mfa_keys(&self) -> Result<Option<crate::auth::mfa::MfaKeys>, ConfigError> {
        self.mfa_encryption_key
            .as_ref()
            .map(|key| crate::auth::mfa::MfaKeys::new(key, &self.mfa_decryption_keys))
            .transpose()
            .map_err(|(var, e)| ConfigError::new(var, e))
    }

    /// The access-token keys from `JWT_SIGNING_KEY` or `JWT_SIGNING_KEY_FILE`.
    pub fn jwt_keys(&self) -> Result<JwtKeys, ConfigError> {
        let signing = common::config::secret_or_file(
            self.jwt_signing_key.as_ref(),
            self.jwt_signing_key_file.as_deref(),
            "JWT_SIGNING_KEY",
            "JWT_SIGNING_KEY_FILE",
        )?
        .ok_or_else(|| {
            ConfigError::new(
                "JWT_SIGNING_KEY",
                "is required (or JWT_SIGNING_KEY_FILE); `api keygen` prints one",
            )
        })?;
        if self.access_token_ttl_secs == 0 {
            return Err(ConfigError::new(
                "ACCESS_TOKEN_TTL_SECS",
                "must be positive",
            ));
        }
        if self.session_max_lifetime_secs == 0 {
            return Err(ConfigError::new(
                "SESSION_MAX_LIFETIME_SECS",
                "must be positive",
            ));
        }
        if self.refresh_token_ttl_secs == 0 {
            return Err(ConfigError::new(
                "REFRESH_TOKEN_TTL_SECS",
                "must be positive",
            ));
        }
        let previous: Vec<String> = self
            .jwt_verification_keys
            .split(',')
            .map(str::to_owned)
            .collect();
        JwtKeys::new(
            &signing,
            &previous,
            &self.jwt_issuer,
            &self.jwt_audience,
            Duration::from_secs(self.access_token_ttl_secs),
        )
        .map_err(|(var, e)| ConfigError::new(var, e))
    }

    pub fn password_hash_workers(&self) -> usize {
        if self.password_hash_workers == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            self.password_hash_workers
        }
    }

    pub fn cors_origins(&self) -> Vec<String> {
        let raw = if self.cors_origins.trim().is_empty() {
            &self.frontend_url
        } else {
            &self.cors_origins
        };
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        crate::protection::parse_trusted_proxies(&self.trusted_proxies)
            .map_err(|e| ConfigError::new("TRUSTED_PROXIES", e))
    }

    pub fn poll_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.poll_cache_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn produce_timeout(&self) -> Duration {
        Duration::from_millis(self.produce_timeout_ms)
    }
}

/// The api's environment variables, from its clap definition (the configuration
/// reference).
pub fn settings() -> Vec<common::config_reference::Setting> {
    use clap::Args as _;
    common::config_reference::settings(&ApiConfig::augment_args(clap::Command::new("api")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: ApiConfig,
    }

    fn config(extra: &[&str]) -> ApiConfig {
        use common::events::signature::{generate, Purpose};
        let (_, public) = common::events::seal::generate_key_pair();
        let (registration, _) = generate(Purpose::Registration, "rec1");
        let (import, _) = generate(Purpose::Import, "imp1");
        let mut args = vec!["api", "--seal-key-id", "k1", "--seal-public-key"];
        args.push(&public);
        args.extend_from_slice(&["--record-signing-key", registration.as_str()]);
        args.extend_from_slice(&["--import-signing-key", import.as_str()]);
        args.extend_from_slice(extra);
        Cli::try_parse_from(args).unwrap().config
    }

    #[test]
    fn the_import_signing_key_must_differ_from_the_registration_key() {
        let (registration, _) = common::events::signature::generate(
            common::events::signature::Purpose::Registration,
            "rec9",
        );
        let mut same = config(&[]);
        same.record_signing_key = registration.as_str().to_owned();
        same.import_signing_key = registration.as_str().to_owned();
        let same = same.record_signers().unwrap_err();
        assert_eq!(same.var, "IMPORT_SIGNING_KEY", "{same}");
        let mut bad = config(&[]);
        bad.record_signing_key = "rec:not-base64".into();
        let bad = bad.record_signers().unwrap_err();
        assert_eq!(bad.var, "RECORD_SIGNING_KEY", "{bad}");
        assert!(config(&[]).record_signers().is_ok());
    }

    #[test]
    fn the_signing_key_is_read_from_a_file() {
        let (private, _) = crate::auth::keys::generate("from-file");
        let path = std::env::temp_dir().join(format!("jwt-{}.key", uuid::Uuid::new_v4()));
        std::fs::write(
            &path,
            format!("{}\n", secrecy::ExposeSecret::expose_secret(&private)),
        )
        .unwrap();
        let keys = config(&["--jwt-signing-key-file", path.to_str().unwrap()])
            .jwt_keys()
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(keys.jwks()["keys"][0]["kid"], "from-file");
    }

    #[test]
    fn the_signing_key_is_required_once() {
        let e = config(&[]).jwt_keys().err().unwrap();
        assert!(e.to_string().contains("JWT_SIGNING_KEY"), "{e}");
        let (private, _) = crate::auth::keys::generate("k");
        let key = secrecy::ExposeSecret::expose_secret(&private).to_owned();
        let e = config(&[
            "--jwt-signing-key",
            &key,
            "--jwt-signing-key-file",
            "/nonexistent",
        ])
        .jwt_keys()
        .err()
        .unwrap();
        assert!(e.to_string().contains("not both"), "{e}");
        let e = config(&["--jwt-signing-key-file", "/nonexistent/key"])
            .jwt_keys()
            .err()
            .unwrap();
        assert!(e.to_string().contains("JWT_SIGNING_KEY_FILE"), "{e}");
    }
}
