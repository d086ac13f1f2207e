//! Building the application from its configuration and serving it until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::serve::ListenerExt;
use axum::Router;
use common::config::ConfigError;
use common::store::redis::Redis;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::hashing::HashingPool;
use crate::auth::Accounts;
use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::listener::LimitedListener;
use crate::metrics::ApiMetrics;
use crate::protection::{self, ClientIp};
use crate::publisher::{KafkaPublisher, RegistrationPublisher};
use crate::respond;
use crate::routes::{
    auth, compat, data, health, hosted, imports, oidc, oidc_clients, operations, passkeys,
    passwordless, registration, security, social, users, webhooks,
};
use crate::state::{AppState, Dependencies, Stores};
use crate::versioning;

/// How often the consumer group's lag is measured.
const LAG_REFRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Answers larger than this are compressed when the client accepts gzip or br.
pub const COMPRESS_ABOVE_BYTES: u16 = 1024;

/// Largest accepted request body of the JSON routes (the data routes have their own).
pub const BODY_LIMIT_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("migrations failed: {0:#}")]
    Migrations(anyhow::Error),
    #[error("start-up failed: {0:#}")]
    Startup(anyhow::Error),
}

pub struct Application {
    pub state: AppState,
    pub config: ApiConfig,
    lag_monitor: Arc<common::ops::metrics::LagMonitor>,
    client_ip: ClientIp,
}

impl Application {
    /// Wires pools, producer and state. Connections are lazy, so this succeeds while a
    /// dependency is down; only migrations (when enabled) need PostgreSQL now.
    pub async fn build(config: ApiConfig) -> Result<Self, StartError> {
        Self::build_wrapping_publisher(config, |publisher| publisher).await
    }

