//! The `api` binary: `api [serve]`, `api migrate`, `api keygen`, `api create-admin`,
//! `api openapi`.

use clap::{Parser, Subcommand};
use common::config::{ConfigError, LogConfig, PostgresConfig};
use registrar_api::config::ApiConfig;
use registrar_api::startup::{Application, StartError};

/// mimalloc: every request allocates and frees on several threads (tokio workers,
/// librdkafka's); glibc's arenas spent about 15 % of the api's CPU on it in the intake
/// profile (docs/src/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "api", version, about = "Registrar HTTP api")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP api (the default).
    Serve(Box<ApiConfig>),
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        postgres: PostgresConfig,
        #[command(flatten)]
        log: LogConfig,
    },
    /// Exit 0 when a probe URL answers 200: the container HEALTHCHECK (no curl in the
    /// image).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8000/health/live")]
        url: String,
    },
    /// Create an administrator, or promote the user with this email. The password is
    /// read from --password-file or prompted for; never passed as an argument.
    CreateAdmin {
        #[arg(long)]
        email: String,
        /// A file whose first line is the password (for scripts and CI).
        #[arg(long)]
        password_file: Option<std::path::PathBuf>,
        #[command(flatten)]
        postgres: PostgresConfig,
        #[command(flatten)]
        argon2: common::domain::password::Argon2Config,
        /// Shortest password accepted (at least 8).
        #[arg(long, env = "PASSWORD_MIN_LENGTH", default_value_t = common::domain::password_policy::DEFAULT_MIN_CHARS)]
        password_min_length: usize,
        #[command(flatten)]
        log: LogConfig,
    },
    /// Import users from an NDJSON file through the pipeline (as `POST
    /// /api/v1/admin/imports` does), with a progress bar. Uses the api's settings.
    Import {
        /// One registration per line (see docs/src/api.md "Bulk import").
        file: std::path::PathBuf,
        /// The import's id; rerunning with the same id persists each line once.
        #[arg(long = "import-id")]
        import_id: Option<uuid::Uuid>,
        #[command(flatten)]
        config: Box<ApiConfig>,
    },
    /// Register an OpenID Connect client (as `POST /api/v1/admin/oidc/clients` does) and
    /// print its id and, this once, its secret. Uses the api's settings.
    OidcClient {
        #[command(subcommand)]
        action: OidcClientAction,
    },
    /// Register a webhook endpoint (as `POST /api/v1/admin/webhooks` does) and print its
    /// id and, this once, its secret; list endpoints; rotate a secret. Uses the api's
    /// settings.
    Webhook {
        #[command(subcommand)]
        action: WebhookAction,
    },
    /// Issue a SCIM token for an identity provider (as `POST /api/v1/admin/scim/tokens`
    /// does) and print it, this once; list tokens; revoke one. Uses the api's settings.
    ScimToken {
        #[command(subcommand)]
        action: ScimTokenAction,
    },
    /// Print the OpenAPI document (what `/api/v1/openapi.json` serves) and exit; the
    /// TypeScript client's types are generated from it.
    Openapi,
    /// Print the api's environment variables (default, meaning) as a Markdown table and
    /// exit.
    ConfigReference,
    /// Print a new sealing key pair and a JWT signing key as `.env` lines.
    Keygen {
        /// Key id to print; defaults to one derived from today's date.
        #[arg(long)]
        key_id: Option<String>,
    },
}

#[derive(Subcommand)]
enum WebhookAction {
    /// Register an endpoint.
    Create {
        /// Where deliveries are posted.
        #[arg(long)]
        url: String,
        /// An event type to send (repeat); none: every type.
        #[arg(long = "event-type")]
        event_types: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        config: Box<ApiConfig>,
    },
    /// List the endpoints.
    List {
        #[command(flatten)]
        config: Box<ApiConfig>,
    },
    /// Give an endpoint a new secret; the old one keeps signing for the overlap.
    RotateSecret {
        id: uuid::Uuid,
        /// Seconds the old secret still signs (default one day).
        #[arg(long = "overlap-secs")]
        overlap_secs: Option<u64>,
        #[command(flatten)]
        config: Box<ApiConfig>,
    },
}

