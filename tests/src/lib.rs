//! Test support: spawns the api and the consumer in-process against the real local
//! PostgreSQL, Redis and Apache Kafka, each test with its own database, topics,
//! consumer group and Redis key prefix, all removed again when the test ends.

pub mod authenticator;
pub mod broker;
pub mod chaos;
pub mod kafka;
pub mod logs;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use common::store::redis::RedisKeys;
use registrar_api::config::ApiConfig;
use registrar_api::startup::Application;
use registrar_consumer::config::ConsumerConfig;
use registrar_consumer::Consumer;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

pub fn pg_admin_url() -> String {
    env_or(
        "TEST_DATABASE_ADMIN_URL",
        "postgres://postgres:postgres@127.0.0.1:5432/postgres",
    )
}

pub fn redis_url() -> String {
    env_or("TEST_REDIS_URL", "redis://127.0.0.1:6379")
}

/// The MailDev web and REST API (`scripts/services.sh` starts it).
pub fn maildev_web_url() -> String {
    env_or("MAILDEV_WEB_URL", "http://127.0.0.1:1080")
}

pub fn maildev_smtp_url() -> String {
    env_or("TEST_SMTP_URL", "smtp://127.0.0.1:1025")
}

/// A registration event as the api would publish it for `email`, with `credential` and
/// a fresh registration id; tests change the fields they are about.
pub fn registration_event(
    email: &str,
    credential: common::events::registration::Credential,
) -> common::events::registration::RegistrationEvent {
    common::events::registration::RegistrationEvent {
        registration_id: Uuid::now_v7(),
        email: email.to_owned(),
        first_name: Some("Grace".into()),
        last_name: Some("Hopper".into()),
        gender: Some("female".into()),
        sex: Some("female".into()),
        occupation: Some("Admiral".into()),
        credential,
        submitted_at_ms: chrono::Utc::now().timestamp_millis(),
        request_id: None,
        username: None,
        date_of_birth: None,
        role: None,
        created_at_ms: None,
        email_verified: false,
        import: None,
        provisioning: None,
        identity: None,
    }
}

/// The frontend the test mails link to.
pub const FRONTEND_URL: &str = "https://app.registrar.test";

/// The mails MailDev received for `to`, oldest first.
pub async fn mails_to(to: &str) -> Vec<Value> {
    let url = format!("{}/email", maildev_web_url());
    let response = reqwest::Client::new()
        .get(&url)
        .query(&[("to.address", to)])
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!("MailDev at {url} does not answer ({e}): run scripts/services.sh up")
        });
    response.json::<Vec<Value>>().await.unwrap_or_default()
}