    /// [`Self::build`], with the Kafka publisher passed through `wrap`: the seam the
    /// integration tests use to lose a real record's acknowledgement.
    pub async fn build_wrapping_publisher(
        config: ApiConfig,
        wrap: impl FnOnce(Arc<dyn RegistrationPublisher>) -> Arc<dyn RegistrationPublisher>,
    ) -> Result<Self, StartError> {
        // Every configuration error first, before any dependency is touched: a bad key
        // is named (exit 2) even when the database is not there yet.
        let sealer = config.sealer()?;
        let jwt = config.jwt_keys()?;
        let oidc = config.oidc.provider(&jwt)?;
        let client_ip = ClientIp::new(config.trusted_proxies()?);
        let metrics = ApiMetrics::new();
        let lag_monitor = common::ops::metrics::LagMonitor::new(
            &config.kafka,
            &config.group_id,
            &metrics.registry,
        )?;
        let pg = common::store::postgres::pool(&config.postgres)?;
        let redis = Redis::from_config(&config.redis)?;
        let publisher: Arc<dyn RegistrationPublisher> = wrap(KafkaPublisher::new(
            &config.kafka,
            config.record_signers()?,
            config.produce_timeout(),
            config.producer_queue_max_messages,
            config.producer_linger_ms,
        )?);
        if config.run_migrations {
            let applied = common::store::postgres::migrate(&pg)
                .await
                .map_err(StartError::Migrations)?;
            tracing::info!(
                event = "migrations_applied",
                count = applied.len(),
                ?applied
            );
        }
        let hasher = common::domain::password::PasswordHasherService::new(config.argon2)?;
        let dummy_hash = {
            let hasher = hasher.clone();
            tokio::task::spawn_blocking(move || {
                hasher.hash(&secrecy::SecretString::from(
                    uuid::Uuid::new_v4().to_string(),
                ))
            })
            .await
            .map_err(|e| StartError::Startup(e.into()))?
            .map_err(|e| StartError::Startup(e.into()))?
        };
        let hashing = HashingPool::new(
            hasher,
            config.password_hash_workers(),
            config.password_hash_queue,
            std::time::Duration::from_millis(config.password_hash_max_wait_ms),
            metrics.hash_queue_depth.clone(),
            metrics.hash_wait.clone(),
        );
        let accounts = Accounts {
            jwt,
            hashing,
            refresh_ttl: std::time::Duration::from_secs(config.refresh_token_ttl_secs),
            data_quota: (config.data_max_items.max(1), config.data_max_bytes.max(1)),
            password_policy: common::domain::password_policy::PasswordPolicy::new(
                config.password_min_length,
            ),
            required_profile_fields: config.required_profile_fields,
            session_max_lifetime: std::time::Duration::from_secs(config.session_max_lifetime_secs),
            lockout_max_attempts: config.login_max_attempts.max(1),
            lockout_window: std::time::Duration::from_secs(config.login_lockout_secs.max(1)),
            client_ip: client_ip.clone(),
            dummy_hash,
            require_verified_email: config.require_verified_email,
            mail_limits: crate::auth::MailLimits {
                per_email: config.mail_requests_per_email.max(1),
                per_ip: config.mail_requests_per_ip.max(1),
                window: std::time::Duration::from_secs(config.mail_request_window_secs.max(1)),
            },
            mfa: crate::auth::MfaSettings {
                keys: config.mfa_keys()?,
                issuer: config.mfa_issuer.clone(),
                challenge_ttl: std::time::Duration::from_secs(
                    config.mfa_challenge_ttl_secs.max(30),
                ),
            },
            passkeys: config.passkeys.relying_party(
                &config.oidc.issuer,
                &config.cors_origins(),
                config.port,
            )?,
            return_origins: config
                .cors_origins()
                .into_iter()
                .filter(|o| o != "*")
                .collect(),
            oidc,
        };
        let operations = crate::state::Operations {
            kafka: config.kafka.clone(),
            verifier: Arc::new(config.record_signers()?.verifier()),
            consumer_metrics: config
                .consumer_metrics_urls
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(2))
                .build()
                .map_err(|e| StartError::Startup(e.into()))?,
            console_dir: config.console_dir.clone(),
        };
        let state = AppState::new(Dependencies {
            operations,
            stores: Stores::new(redis),
            pg,
            pg_timeout: config.postgres.timeout(),
            publisher,
            sealer,
            poll_cache_ttl: config.poll_cache_ttl(),
            poll_without_registration_id: config.poll_without_registration_id,
            webhook_guard: config.webhook_allow_networks.clone(),
            scim: crate::state::ScimSettings {
                rate_per_minute: config.scim_rate_per_minute,
                create_wait: std::time::Duration::from_millis(config.scim_create_wait_ms),
                max_results: config.scim_max_results.clamp(1, 1000),
            },
            imports: crate::state::ImportLimits {
                chunk_lines: config.import_chunk_lines as usize,
                max_bytes: config.import_max_bytes,
                max_lines: config.import_max_lines,
                per_admin: config.imports_per_admin.max(1),
                rate_per_sec: config.import_rate_per_sec,
            },
            health_timeout: config.service.health_timeout(),
            metrics,
            accounts,
        });
        Ok(Self {
            state,
            config,
            lag_monitor,
            client_ip,
        })
    }

    /// Serves on `listener` until `shutdown` resolves, then stops accepting, lets
    /// in-flight requests finish (bounded by the grace period) and flushes the producer.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        let grace = self.config.service.shutdown_grace();
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let draining_state = state.clone();
        let signal = async move {
            shutdown.await;
            draining_state.start_draining();
            let _ = drained_tx.send(());
        };
        let lag = Arc::clone(&self.lag_monitor).spawn(LAG_REFRESH);
        let purge = tokio::spawn(purge_expired_sessions(state.pg.clone()));
        let router = router(state.clone(), &self.config, self.client_ip.clone());
        let listener = LimitedListener::new(
            listener,
            self.config.max_connections,
            state.metrics.open_connections.clone(),
            state.metrics.refused_connections.clone(),
        )
        .tap_io(|io| io.set_nodelay());
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal);
        let server = tokio::spawn(async move { server.await });
        tokio::pin!(server);
        tokio::select! {
            result = &mut server => result??,
            _ = drained_rx => {
                if tokio::time::timeout(grace, &mut server).await.is_err() {
                    tracing::warn!(event = "shutdown_grace_exceeded", grace_secs = grace.as_secs());
                    server.abort();
                }
            }
        }
        lag.abort();
        purge.abort();
        state.publisher.flush(grace).await;
        tracing::info!(event = "api_stopped");
        Ok(())
    }
}