#[derive(Subcommand)]
enum ScimTokenAction {
    /// Issue a token.
    Create {
        /// What it is for (the identity provider).
        #[arg(long)]
        name: String,
        /// Days until it stops working; none: until revoked.
        #[arg(long = "expires-in-days")]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        config: Box<ApiConfig>,
    },
    /// List the tokens (never the tokens themselves).
    List {
        #[command(flatten)]
        config: Box<ApiConfig>,
    },
    /// Revoke a token.
    Revoke {
        id: uuid::Uuid,
        #[command(flatten)]
        config: Box<ApiConfig>,
    },
}

#[derive(Subcommand)]
enum OidcClientAction {
    /// Register a client.
    Create {
        /// Shown on the consent screen.
        #[arg(long)]
        name: String,
        /// An exact redirect URI (repeat for more).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// Where logout may return to (repeat for more).
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (no secret, PKCE required): single-page and native apps.
        #[arg(long)]
        public: bool,
        /// Skip the consent screen (your own apps).
        #[arg(long)]
        first_party: bool,
        /// Allowed scopes (repeat); default openid, profile, email.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Allowed grants (repeat); default authorization_code.
        #[arg(long = "grant")]
        grants: Vec<String>,
        /// RS256 (default) or EdDSA.
        #[arg(long)]
        id_token_alg: Option<String>,
        #[command(flatten)]
        config: Box<ApiConfig>,
    },
    /// List the registered clients.
    List {
        #[command(flatten)]
        config: Box<ApiConfig>,
    },
}

fn main() {
    common::config::load_dotenv();
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.len() == 1 {
        args.push("serve".into());
    }
    let cli = Cli::parse_from(args);
    common::config::run_main(run(cli))
}

async fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Keygen { key_id } => {
            keygen(key_id);
            0
        }
        Command::ConfigReference => {
            print!(
                "{}",
                common::config_reference::markdown_for("api", &registrar_api::config::settings())
            );
            0
        }
        Command::Openapi => match registrar_api::openapi::document().to_pretty_json() {
            Ok(json) => {
                println!("{json}");
                0
            }
            Err(e) => {
                eprintln!("cannot serialise the OpenAPI document: {e}");
                1
            }
        },
        Command::Migrate { postgres, log } => {
            let _telemetry = init_logs(&log);
            let pool = common::store::postgres::pool(&postgres).unwrap_or_else(|e| e.exit());
            match common::store::postgres::migrate(&pool).await {
                Ok(applied) => {
                    tracing::info!(
                        event = "migrations_applied",
                        count = applied.len(),
                        ?applied
                    );
                    0
                }
                Err(e) => {
                    tracing::error!(event = "migrations_failed", error = format!("{e:#}"));
                    1
                }
            }
        }
        Command::Serve(config) => serve(*config).await,
        Command::Import {
            file,
            import_id,
            config,
        } => import(&file, import_id, *config).await,
        Command::CreateAdmin {
            email,
            password_file,
            postgres,
            argon2,
            password_min_length,
            log,
        } => {
            let _telemetry = init_logs(&log);
            let pool = common::store::postgres::pool(&postgres).unwrap_or_else(|e| e.exit());
            let hasher = common::domain::password::PasswordHasherService::new(argon2)
                .unwrap_or_else(|e| e.exit());
            let policy = common::domain::password_policy::PasswordPolicy::new(password_min_length);
            let outcome =
                registrar_api::admin::create_admin(&pool, &hasher, &policy, &email, || {
                    registrar_api::admin::read_password(password_file.as_deref())
                })
                .await;
            match outcome {
                Ok(outcome) => {
                    use registrar_api::admin::AdminOutcome;
                    match outcome {
                        AdminOutcome::Created(id) => println!("created admin {id}"),
                        AdminOutcome::Promoted(id) => println!("promoted user {id} to admin"),
                        AdminOutcome::AlreadyAdmin(id) => println!("user {id} is already an admin"),
                    }
                    0
                }
                Err(registrar_api::admin::AdminError::Invalid(m)) => {
                    eprintln!("create-admin: {m}");
                    2
                }
                Err(e) => {
                    eprintln!("create-admin: {e}");
                    1
                }
            }
        }
        Command::Healthcheck { url } => healthcheck(&url).await,
        Command::OidcClient { action } => oidc_client(action).await,
        Command::Webhook { action } => webhook(action).await,
        Command::ScimToken { action } => scim_token(action).await,
    }
}