/// Waits until MailDev holds `count` mails for `to` whose subject contains `subject`;
/// returns them, oldest first.
pub async fn wait_for_mails(to: &str, subject: &str, count: usize, within: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let found: Vec<Value> = mails_to(to)
            .await
            .into_iter()
            .filter(|m| m["subject"].as_str().unwrap_or_default().contains(subject))
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} mail(s) '{subject}' for {to} did not arrive within {within:?} (found {})",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The token of the link (`…?token=`) in a mail's text.
pub fn link_token(mail: &Value) -> String {
    let text = mail["text"].as_str().unwrap_or_default();
    let start = text
        .find("?token=")
        .unwrap_or_else(|| panic!("no link in mail: {text}"))
        + "?token=".len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

pub fn kafka_brokers() -> String {
    env_or("TEST_KAFKA_BROKERS", "127.0.0.1:9092")
}

/// Light argon2 parameters for tests that are not about hashing cost.
pub const LIGHT_ARGON2: [&str; 6] = [
    "--argon2-memory-kib",
    "256",
    "--argon2-iterations",
    "1",
    "--argon2-parallelism",
    "1",
];

#[derive(Parser)]
#[command(args_override_self = true)]
struct ApiCli {
    #[command(flatten)]
    config: ApiConfig,
}

#[derive(Parser)]
#[command(args_override_self = true)]
struct ConsumerCli {
    #[command(flatten)]
    config: ConsumerConfig,
}

/// Everything one test owns. Dropping it stops the binaries and removes the database,
/// topics and Redis keys.
pub struct TestApp {
    pub id: String,
    pub address: SocketAddr,
    pub http: reqwest::Client,
    pub database: String,
    pub database_url: String,
    pub topic: String,
    /// The user-events topic the relay publishes to.
    pub events_topic: String,
    /// The topic of the OpenID Connect clients' events.
    pub client_events_topic: String,
    pub group: String,
    pub redis_prefix: String,
    pub seal_key_id: String,
    pub seal_public_key: String,
    pub seal_private_keys: String,
    /// The api's access-token signing key (`<kid>:<base64 seed>`).
    pub jwt_signing_key: String,
    /// The api's record-signing keys (`<kid>:<base64 seed>`): sign-ups and imports.
    pub record_signing_key: String,
    pub import_signing_key: String,
    /// What the consumer verifies records with (`RECORD_VERIFYING_KEYS`).
    pub record_verifying_keys: String,
    pub redis: deadpool_redis::Pool,
    /// The `Location` of each 202 this app saw, by email.
    pub locations: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// The running api's state: use cases can be called on it directly, without HTTP.
    pub state: registrar_api::state::AppState,
    api_shutdown: CancellationToken,
    api_task: Option<JoinHandle<anyhow::Result<()>>>,
    consumer: Option<RunningConsumer>,
    /// Extra arguments for the consumer (argon2 cost, batch size...).
    pub consumer_args: Vec<String>,
}

/// A consumer running as its own process; killed with SIGKILL when dropped.
pub struct ConsumerProcess {
    pub child: std::process::Child,
    pub log_path: PathBuf,
}

impl ConsumerProcess {
    /// `kill -9`: no offsets committed, no LeaveGroup, the group learns of it only when
    /// the member's session expires. Returns once the process is gone.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// The checkout's root directory.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// A binary of the workspace in the target directory the tests run from (`make test`
/// builds `api` and `consumer` first).
/// The networks tests let webhooks reach: their receivers listen on loopback.
pub const LOOPBACK: &str = "127.0.0.0/8,::1/128";

pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    // target/<profile>/deps/<test binary>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap_or_else(|| panic!("unexpected test binary path {}", exe.display()));
    let binary = profile_dir.join(name);
    assert!(
        binary.exists(),
        "{} is missing: build it first (`make test` does: cargo build --bin {name})",
        binary.display()
    );
    binary
}

pub struct RunningConsumer {
    token: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    pub probe_address: SocketAddr,
}

#[derive(Default)]
pub struct TestOptions {
    /// Don't start a consumer (registrations stay pending).
    pub without_consumer: bool,
    /// Use production argon2 parameters in the consumer and the api.
    pub production_argon2: bool,
    /// Broker address the api uses (default: the real one).
    pub api_kafka_brokers: Option<String>,
    /// Redis URL the api uses (default: the real one).
    pub api_redis_url: Option<String>,
    /// Database URL the api uses (default: the test database).
    pub api_database_url: Option<String>,
    /// Database URL the consumer uses (default: the test database).
    pub consumer_database_url: Option<String>,
    pub consumer_batch_size: Option<usize>,
    /// Extra api arguments, e.g. `--producer-queue-max-messages 1`.
    pub api_args: Vec<String>,
    /// Redis URL the consumer uses (default: the real one).
    pub consumer_redis_url: Option<String>,
    pub partitions: Option<i32>,
    /// Run the consumer's webhook intake and dispatcher (off otherwise), with loopback
    /// targets allowed and retries within a second.
    pub webhooks: bool,
    /// Wraps the api's Kafka publisher (fault injection on the real producer).
    pub wrap_publisher: Option<PublisherWrapper>,
}

/// What [`TestOptions::wrap_publisher`] holds.
pub type PublisherWrapper = Box<
    dyn FnOnce(
            std::sync::Arc<dyn registrar_api::publisher::RegistrationPublisher>,
        ) -> std::sync::Arc<dyn registrar_api::publisher::RegistrationPublisher>
        + Send,
>;

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(TestOptions::default()).await
    }

    /// The api alone: registrations stay pending.
    pub async fn spawn_without_consumer() -> Self {
        Self::spawn_with(TestOptions {
            without_consumer: true,
            ..Default::default()
        })
        .await
    }

    pub async fn spawn_with(options: TestOptions) -> Self {
        logs::install();
        let id = Uuid::new_v4().simple().to_string()[..12].to_owned();
        let database = format!("registrar_test_{id}");
        let database_url = create_database(&database).await;
        let topic = format!("test-registration-{id}");
        kafka::create_topics(&topic, options.partitions.unwrap_or(2)).await;
        let events_topic = format!("test-events-{id}");
        let client_events_topic = format!("test-client-events-{id}");
        tokio::join!(
            kafka::create_topic(&events_topic, 2),
            kafka::create_topic(&client_events_topic, 1)
        );
        let (private, public) = common::events::seal::generate_key_pair();
        let seal_key_id = format!("t{id}");
        let redis_prefix = format!("test:{id}:");
        let redis = common::store::redis::pool(&common::config::RedisConfig {
            url: secrecy::SecretString::from(redis_url()),
            pool_size: 4,
            timeout_ms: 2000,
            key_prefix: redis_prefix.clone(),
            tls_ca_file: None,
        })
        .unwrap_or_else(|e| panic!("{e}"));

        let (jwt_signing_key, _) = registrar_api::auth::keys::generate(&format!("jwt{id}"));
        let jwt_signing_key = secrecy::ExposeSecret::expose_secret(&jwt_signing_key).to_owned();
        let mfa_encryption_key = secrecy::ExposeSecret::expose_secret(
            &registrar_api::auth::mfa::MfaKeys::generate(&format!("mfa{id}")),
        )
        .to_owned();
        let (record_signing_key, registration_public) = common::events::signature::generate(
            common::events::signature::Purpose::Registration,
            &format!("rec{id}"),
        );
        let (import_signing_key, import_public) = common::events::signature::generate(
            common::events::signature::Purpose::Import,
            &format!("imp{id}"),
        );
        let (record_signing_key, import_signing_key) = (
            record_signing_key.as_str().to_owned(),
            import_signing_key.as_str().to_owned(),
        );
        let record_verifying_keys = format!(
            "{},{}",
            registration_public.as_str(),
            import_public.as_str()
        );
        let mut api_args: Vec<String> = [
            "api",
            "--host",
            "127.0.0.1",
            "--database-url",
            options.api_database_url.as_deref().unwrap_or(&database_url),
            "--redis-url",
            options.api_redis_url.as_deref().unwrap_or(&redis_url()),
            "--redis-key-prefix",
            &redis_prefix,
            "--kafka-brokers",
            options
                .api_kafka_brokers
                .as_deref()
                .unwrap_or(&kafka_brokers()),
            "--kafka-topic",
            &topic,
            "--kafka-group-id",
            &format!("test-group-{id}"),
            "--seal-key-id",
            &seal_key_id,
            "--seal-public-key",
            &public,
            "--produce-timeout-ms",
            "3000",
            "--run-migrations",
            "false",
            "--shutdown-grace-secs",
            "5",
            // Tests send bursts from one address; the limits have their own test.
            "--rate-limit-per-minute",
            "0",
            "--auth-rate-limit-per-minute",
            "0",
            "--jwt-signing-key",
            &jwt_signing_key,
            "--mfa-encryption-key",
            &mfa_encryption_key,
            "--record-signing-key",
            &record_signing_key,
            "--import-signing-key",
            &import_signing_key,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !options.production_argon2 {
            api_args.extend(LIGHT_ARGON2.iter().map(|s| s.to_string()));
        }
        // Bound first: the OpenID Connect issuer is the api's own address.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        api_args.extend([
            "--oidc-issuer".to_owned(),
            format!("http://{address}"),
            "--oidc-signing-key".to_owned(),
            oidc_signing_key().to_owned(),
        ]);
        if options.webhooks {
            api_args.extend(["--webhook-allow-networks".to_owned(), LOOPBACK.to_owned()]);
        }
        api_args.extend(options.api_args.iter().cloned());
        let config = ApiCli::parse_from(api_args).config;
        let wrap = options.wrap_publisher.unwrap_or_else(|| Box::new(|p| p));
        let app = Application::build_wrapping_publisher(config, wrap)
            .await
            .unwrap_or_else(|e| panic!("api failed to build: {e}"));
        let state = app.state.clone();
        let api_shutdown = CancellationToken::new();
        let token = api_shutdown.clone();
        let api_task = tokio::spawn(async move {
            app.serve(listener, async move { token.cancelled().await })
                .await
        });

        let mut consumer_args: Vec<String> = Vec::new();
        if !options.production_argon2 {
            consumer_args.extend(LIGHT_ARGON2.iter().map(|s| s.to_string()));
        }
        if let Some(size) = options.consumer_batch_size {
            consumer_args.extend(["--batch-size".to_string(), size.to_string()]);
        }
        if let Some(url) = &options.consumer_database_url {
            consumer_args.extend(["--database-url".to_string(), url.clone()]);
        }
        if let Some(url) = &options.consumer_redis_url {
            consumer_args.extend(["--redis-url".to_string(), url.clone()]);
        }
        if options.webhooks {
            consumer_args.extend(
                [
                    "--webhook-group-id",
                    &format!("test-webhooks-{id}"),
                    "--webhook-allow-networks",
                    LOOPBACK,
                    "--webhook-retry-base-ms",
                    "100",
                    "--webhook-retry-max-ms",
                    "400",
                    "--webhook-poll-ms",
                    "50",
                    "--webhook-timeout-ms",
                    "2000",
                ]
                .map(str::to_owned),
            );
        } else {
            consumer_args.extend(["--webhooks".to_owned(), "false".to_owned()]);
        }
        let mut test_app = TestApp {
            group: format!("test-group-{id}"),
            id,
            address,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
            database,
            database_url,
            topic,
            events_topic,
            client_events_topic,
            redis_prefix,
            seal_key_id,
            seal_public_key: public,
            seal_private_keys: String::new(),
            jwt_signing_key,
            record_signing_key,
            import_signing_key,
            record_verifying_keys,
            redis,
            locations: Default::default(),
            state,
            api_shutdown,
            api_task: Some(api_task),
            consumer: None,
            consumer_args,
        };
        test_app.seal_private_keys = format!("{}:{}", test_app.seal_key_id, private.as_str());
        if !options.without_consumer {
            test_app.start_consumer().await;
        }
        test_app
    }

    pub fn consumer_config(&self) -> ConsumerConfig {
        ConsumerCli::parse_from(self.consumer_arguments()).config
    }

    /// The consumer's command line for this test (program name first).
    fn consumer_arguments(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "consumer",
            "--host",
            "127.0.0.1",
            "--consumer-port",
            "0",
            "--database-url",
            &self.database_url,
            "--redis-url",
            &redis_url(),
            "--redis-key-prefix",
            &self.redis_prefix,
            "--kafka-brokers",
            &kafka_brokers(),
            "--kafka-topic",
            &self.topic,
            "--kafka-group-id",
            &self.group,
            "--kafka-session-timeout-ms",
            "6000",
            "--seal-private-keys",
            &self.seal_private_keys,
            "--record-verifying-keys",
            &self.record_verifying_keys,
            "--batch-wait-ms",
            "10",
            "--retry-backoff-max-ms",
            "1000",
            "--shutdown-grace-secs",
            "10",
            "--smtp-url",
            &maildev_smtp_url(),
            "--public-url",
            FRONTEND_URL,
            "--mail-poll-ms",
            "100",
            "--user-events-topic",
            &self.events_topic,
            "--client-events-topic",
            &self.client_events_topic,
            "--user-events-poll-ms",
            "50",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(self.consumer_args.iter().cloned());
        args
    }

    /// Starts the real `consumer` binary (built by `make test` before the tests run) in
    /// this test's group, as a separate process a test can `kill -9`. Its output goes to
    /// `target/test-logs/<name>.log`.
    pub fn spawn_consumer_process(&self, name: &str) -> ConsumerProcess {
        let binary = workspace_binary("consumer");
        let logs = root().join("target/test-logs");
        std::fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("{e}"));
        let log_path = logs.join(format!("{name}-{}.log", self.id));
        let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("{e}"));
        let err = log.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = std::process::Command::new(&binary)
            .args(&self.consumer_arguments()[1..])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LOG_LEVEL", "info")
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        ConsumerProcess { child, log_path }
    }

    /// Starts a consumer (again) in this test's group.
    pub async fn start_consumer(&mut self) {
        let config = self.consumer_config();
        let token = CancellationToken::new();
        let consumer = Consumer::build(&config, token.clone())
            .unwrap_or_else(|e| panic!("consumer failed to build: {e}"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let probe_address = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let task = tokio::spawn(consumer.run(listener));
        self.consumer = Some(RunningConsumer {
            token,
            task,
            probe_address,
        });
    }

    /// Graceful stop, as on SIGTERM: finish the batch, commit, leave the group.
    pub async fn stop_consumer(&mut self) {
        if let Some(c) = self.consumer.take() {
            c.token.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(20), c.task).await;
        }
    }

    /// Stops the api as SIGTERM does: stop accepting, finish in-flight requests, flush the
    /// producer. Returns what `serve` returned.
    pub async fn shutdown_api(&mut self) -> anyhow::Result<()> {
        self.api_shutdown.cancel();
        match self.api_task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }

    /// Abrupt stop: the consumer's task is aborted wherever it is, mid-batch included.
    /// Nothing is committed for unfinished work; the rdkafka client is dropped.
    pub async fn abort_consumer(&mut self) {
        if let Some(c) = self.consumer.take() {
            c.task.abort();
            let _ = c.task.await;
        }
    }

    pub fn consumer_probe_address(&self) -> Option<SocketAddr> {
        self.consumer.as_ref().map(|c| c.probe_address)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// GET `path` on the api and parse the JSON body, whatever the status.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path} failed: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: body is not JSON: {e}"))
    }

    /// Posts a registration; the registration id of a 202 is remembered for
    /// `get_status`, as a frontend keeps the `Location` it got.
    pub async fn post_registration(&self, body: &Value) -> reqwest::Response {
        self.post_registration_to("/api/v1/users", &[], body).await
    }

    /// The same at `path` (an alias of the route), with extra request headers.
    pub async fn post_registration_to(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST failed: {e}"));
        self.remember_location(&response);
        response
    }

    /// Remembers the polling URL of a 202 (its `Location`), by email.
    pub fn remember_location(&self, response: &reqwest::Response) {
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok());
        if let (202, Some(location)) = (response.status().as_u16(), location) {
            if let Some((path, _)) = location.split_once('?') {
                let email =
                    percent_encoding::percent_decode_str(path.trim_start_matches("/api/v1/users/"))
                        .decode_utf8_lossy()
                        .into_owned();
                self.locations
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(email, location.to_owned());
            }
        }
    }

    /// Remembers a registration this test submitted some other way (straight to Kafka).
    pub fn remember_registration(&self, email: &str, registration_id: Uuid) {
        let email = email.trim().to_lowercase();
        let location = format!("/api/v1/users/{email}?registrationId={registration_id}");
        self.locations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(email, location);
    }

    /// The status of the email's last registration posted through this app, by the
    /// `Location` of its 202 (plain `/api/users/{email}` for one it did not see).
    pub async fn get_status(&self, email: &str) -> reqwest::Response {
        let path = self
            .locations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&email.trim().to_lowercase())
            .cloned()
            .unwrap_or_else(|| format!("/api/v1/users/{email}"));
        self.http
            .get(self.url(&path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET failed: {e}"))
    }

    /// Polls until the registration reaches `status` (or fails the test after `within`).
    pub async fn wait_for_status(&self, email: &str, status: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        let mut last = Value::Null;
        while tokio::time::Instant::now() < deadline {
            let response = self.get_status(email).await;
            if response.status().is_success() {
                last = response.json().await.unwrap_or(Value::Null);
                if last["data"]["status"] == status {
                    return last;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("registration of {email} did not reach {status} within {within:?}; last: {last}");
    }

    pub async fn pg(&self) -> tokio_postgres::Client {
        connect(&self.database_url).await
    }

    pub async fn redis_conn(&self) -> deadpool_redis::Connection {
        self.redis
            .get()
            .await
            .unwrap_or_else(|e| panic!("redis: {e}"))
    }

    /// The api's Redis key names under this test's prefix.
    pub fn keys(&self) -> RedisKeys {
        RedisKeys::new(self.redis_prefix.clone())
    }

    /// Every Redis key of this test (with the prefix, as `keys()` names them).
    pub async fn redis_keys(&self) -> Vec<String> {
        let mut conn = self.redis_conn().await;
        deadpool_redis::redis::cmd("KEYS")
            .arg(format!("{}*", self.redis_prefix))
            .query_async(&mut conn)
            .await
            .unwrap_or_default()
    }

    /// The value of a key named by `keys()`.
    pub async fn redis_get(&self, key: &str) -> Option<String> {
        let mut conn = self.redis_conn().await;
        deadpool_redis::redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap_or(None)
    }

    /// Deletes a key named by `keys()`.
    pub async fn redis_del(&self, key: &str) {
        let mut conn = self.redis_conn().await;
        let _: i64 = deadpool_redis::redis::cmd("DEL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("DEL {key}: {e}"));
    }

    /// The TTL of a key named by `keys()`.
    pub async fn redis_ttl(&self, key: &str) -> i64 {
        let mut conn = self.redis_conn().await;
        deadpool_redis::redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap_or(-3)
    }

    /// Sends a request with an optional Bearer token and JSON body; returns the status,
    /// the headers and the JSON body (`Null` when there is none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self.http.request(method.clone(), self.url(path));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(b);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, headers, body)
    }

    /// The api's access-token keys, to sign tokens it will accept (and, altered, refuse).
    pub fn jwt_keys(&self) -> registrar_api::auth::keys::JwtKeys {
        registrar_api::auth::keys::JwtKeys::new(
            &secrecy::SecretString::from(self.jwt_signing_key.clone()),
            &[],
            "registrar",
            "registrar",
            Duration::from_secs(900),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    pub async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        let (status, _, body) = self
            .call(
                reqwest::Method::POST,
                "/api/auth/login",
                None,
                Some(&json!({ "email": email, "password": password })),
            )
            .await;
        (status, body)
    }

    /// Registers through the pipeline, waits until the user is persisted and logs in.
    pub async fn register_and_login(&self) -> Account {
        let (email, password, body) = registration_body();
        let response = self.post_registration(&body).await;
        assert_eq!(response.status().as_u16(), 202);
        self.wait_for_status(&email, "completed", Duration::from_secs(30))
            .await;
        self.log_in_again(Account {
            id: Uuid::nil(),
            email,
            password,
            access: String::new(),
            refresh: String::new(),
        })
        .await
    }

    /// A new login (a new session) for an existing account.
    pub async fn log_in_again(&self, account: Account) -> Account {
        let (status, tokens) = self.login(&account.email, &account.password).await;
        assert_eq!(status, 200, "login failed: {tokens}");
        let access = tokens["accessToken"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (_, _, me) = self
            .call(reqwest::Method::GET, "/api/auth/me", Some(&access), None)
            .await;
        Account {
            id: me["data"]["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("/api/auth/me answered {me}")),
            access,
            refresh: tokens["refreshToken"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            ..account
        }
    }

    /// An account with `role` written straight to the database (`api create-admin`'s
    /// use case, then the role set), for tests that run without a consumer.
    pub async fn account_with_role_in_database(&self, role: &str) -> Account {
        let email = format!("{role}.{}@example.com", Uuid::new_v4().simple());
        let password = format!("password of {}", Uuid::new_v4().simple());
        let pool = common::store::postgres::pool(&self.consumer_config().postgres)
            .unwrap_or_else(|e| panic!("{e}"));
        let hasher = common::domain::password::PasswordHasherService::new(
            common::domain::password::Argon2Config {
                memory_kib: 256,
                iterations: 1,
                parallelism: 1,
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let secret = password.clone();
        registrar_api::admin::create_admin(
            &pool,
            &hasher,
            &common::domain::password_policy::PasswordPolicy::default(),
            &email,
            move || Ok(secrecy::SecretString::from(secret)),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        self.pg()
            .await
            .execute(
                "UPDATE users SET role = $2 WHERE email = $1",
                &[&email, &role],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.log_in_again(Account {
            id: Uuid::nil(),
            email,
            password,
            access: String::new(),
            refresh: String::new(),
        })
        .await
    }

    /// A registered account with `role` (set in the database), logged in afresh so its
    /// token carries the role.
    pub async fn account_with_role(&self, role: &str) -> Account {
        let account = self.register_and_login().await;
        self.pg()
            .await
            .execute(
                "UPDATE users SET role = $2 WHERE id = $1",
                &[&account.id, &role],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.log_in_again(account).await
    }

    /// The api's Prometheus exposition.
    pub async fn api_metrics(&self) -> String {
        self.text_of(self.url("/metrics")).await
    }

    /// The consumer's Prometheus exposition (its probe server).
    pub async fn consumer_metrics(&self) -> String {
        let probe = self
            .consumer_probe_address()
            .unwrap_or_else(|| panic!("no consumer running"));
        self.text_of(format!("http://{probe}/metrics")).await
    }

    async fn text_of(&self, url: String) -> String {
        self.http
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The `registrar-signature` header the api would put on a record with this key and
    /// payload, for the purpose given (a sign-up's key or the import key).
    pub fn record_signature(
        &self,
        purpose: common::events::signature::Purpose,
        key: &str,
        payload: &[u8],
    ) -> String {
        use common::events::signature::{Purpose, RecordSigner};
        let spec = match purpose {
            Purpose::Registration => &self.record_signing_key,
            Purpose::Import => &self.import_signing_key,
        };
        RecordSigner::parse(purpose, spec)
            .unwrap_or_else(|e| panic!("{e}"))
            .sign(key.as_bytes(), payload)
    }

    /// Produces a record onto this test's registration topic signed as the api signs a
    /// sign-up (`Purpose::Registration`) or an import line (`Purpose::Import`).
    pub async fn produce_signed(
        &self,
        purpose: common::events::signature::Purpose,
        key: &str,
        payload: &[u8],
    ) {
        let signature = self.record_signature(purpose, key, payload);
        kafka::produce_with_headers(
            &self.topic,
            key,
            payload,
            &[(common::events::signature::SIGNATURE_HEADER, &signature)],
        )
        .await;
    }

    pub async fn user_count(&self) -> i64 {
        self.pg()
            .await
            .query_one("SELECT count(*) FROM users", &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .get(0)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.api_shutdown.cancel();
        if let Some(t) = self.api_task.take() {
            t.abort();
        }
        if let Some(c) = self.consumer.take() {
            c.token.cancel();
            c.task.abort();
        }
        let database = self.database.clone();
        let topic = self.topic.clone();
        let events_topic = self.events_topic.clone();
        let client_events_topic = self.client_events_topic.clone();
        let prefix = self.redis_prefix.clone();
        // Cleanup needs async clients; run it on its own runtime so it also works while
        // the test's runtime is shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async move {
                    kafka::delete_topics(&topic, &[&events_topic, &client_events_topic]).await;
                    drop_database(&database).await;
                    clear_redis_prefix(&prefix).await;
                });
            }
        })
        .join();
    }
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to PostgreSQL: {e}"));
    tokio::spawn(connection);
    client
}

fn database_url(name: &str) -> String {
    let admin = pg_admin_url();
    match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("TEST_DATABASE_ADMIN_URL has no database part"),
    }
}

async fn create_database(name: &str) -> String {
    let admin = connect(&pg_admin_url()).await;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE failed: {e}"));
    let url = database_url(name);
    let pool = common::store::postgres::pool(&common::config::PostgresConfig {
        url: secrecy::SecretString::from(url.clone()),
        pool_size: 2,
        timeout_ms: 5000,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    common::store::postgres::migrate(&pool)
        .await
        .unwrap_or_else(|e| panic!("migrations failed: {e:#}"));
    url
}

async fn drop_database(name: &str) {
    let admin = connect(&pg_admin_url()).await;
    if let Err(e) = admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await
    {
        eprintln!("could not drop test database {name}: {e}");
    }
}

async fn clear_redis_prefix(prefix: &str) {
    let Ok(client) = deadpool_redis::redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = deadpool_redis::redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<i64, _> = deadpool_redis::redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await;
    }
}

/// A logged-in user of a test.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

/// A valid registration body with a unique email and password.
pub fn registration_body() -> (String, String, Value) {
    let id = Uuid::new_v4().simple().to_string();
    let email = format!("user.{}@example.com", &id[..16]);
    let password = format!("pw-{}-secret", &id[16..]);
    let body = json!({
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": email,
        "password": password,
        "gender": "female",
        "sex": "female",
        "occupation": "Mathematician",
    });
    (email, password, body)
}

/// One RSA signing key for every api a test process starts (generating one takes a
/// noticeable fraction of a second).
pub fn oidc_signing_key() -> &'static str {
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let (private, _) =
            registrar_api::auth::oidc_keys::generate("test-rsa").unwrap_or_else(|e| panic!("{e}"));
        secrecy::ExposeSecret::expose_secret(&private).to_owned()
    })
}

/// Polls `check` every 200 ms until it holds; panics naming `what` after 30 s.
pub async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