/// How often expired refresh tokens are deleted, and how long after expiry.
const SESSION_PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);
const SESSION_PURGE_AFTER_DAYS: i64 = 1;

/// Deletes refresh tokens that expired over a day ago, hourly. Every replica runs it;
/// the delete is idempotent.
async fn purge_expired_sessions(pg: deadpool_postgres::Pool) {
    let mut tick = tokio::time::interval(SESSION_PURGE_EVERY);
    loop {
        tick.tick().await;
        let before = chrono::Utc::now() - chrono::Duration::days(SESSION_PURGE_AFTER_DAYS);
        let purged = async {
            let client = pg.get().await?;
            anyhow::Ok(common::store::sessions::purge_expired(&**client, before).await?)
        }
        .await;
        match purged {
            Ok(n) => tracing::info!(event = "expired_sessions_purged", tokens = n),
            Err(e) => tracing::warn!(event = "expired_sessions_not_purged", error = %e),
        }
    }
}

/// The request span names the matched route, never the raw path (paths carry emails),
/// and the request id, so every log line of a request can be found.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    // Borrowed, not copied: with the span disabled (LOG_LEVEL above info, no tracing)
    // this costs nothing per request.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", axum::extract::MatchedPath::as_str);
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let span = tracing::info_span!("request", method = %request.method(), route = %route, request_id = %request_id);
    // A client that traces (W3C `traceparent`) sees the api's work inside its own trace.
    if request.headers().contains_key("traceparent") {
        common::ops::telemetry::continue_trace(
            &span,
            request
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
        );
    }
    span
}

async fn timeout_error(_: tower::BoxError) -> ApiError {
    ApiError::Timeout
}

async fn intake_shed_error(_: tower::BoxError) -> ApiError {
    ApiError::from(crate::service::ServiceError::Overloaded {
        retry_after_secs: 1,
    })
}