fn init_logs(log: &LogConfig) -> common::ops::telemetry::Telemetry {
    match common::ops::telemetry::init(log, "registrar-api") {
        Ok(telemetry) => telemetry,
        Err(e) => e.exit(),
    }
}

async fn import(path: &std::path::Path, id: Option<uuid::Uuid>, config: ApiConfig) -> i32 {
    let _telemetry = init_logs(&config.log);
    let file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cannot open {}: {e}", path.display());
            return 2;
        }
    };
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(StartError::Config(e)) => e.exit(),
        Err(e) => {
            eprintln!("cannot start: {e}");
            return 1;
        }
    };
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {msg} ({elapsed}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let chunks = futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let progress = |lines: i64, bytes: u64| {
        bar.set_position(bytes);
        bar.set_message(format!("{lines} lines"));
    };
    let started = std::time::Instant::now();
    let result = registrar_api::service::import::run(
        &app.state,
        None,
        registrar_api::service::import::Source::Cli,
        id,
        Box::pin(chunks),
        &progress,
    )
    .await;
    bar.finish();
    match result {
        Ok(summary) => {
            println!(
                "import {}: {} lines, {} accepted, {} refused in {:.1} s",
                summary.id,
                summary.lines,
                summary.accepted,
                summary.rejected,
                started.elapsed().as_secs_f64()
            );
            for refused in summary.rejected_lines.iter().take(20) {
                let why: Vec<String> = refused
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect();
                println!("  line {}: {}", refused.line, why.join("; "));
            }
            println!(
                "the consumer persists the accepted lines; follow GET /api/v1/admin/imports/{}",
                summary.id
            );
            0
        }
        Err(e) => {
            eprintln!("import stopped: {e}; rerun with --import-id to finish it");
            1
        }
    }
}

async fn serve(config: ApiConfig) -> i32 {
    let _telemetry = init_logs(&config.log);
    let addr = config.service.address(config.port);
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(StartError::Config(e)) => e.exit(),
        Err(e) => {
            tracing::error!(event = "startup_failed", error = %e);
            return 1;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(event = "bind_failed", %addr, error = %e);
            return 1;
        }
    };
    tracing::info!(event = "api_listening", %addr);
    match app.serve(listener, common::ops::shutdown::signal()).await {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(event = "api_failed", error = format!("{e:#}"));
            1
        }
    }
}