/// Every API route, relative to its prefix: nested under [`versioning::CANONICAL`] and
/// under each alias of [`versioning::ALIASES`].
fn api_routes(config: &ApiConfig, client_ip: &ClientIp) -> Router<AppState> {
    // Registration, login, refresh and profile changes (which may check a
    // `currentPassword`): the stricter per-IP limit of the auth routes, one budget for all.
    let auth_limit = protection::rate_limit(
        config.auth_rate_limit_per_minute,
        config.auth_rate_limit_burst,
        client_ip.clone(),
    );
    // The registration routes share one budget of registrations in flight (aliases
    // too: the layer's semaphore is shared by its clones); beyond it the answer is 503
    // at once, before the body is read, so a flood costs the api little and the
    // registrations it did take keep their pace.
    let intake = tower::util::option_layer((config.intake_max_in_flight > 0).then(|| {
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(intake_shed_error))
            .load_shed()
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                config.intake_max_in_flight,
            ))
    }));
    let mut auth_limited = Router::new()
        .route("/users", post(registration::register).layer(intake.clone()))
        .route(
            "/auth/register",
            post(registration::register_alias).layer(intake.clone()),
        )
        .route(
            "/auth/passkey/register",
            post(passkeys::sign_up).layer(intake.clone()),
        )
        .route(
            "/auth/passkey/register/options",
            post(passkeys::sign_up_options),
        )
        .route(
            "/auth/passkey/login/options",
            post(passkeys::sign_in_options),
        )
        .route("/auth/passkey/login", post(passkeys::sign_in))
        .route(
            "/auth/passwordless/register",
            post(passwordless::sign_up).layer(intake.clone()),
        )
        .route("/auth/passwordless", post(passwordless::request_mail))
        .route("/auth/passwordless/verify", post(passwordless::verify))
        .route("/auth/social/exchange", post(social::exchange))
        .route("/auth/login", post(auth::login))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/mfa/verify", post(security::verify_mfa))
        .route("/auth/verify-email", post(security::verify_email))
        .route(
            "/auth/verify-email/resend",
            post(security::resend_verification),
        )
        .route(
            "/auth/password-reset",
            post(security::request_password_reset),
        )
        .route(
            "/auth/password-reset/confirm",
            post(security::confirm_password_reset),
        )
        .route("/auth/mfa/totp/disable", post(security::disable_totp))
        .route("/auth/mfa/totp/enroll", post(security::enroll_totp))
        .route("/register", post(compat::register).layer(intake))
        .route("/token", post(compat::token));
    let mut user_changes = put(users::replace).patch(users::patch);
    if let Some(limit) = auth_limit {
        auth_limited = auth_limited.layer(limit.clone());
        user_changes = user_changes.layer(limit);
    }
    let data_routes = Router::new()
        .route("/data", post(data::create).get(data::list))
        .route(
            "/data/{key}",
            get(data::get).put(data::replace).delete(data::delete),
        )
        .layer(DefaultBodyLimit::max(data::BODY_LIMIT_BYTES));
    let mut app = Router::new()
        .merge(auth_limited)
        .route("/auth/logout", post(auth::logout))
        .route("/auth/me", get(auth::me))
        .route("/auth/mfa", get(security::mfa_status))
        .route("/auth/mfa/totp/confirm", post(security::confirm_totp))
        .route(
            "/auth/sessions",
            get(security::list_sessions).delete(security::end_other_sessions),
        )
        .route("/auth/sessions/{id}", delete(security::end_session))
        .route("/auth/passkeys", get(passkeys::list).post(passkeys::add))
        .route("/auth/passkeys/options", post(passkeys::enrolment_options))
        .route(
            "/auth/passkeys/{id}",
            axum::routing::patch(passkeys::rename).delete(passkeys::delete),
        )
        .route("/auth/password", delete(passkeys::remove_password))
        .route(
            "/auth/identities",
            get(social::identities).post(social::link),
        )
        .route("/auth/identities/{id}", delete(social::unlink))
        .route("/auth/identity-providers", get(social::offered))
        .route(
            "/admin/identity-providers",
            post(social::create).get(social::list),
        )
        .route(
            "/admin/identity-providers/{id}",
            get(social::get)
                .patch(social::update)
                .delete(social::delete),
        )
        .route("/users/{id}/mfa", delete(security::reset_user_mfa))
        .route("/users/{id}/sessions", get(security::list_user_sessions))
        .route("/users/{id}/passkeys", get(passkeys::list_of_user))
        .route("/users/{id}/identities", get(social::identities_of_user))
        .route(
            "/users/{id}/sessions/{session}",
            delete(security::end_user_session),
        )
        .route(
            "/users/{id}/verify-email",
            post(security::admin_verify_email),
        )
        .route("/admin/registrations", get(operations::registrations))
        .route("/admin/dead-letters", get(operations::dead_letters))
        .route("/admin/dead-letters/replay", post(operations::replay))
        .route(
            "/admin/dead-letters/{position}",
            get(operations::dead_letter),
        )
        .route("/admin/pipeline", get(operations::pipeline))
        .route("/users", get(users::list))
        .route(
            "/users/{id}",
            get(users::get).delete(users::delete).merge(user_changes),
        )
        .route("/users/{id}/export", get(users::export))
        .route("/users/{id}/audit", get(users::audit))
        .route(
            "/admin/oidc/clients",
            post(oidc_clients::create).get(oidc_clients::list),
        )
        .route(
            "/admin/oidc/clients/{id}",
            get(oidc_clients::get)
                .patch(oidc_clients::update)
                .delete(oidc_clients::delete),
        )
        .route(
            "/admin/webhooks",
            post(webhooks::create).get(webhooks::list),
        )
        .route(
            "/admin/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route(
            "/admin/scim/tokens",
            post(crate::routes::scim_tokens::create).get(crate::routes::scim_tokens::list),
        )
        .route(
            "/admin/scim/tokens/{id}",
            delete(crate::routes::scim_tokens::revoke),
        )
        .route("/admin/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/admin/webhooks/{id}/deliveries/{delivery}/redeliver",
            post(webhooks::redeliver_one),
        )
        .route(
            "/admin/webhooks/{id}/redeliver",
            post(webhooks::redeliver_range),
        )
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .merge(data_routes)
        // One stack, one `Router::layer`: each call boxes every route's service and
        // future once more per request.
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(timeout_error))
                .timeout(config.request_timeout())
                .layer(axum::middleware::from_fn(respond::conditional_get)),
        );
    if let Some(limit) = protection::rate_limit(
        config.rate_limit_per_minute,
        config.rate_limit_burst,
        client_ip.clone(),
    ) {
        app = app.layer(limit);
    }
    // Probes and the document stay outside the rate limits and the timeout; so do bulk
    // imports (admins only), whose streamed bodies take longer than any request timeout.
    // The live pipeline view streams for minutes.
    app.route(
        "/admin/imports",
        post(imports::create).get(operations::imports),
    )
    .route("/admin/pipeline/stream", get(operations::pipeline_stream))
    .route("/admin/imports/{id}", get(imports::status))
    .route(
        "/openapi.json",
        get(crate::openapi::openapi_json)
            .layer(axum::middleware::from_fn(respond::conditional_get)),
    )
    .route("/health", get(health::health))
    .route("/health/live", get(health::live))
    .route("/health/ready", get(health::ready))
}

/// The OpenID Connect provider: its protocol endpoints and the hosted login pages. They
/// speak OAuth's formats, are described by the discovery document rather than the
/// OpenAPI one, and answer 404 while `OIDC_ISSUER` is unset.
/// SCIM 2.0 (`/scim/v2`, RFC 7644): its own error format and its own 404 for paths
/// below it; a creation may wait `SCIM_CREATE_WAIT_MS` for the consumer.
fn scim_routes(config: &ApiConfig) -> Router<AppState> {
    use crate::routes::scim;
    let timeout = config.request_timeout().max(
        std::time::Duration::from_millis(config.scim_create_wait_ms)
            + std::time::Duration::from_secs(5),
    );
    Router::new()
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(scim::service_provider_config),
        )
        .route("/scim/v2/ResourceTypes", get(scim::resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(scim::resource_type))
        .route("/scim/v2/Schemas", get(scim::schemas))
        .route("/scim/v2/Schemas/{id}", get(scim::schema_by_id))
        .route(
            "/scim/v2/Users",
            get(scim::list_users).post(scim::create_user),
        )
        .route("/scim/v2/Users/.search", post(scim::search_users))
        .route("/scim/v2/.search", post(scim::search_all))
        .route(
            "/scim/v2/Users/{id}",
            get(scim::get_user)
                .put(scim::replace_user)
                .patch(scim::patch_user)
                .delete(scim::delete_user),
        )
        .route(
            "/scim/v2/Groups",
            get(scim::list_groups).post(scim::fixed_groups),
        )
        .route(
            "/scim/v2/Groups/{id}",
            get(scim::get_group)
                .put(scim::replace_group)
                .patch(scim::patch_group)
                .delete(scim::fixed_groups),
        )
        .route("/scim/v2", axum::routing::any(scim::not_found))
        .route("/scim/v2/{*rest}", axum::routing::any(scim::not_found))
        .layer(DefaultBodyLimit::max(crate::scim::BODY_LIMIT_BYTES))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(timeout_error))
                .timeout(timeout),
        )
}