/// A minimal HTTP/1.0 GET over TCP, enough for a local probe.
async fn healthcheck(url: &str) -> i32 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(rest) = url.strip_prefix("http://") else {
        eprintln!("healthcheck: only http:// URLs are supported");
        return 2;
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").as_bytes())
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        std::io::Result::Ok(head.starts_with(b"HTTP/1.0 200") || head.starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(std::time::Duration::from_secs(3), attempt).await {
        Ok(Ok(true)) => 0,
        Ok(Ok(false)) => 1,
        Ok(Err(e)) => {
            eprintln!("healthcheck: {e}");
            1
        }
        Err(_) => {
            eprintln!("healthcheck: no answer within 3 s");
            1
        }
    }
}

fn keygen(key_id: Option<String>) {
    let key_id = key_id.unwrap_or_else(|| {
        format!(
            "k{}-{}",
            chrono::Utc::now().format("%Y%m%d"),
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        )
    });
    if let Err(e) = common::events::seal::SealingKey::from_base64(
        &key_id,
        &common::events::seal::generate_key_pair().1,
    ) {
        ConfigError::new("--key-id", e).exit();
    }
    let (private, public) = common::events::seal::generate_key_pair();
    println!(
        "# Registrar password-sealing key pair (HPKE X25519), generated {}",
        chrono::Utc::now().to_rfc3339()
    );
    println!("# api:");
    println!("SEAL_KEY_ID={key_id}");
    println!("SEAL_PUBLIC_KEY={public}");
    println!("# consumer (append older pairs after a comma while rotating):");
    println!("SEAL_PRIVATE_KEYS={key_id}:{}", private.as_str());
    use common::events::signature::{generate, Purpose};
    let (registration, registration_public) =
        generate(Purpose::Registration, &format!("rec-{key_id}"));
    let (import, import_public) = generate(Purpose::Import, &format!("imp-{key_id}"));
    println!("# api: record-signing keys (HMAC-SHA256), one for sign-ups, another for imports;");
    println!("RECORD_SIGNING_KEY={}", registration.as_str());
    println!("IMPORT_SIGNING_KEY={}", import.as_str());
    println!("# consumer: the keys it accepts, each with its purpose (append older ones while");
    println!("# rotating). Secrets, like the signing keys.");
    println!(
        "RECORD_VERIFYING_KEYS={},{}",
        registration_public.as_str(),
        import_public.as_str()
    );
    let (signing, verification) = registrar_api::auth::keys::generate(&format!("jwt-{key_id}"));
    println!("# api: access-token signing key (Ed25519). When rotating, move the old key's");
    println!("# public part into JWT_VERIFICATION_KEYS: {verification}");
    println!(
        "JWT_SIGNING_KEY={}",
        secrecy::ExposeSecret::expose_secret(&signing)
    );
    println!("# api: encryption key of TOTP secrets at rest. When rotating, move the old");
    println!("# value into MFA_DECRYPTION_KEYS (comma-separated).");
    println!(
        "MFA_ENCRYPTION_KEY={}",
        secrecy::ExposeSecret::expose_secret(&registrar_api::auth::mfa::MfaKeys::generate(
            &format!("mfa-{key_id}")
        ))
    );
    match registrar_api::auth::oidc_keys::generate(&format!("rsa-{key_id}")) {
        Ok((private, public)) => {
            println!(
                "# api: OpenID Connect ID-token key (RSA-2048, RS256); used when OIDC_ISSUER is"
            );
            println!("# set. When rotating, move the old key's public part into");
            println!("# OIDC_VERIFICATION_KEYS: {public}");
            println!(
                "OIDC_SIGNING_KEY={}",
                secrecy::ExposeSecret::expose_secret(&private)
            );
        }
        Err(e) => eprintln!("keygen: no RSA key: {e}"),
    }
}

async fn oidc_client(action: OidcClientAction) -> i32 {
    use registrar_api::service::oidc::clients::{self, ClientSpec};
    let (config, spec) = match action {
        OidcClientAction::Create {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            first_party,
            scopes,
            grants,
            id_token_alg,
            config,
        } => (
            config,
            Some(ClientSpec {
                name: Some(name),
                confidential: Some(!public),
                redirect_uris: Some(redirect_uris),
                post_logout_redirect_uris: Some(post_logout_redirect_uris),
                scopes: (!scopes.is_empty()).then_some(scopes),
                grant_types: (!grants.is_empty()).then_some(grants),
                first_party: Some(first_party),
                id_token_alg,
                access_token_ttl_secs: None,
                refresh_token_ttl_secs: None,
            }),
        ),
        OidcClientAction::List { config } => (config, None),
    };
    let _telemetry = init_logs(&config.log);
    let app = match admin_application(*config).await {
        Ok(app) => app,
        Err(code) => return code,
    };
    let context = registrar_api::caller::RequestContext::default();
    let Some(spec) = spec else {
        return match clients::list(&app.state, None).await {
            Ok(all) => {
                for c in all {
                    println!(
                        "{}\t{}\t{}\t{}",
                        c.client_id,
                        if c.confidential {
                            "confidential"
                        } else {
                            "public"
                        },
                        c.name,
                        c.redirect_uris.join(" ")
                    );
                }
                0
            }
            Err(e) => {
                eprintln!("oidc-client list: {e}");
                1
            }
        };
    };
    match clients::create(&app.state, None, &context, spec).await {
        Ok(created) => {
            println!("OIDC_CLIENT_ID={}", created.client.client_id);
            if let Some(secret) = created.secret {
                use secrecy::ExposeSecret;
                println!("OIDC_CLIENT_SECRET={}", secret.expose_secret());
                eprintln!("the secret is shown this once; it is stored only as a digest");
            }
            0
        }
        Err(registrar_api::service::ServiceError::Invalid(errors)) => {
            for e in errors {
                eprintln!("oidc-client create: {}: {}", e.field, e.message);
            }
            2
        }
        Err(e) => {
            eprintln!("oidc-client create: {e}");
            1
        }
    }
}

/// The application an admin command works with (the api's settings, no listener);
/// `Err` is the exit code after saying why it could not start.
async fn admin_application(config: ApiConfig) -> Result<Application, i32> {
    match Application::build(config).await {
        Ok(app) => Ok(app),
        Err(StartError::Config(e)) => e.exit(),
        Err(e) => {
            eprintln!("cannot start: {e}");
            Err(1)
        }
    }
}

/// An admin command's exit code: 0 done, 2 a field broke a rule, 1 anything else.
fn exit_code(command: &str, result: Result<(), registrar_api::service::ServiceError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(registrar_api::service::ServiceError::Invalid(errors)) => {
            for e in errors {
                eprintln!("{command}: {}: {}", e.field, e.message);
            }
            2
        }
        Err(e) => {
            eprintln!("{command}: {e}");
            1
        }
    }
}