fn oidc_routes(config: &ApiConfig) -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route("/oauth2/jwks", get(oidc::jwks))
        .route(
            "/oauth2/authorize",
            get(oidc::authorize).post(oidc::authorize),
        )
        .route("/oauth2/token", post(oidc::token))
        .route("/oauth2/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .route("/oauth2/introspect", post(oidc::introspect))
        .route("/oauth2/revoke", post(oidc::revoke))
        .route("/oauth2/logout", get(oidc::logout).post(oidc::logout))
        .route("/oauth2/login", get(hosted::show).post(hosted::login))
        .route("/oauth2/login/passkey", post(hosted::login_with_passkey))
        .route("/oauth2/social/callback", get(hosted::social_callback))
        .route("/oauth2/social/{provider}", get(hosted::social_start))
        .route("/oauth2/mfa", post(hosted::second_factor))
        .route("/oauth2/consent", get(hosted::show).post(hosted::consent))
        .route(
            "/oauth2/signup",
            get(hosted::sign_up_show).post(hosted::sign_up),
        )
        .route("/oauth2/assets/login.css", get(hosted::stylesheet))
        .route("/oauth2/assets/passkey.js", get(hosted::passkey_script))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(timeout_error))
                .timeout(config.request_timeout()),
        )
}

pub fn router(state: AppState, config: &ApiConfig, client_ip: ClientIp) -> Router {
    let api = api_routes(config, &client_ip);
    let mut app = Router::new().nest(versioning::CANONICAL, api.clone());
    for alias in versioning::ALIASES {
        app = app.nest(
            alias,
            api.clone()
                .layer(axum::middleware::from_fn(versioning::mark_deprecated)),
        );
    }
    // Swagger UI needs scripts and styles of its own origin; the rest keeps the strict CSP.
    let docs: Router<AppState> = Router::from(
        utoipa_swagger_ui::SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::new([
            format!("{}/openapi.json", versioning::CANONICAL),
        ])),
    )
    .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    ));
    // Metrics and the top-level probes (the paths the consumer also answers) stay outside
    // the rate limits and the timeout. The 405 fallback comes after every route (it only
    // reaches the routes that exist when it is set) and before the layers below, so a 405
    // is counted, traced and carries a request id.
    let app = app
        .route("/metrics", get(health::metrics))
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/ready", get(health::ready))
        .route("/.well-known/jwks.json", get(auth::jwks))
        .merge(oidc_routes(config))
        .merge(scim_routes(config))
        .merge(docs)
        .merge(crate::routes::console::routes(&state))
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // Outermost first, as one stack applied once: each `Router::layer` call boxes
        // every route's service and future once more per request.
        .layer(
            ServiceBuilder::new()
                .option_layer(protection::cors(&config.cors_origins()))
                .layer(axum::middleware::map_response(protection::security_headers))
                .layer(axum::middleware::from_fn(
                    crate::protection::drop_untidy_request_id,
                ))
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(TraceLayer::new_for_http().make_span_with(request_span))
                // Answers above 1 KiB go out gzip- or br-compressed when the client
                // accepts it (lists, exports, the OpenAPI document, metrics); small ones
                // are not worth it.
                .layer(CompressionLayer::new().compress_when(
                    DefaultPredicate::new().and(SizeAbove::new(COMPRESS_ABOVE_BYTES)),
                ))
                .layer(axum::middleware::from_fn_with_state(
                    Arc::clone(&state.metrics),
                    crate::metrics::track,
                ))
                // A panicking handler answers 500 in the envelope (counted and traced by
                // the layers above) instead of dropping the connection without an answer.
                .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                    |_: Box<dyn std::any::Any + Send>| {
                        ApiError::from(crate::service::ServiceError::Internal(anyhow::anyhow!(
                            "a request handler panicked"
                        )))
                        .into_response()
                    },
                )),
        );
    app.with_state(state)
}