async fn webhook(action: WebhookAction) -> i32 {
    use registrar_api::service::webhooks::{self, EndpointSpec};
    use secrecy::ExposeSecret;
    let config = match &action {
        WebhookAction::Create { config, .. }
        | WebhookAction::List { config }
        | WebhookAction::RotateSecret { config, .. } => config.clone(),
    };
    let _telemetry = init_logs(&config.log);
    let app = match admin_application(*config).await {
        Ok(app) => app,
        Err(code) => return code,
    };
    let context = registrar_api::caller::RequestContext::default();
    let result = match action {
        WebhookAction::List { .. } => webhooks::list(&app.state, None).await.map(|all| {
            for e in all {
                println!(
                    "{}\t{}\t{}\t{}",
                    e.id,
                    if e.enabled { "enabled" } else { "disabled" },
                    e.url,
                    e.event_types.join(",")
                );
            }
        }),
        WebhookAction::Create {
            url,
            event_types,
            description,
            ..
        } => {
            let spec = EndpointSpec {
                url: Some(url),
                description: Some(description),
                event_types: Some(event_types),
                enabled: None,
            };
            webhooks::create(&app.state, None, &context, spec)
                .await
                .map(|created| {
                    println!("WEBHOOK_ID={}", created.endpoint.id);
                    if let Some(secret) = created.secret {
                        println!("WEBHOOK_SECRET={}", secret.expose_secret());
                    }
                    eprintln!("the secret is shown this once");
                })
        }
        WebhookAction::RotateSecret {
            id, overlap_secs, ..
        } => webhooks::update(
            &app.state,
            None,
            &context,
            id,
            EndpointSpec::default(),
            Some(overlap_secs),
        )
        .await
        .map(|rotated| {
            if let Some(secret) = rotated.secret {
                println!("WEBHOOK_SECRET={}", secret.expose_secret());
            }
        }),
    };
    exit_code("webhook", result)
}

async fn scim_token(action: ScimTokenAction) -> i32 {
    use registrar_api::service::scim;
    use secrecy::ExposeSecret;
    let config = match &action {
        ScimTokenAction::Create { config, .. }
        | ScimTokenAction::List { config }
        | ScimTokenAction::Revoke { config, .. } => config.clone(),
    };
    let _telemetry = init_logs(&config.log);
    let app = match admin_application(*config).await {
        Ok(app) => app,
        Err(code) => return code,
    };
    let context = registrar_api::caller::RequestContext::default();
    let result = match action {
        ScimTokenAction::List { .. } => scim::list_tokens(&app.state, None).await.map(|all| {
            for t in all {
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(_), _) => "revoked",
                    (None, Some(e)) if e <= chrono::Utc::now() => "expired",
                    _ => "live",
                };
                println!("{}\t{state}\t{}", t.id, t.name);
            }
        }),
        ScimTokenAction::Create {
            name,
            expires_in_days,
            ..
        } => scim::create_token(&app.state, None, &context, &name, expires_in_days)
            .await
            .map(|(token, secret)| {
                println!("SCIM_TOKEN_ID={}", token.id);
                println!("SCIM_TOKEN={}", secret.expose_secret());
                eprintln!("the token is shown this once");
            }),
        ScimTokenAction::Revoke { id, .. } => {
            scim::revoke_token(&app.state, None, &context, id).await
        }
    };
    exit_code("scim-token", result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
