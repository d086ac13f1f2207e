//! Social login: upstream OpenID Connect providers (Google, Microsoft, GitLab or any
//! issuer) an admin configures, the browser round trip to them, and what a verified
//! upstream identity becomes here.
//!
//! Toward the upstream provider Registrar is a confidential (or public) client with
//! PKCE, `state` and `nonce` (the `openidconnect` crate validates the ID token: its
//! signature, issuer, audience, expiry and nonce). The `state` is single use, lives 10
//! minutes and is bound to the browser that started the round trip by a cookie.
//!
//! What a verified identity does:
//! - linked to an account: signs that account in;
//! - unknown, with a verified address no account has: creates the account through the
//!   pipeline (a registration event signed with the import key, `user.registered` on
//!   `user-events`), linked to the identity, and signs it in;
//! - unknown, with the address of an existing account: links nothing by itself. The
//!   person proves the account first (signs in to it), and only then is the identity
//!   linked. Never silently.
//! - an upstream address that is not verified is refused.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::domain::email::Email;
use common::domain::registration::{new_registration_id, FailureReason};
use common::events::registration::{Credential, RegistrationEvent, UpstreamIdentity};
use common::store::identities::{self, IdentityRecord, ProviderRecord};
use common::store::registration_status::RegistrationStatus;
use common::store::users::{self, UserRecord};
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{registration, require_admin, ServiceError};
use crate::caller::{Caller, RequestContext};
use crate::state::AppState;

/// Redis flow kinds: a round trip in progress, a one-time code for an app, an identity
/// waiting for its account to be proven.
const ROUND_TRIP: &str = "social";
const EXCHANGE: &str = "social-exchange";
const PENDING_LINK: &str = "social-link";
const ROUND_TRIP_TTL: Duration = Duration::from_secs(600);
const EXCHANGE_TTL: Duration = Duration::from_secs(60);
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// The profile fields an upstream claim may fill, and the claims by default.
const DEFAULT_CLAIMS: [(&str, &str); 3] = [
    ("firstName", "given_name"),
    ("lastName", "family_name"),
    ("username", "preferred_username"),
];

/// Where a round trip goes on once the identity is known.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum After {
    /// A hosted login flow of the OpenID Connect provider.
    Hosted { flow: String },
    /// A frontend (one of the CORS origins): back to it with a one-time code.
    App { return_to: String },
}

#[derive(Serialize, Deserialize)]
struct RoundTrip {
    provider: String,
    verifier: String,
    nonce: String,
    /// SHA-256 of the browser's binding cookie.
    binding: String,
    after: After,
}

/// An upstream identity waiting for its account to be proven.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingLink {
    pub provider: String,
    pub provider_name: String,
    pub subject: String,
    pub email: String,
}

/// How a round trip ended.
pub enum Outcome {
    SignedIn {
        user: Box<UserRecord>,
        provider: String,
    },
    /// The address has an account: prove it (sign in) to link. The token names the
    /// pending link.
    LinkRequired { token: String, link: PendingLink },
    /// Refused, with what the person is told.
    Refused(&'static str),
}

/// The value of the cookie that binds a round trip to its browser.
pub fn binding_token() -> String {
    random_token("")
}

fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

fn digest(s: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(s.as_bytes()))
}

fn http() -> Result<openidconnect::reqwest::Client, ServiceError> {
    openidconnect::reqwest::ClientBuilder::new()
        // Following redirects would open the client to SSRF.
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .timeout(UPSTREAM_TIMEOUT)
        .build()
        .map_err(|e| ServiceError::Internal(e.into()))
}

/// The api's own callback URL; social login needs `OIDC_ISSUER` (the public URL).
pub fn callback_url(app: &AppState) -> Result<String, ServiceError> {
    let issuer = app
        .accounts
        .oidc
        .as_ref()
        .map(|p| p.issuer.clone())
        .ok_or(ServiceError::NotFound("Identity provider"))?;
    Ok(format!("{issuer}/oauth2/social/callback"))
}

/// The AEAD's associated data of a provider's sealed secret: its id.
fn secret_owner(id: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("registrar:identity-provider:{id}").as_bytes(),
    )
}

fn client_secret(app: &AppState, p: &ProviderRecord) -> Result<Option<ClientSecret>, ServiceError> {
    let (Some(sealed), Some(key_id)) = (&p.client_secret, &p.secret_key_id) else {
        return Ok(None);
    };
    let keys = app
        .accounts
        .mfa
        .keys
        .as_ref()
        .ok_or(ServiceError::MfaNotConfigured)?;
    let secret = keys
        .open(secret_owner(&p.id), key_id, sealed)
        .map_err(|e| ServiceError::Internal(anyhow::anyhow!("client secret of {}: {e}", p.id)))?;
    String::from_utf8(secret.to_vec())
        .map(|s| Some(ClientSecret::new(s)))
        .map_err(|e| ServiceError::Internal(e.into()))
}

/// Discovery of a provider's issuer (its metadata and keys).
async fn discover(
    http: &openidconnect::reqwest::Client,
    issuer: &str,
) -> Result<CoreProviderMetadata, String> {
    let issuer = IssuerUrl::new(issuer.to_owned()).map_err(|e| e.to_string())?;
    CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| crate::error::error_chain(&e))
}

// ---- admin: the providers ----------------------------------------------------------

/// What an admin sets on a provider; `None` leaves a field as it is (on update).
#[derive(Debug, Default)]
pub struct ProviderSpec {
    pub id: Option<String>,
    pub name: Option<String>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    /// `Some("")` removes the secret (a public client).
    pub client_secret: Option<SecretString>,
    pub scopes: Option<Vec<String>>,
    pub claim_map: Option<serde_json::Map<String, serde_json::Value>>,
    pub enabled: Option<bool>,
}

fn check_spec(spec: &ProviderSpec, creating: bool) -> Result<(), ServiceError> {
    let mut errors = Vec::new();
    let mut bad = |field: &str, message: &str| {
        errors.push(common::domain::registration::FieldError::new(
            field, message,
        ))
    };
    match (&spec.id, creating) {
        (None, true) => bad("id", "is required"),
        (Some(id), _)
            if id.is_empty()
                || id.len() > 32
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                || id.starts_with('-')
                || id == "callback" =>
        {
            bad("id", "must be 1-32 of a-z, 0-9 and -, not starting with -")
        }
        _ => {}
    }
    match &spec.name {
        None if creating => bad("name", "is required"),
        Some(n) if n.trim().is_empty() || n.chars().count() > 100 => {
            bad("name", "must be 1-100 characters")
        }
        _ => {}
    }
    match &spec.issuer {
        None if creating => bad("issuer", "is required"),
        Some(i) if !url::Url::parse(i).is_ok_and(|u| matches!(u.scheme(), "https" | "http")) => {
            bad("issuer", "must be an http(s) URL")
        }
        _ => {}
    }
    match &spec.client_id {
        None if creating => bad("clientId", "is required"),
        Some(c) if c.is_empty() || c.len() > 255 => bad("clientId", "must be 1-255 characters"),
        _ => {}
    }
    if let Some(scopes) = &spec.scopes {
        if !scopes.iter().any(|s| s == "openid")
            || scopes
                .iter()
                .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            bad(
                "scopes",
                "must include openid, and no scope may be empty or hold spaces",
            );
        }
    }
    if let Some(map) = &spec.claim_map {
        let fields = DEFAULT_CLAIMS.map(|(f, _)| f);
        if map
            .iter()
            .any(|(k, v)| !fields.contains(&k.as_str()) || !v.is_string())
        {
            bad(
                "claimMap",
                "maps firstName, lastName or username to the name of an upstream claim",
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ServiceError::Invalid(errors))
    }
}

fn seal_secret(
    app: &AppState,
    id: &str,
    secret: &SecretString,
) -> Result<(Option<Vec<u8>>, Option<String>), ServiceError> {
    if secret.expose_secret().is_empty() {
        return Ok((None, None));
    }
    let keys = app.accounts.mfa.keys.as_ref().ok_or_else(|| {
        ServiceError::invalid(
            "clientSecret",
            "cannot be stored: the server has no MFA_ENCRYPTION_KEY to seal it with",
        )
    })?;
    let (key_id, sealed) = keys.seal(secret_owner(id), secret.expose_secret().as_bytes());
    Ok((Some(sealed), Some(key_id)))
}

/// Adds a provider after its issuer answered discovery.
pub async fn create_provider(
    app: &AppState,
    actor: Option<&Caller>,
    context: &RequestContext,
    spec: ProviderSpec,
) -> Result<ProviderRecord, ServiceError> {
    require_admin(actor)?;
    check_spec(&spec, true)?;
    let id = spec.id.clone().unwrap_or_default();
    let issuer = spec
        .issuer
        .clone()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    discover(&http()?, &issuer).await.map_err(|e| {
        ServiceError::invalid(
            "issuer",
            format!("does not answer OpenID Connect discovery: {e}"),
        )
    })?;
    let (client_secret, secret_key_id) = match &spec.client_secret {
        Some(s) => seal_secret(app, &id, s)?,
        None => (None, None),
    };
    let record = ProviderRecord {
        id: id.clone(),
        name: spec.name.clone().unwrap_or_default().trim().to_owned(),
        issuer,
        client_id: spec.client_id.clone().unwrap_or_default(),
        client_secret,
        secret_key_id,
        scopes: spec
            .scopes
            .clone()
            .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()])
            .join(" "),
        claim_map: spec
            .claim_map
            .clone()
            .map(serde_json::Value::Object)
            .unwrap_or_else(|| json!({})),
        enabled: spec.enabled.unwrap_or(true),
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    };
    let db = app.db().await?;
    if !identities::insert_provider(&**db, &record).await? {
        return Err(ServiceError::invalid("id", "is taken by another provider"));
    }
    audit_admin(app, actor, context, "admin.identity_provider_created", &id).await?;
    identities::provider(&**db, &id)
        .await?
        .ok_or(ServiceError::NotFound("Identity provider"))
}

async fn audit_admin(
    app: &AppState,
    actor: Option<&Caller>,
    context: &RequestContext,
    action: &str,
    provider: &str,
) -> Result<(), ServiceError> {
    tracing::info!(event = "identity_provider_changed", action, provider, actor = ?actor.map(|a| a.id));
    if let Some(actor) = actor {
        let db = app.db().await?;
        users::audit(
            &**db,
            actor.id,
            action,
            &context.audit(Some(actor.id)),
            json!({ "provider": provider }),
        )
        .await?;
    }
    Ok(())
}

pub async fn update_provider(
    app: &AppState,
    actor: Option<&Caller>,
    context: &RequestContext,
    id: &str,
    spec: ProviderSpec,
) -> Result<ProviderRecord, ServiceError> {
    require_admin(actor)?;
    check_spec(&spec, false)?;
    let db = app.db().await?;
    let mut p = identities::provider(&**db, id)
        .await?
        .ok_or(ServiceError::NotFound("Identity provider"))?;
    if let Some(issuer) = &spec.issuer {
        let issuer = issuer.trim_end_matches('/');
        discover(&http()?, issuer).await.map_err(|e| {
            ServiceError::invalid(
                "issuer",
                format!("does not answer OpenID Connect discovery: {e}"),
            )
        })?;
        p.issuer = issuer.to_owned();
    }
    if let Some(name) = &spec.name {
        p.name = name.trim().to_owned();
    }
    if let Some(client_id) = &spec.client_id {
        p.client_id.clone_from(client_id);
    }
    if let Some(secret) = &spec.client_secret {
        (p.client_secret, p.secret_key_id) = seal_secret(app, id, secret)?;
    }
    if let Some(scopes) = &spec.scopes {
        p.scopes = scopes.join(" ");
    }
    if let Some(map) = &spec.claim_map {
        p.claim_map = serde_json::Value::Object(map.clone());
    }
    if let Some(enabled) = spec.enabled {
        p.enabled = enabled;
    }
    identities::update_provider(&**db, &p).await?;
    audit_admin(app, actor, context, "admin.identity_provider_updated", id).await?;
    identities::provider(&**db, id)
        .await?
        .ok_or(ServiceError::NotFound("Identity provider"))
}

pub async fn list_providers(
    app: &AppState,
    actor: Option<&Caller>,
) -> Result<Vec<ProviderRecord>, ServiceError> {
    require_admin(actor)?;
    let db = app.db().await?;
    Ok(identities::providers(&**db, false).await?)
}

pub async fn get_provider(
    app: &AppState,
    actor: Option<&Caller>,
    id: &str,
) -> Result<ProviderRecord, ServiceError> {
    require_admin(actor)?;
    let db = app.db().await?;
    identities::provider(&**db, id)
        .await?
        .ok_or(ServiceError::NotFound("Identity provider"))
}

/// Deletes a provider and every identity linked at it.
pub async fn delete_provider(
    app: &AppState,
    actor: Option<&Caller>,
    context: &RequestContext,
    id: &str,
) -> Result<(), ServiceError> {
    require_admin(actor)?;
    let db = app.db().await?;
    if !identities::delete_provider(&**db, id).await? {
        return Err(ServiceError::NotFound("Identity provider"));
    }
    audit_admin(app, actor, context, "admin.identity_provider_deleted", id).await
}

/// The providers sign-in pages offer (enabled ones); none while `OIDC_ISSUER` is unset.
pub async fn offered(app: &AppState) -> Result<Vec<ProviderRecord>, ServiceError> {
    if app.accounts.oidc.is_none() {
        return Ok(Vec::new());
    }
    let db = app.db().await?;
    Ok(identities::providers(&**db, true).await?)
}

// ---- the round trip ----------------------------------------------------------------

/// Where a frontend may be sent back to: one of the CORS origins, exactly.
pub fn allowed_return(app: &AppState, return_to: &str) -> bool {
    url::Url::parse(return_to).is_ok_and(|u| {
        let origin = u.origin().ascii_serialization();
        app.accounts.return_origins.iter().any(|o| o == &origin)
    })
}

/// Starts a round trip: the upstream authorization URL to send the browser to. The
/// browser must hold `binding` (a cookie) when it comes back.
pub async fn start(
    app: &AppState,
    provider_id: &str,
    after: After,
    binding: &str,
) -> Result<String, ServiceError> {
    let redirect = callback_url(app)?;
    let db = app.db().await?;
    let p = identities::provider(&**db, provider_id)
        .await?
        .filter(|p| p.enabled)
        .ok_or(ServiceError::NotFound("Identity provider"))?;
    drop(db);
    let secret = client_secret(app, &p)?;
    let http = http()?;
    let metadata = discover(&http, &p.issuer).await.map_err(|e| {
        tracing::warn!(event = "upstream_discovery_failed", provider = %p.id, error = %e);
        ServiceError::Unavailable(anyhow::anyhow!("the identity provider does not answer"))
    })?;
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(p.client_id.clone()), secret)
            .set_redirect_uri(
                RedirectUrl::new(redirect).map_err(|e| ServiceError::Internal(e.into()))?,
            );
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client.authorize_url(
        AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    for scope in p.scopes.split_whitespace().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(scope.to_owned()));
    }
    let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
    let trip = RoundTrip {
        provider: p.id.clone(),
        verifier: verifier.secret().clone(),
        nonce: nonce.secret().clone(),
        binding: digest(binding),
        after,
    };
    app.stores
        .auth_flows
        .put_flow(ROUND_TRIP, state.secret(), &trip, ROUND_TRIP_TTL)
        .await?;
    tracing::info!(event = "social_login_started", provider = %p.id);
    Ok(url.to_string())
}

/// What the upstream provider says about the person.
struct Upstream {
    subject: String,
    email: Option<String>,
    email_verified: bool,
    claims: serde_json::Map<String, serde_json::Value>,
}

/// The callback's checks and the code exchange. `Err(None)`: the state is unknown,
/// used, expired or from another browser.
async fn exchange(
    app: &AppState,
    trip: &RoundTrip,
    p: &ProviderRecord,
    code: &str,
) -> Result<Upstream, String> {
    let http = http().map_err(|e| e.to_string())?;
    let metadata = discover(&http, &p.issuer).await?;
    let secret = client_secret(app, p).map_err(|e| e.to_string())?;
    let redirect = callback_url(app).map_err(|e| e.to_string())?;
    let client =
        CoreClient::from_provider_metadata(metadata, ClientId::new(p.client_id.clone()), secret)
            .set_redirect_uri(RedirectUrl::new(redirect).map_err(|e| e.to_string())?);
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .map_err(|e| e.to_string())?
        .set_pkce_verifier(PkceCodeVerifier::new(trip.verifier.clone()))
        .request_async(&http)
        .await
        .map_err(|e| format!("token endpoint: {}", crate::error::error_chain(&e)))?;
    let id_token = tokens.id_token().ok_or("no ID token in the answer")?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(trip.nonce.clone()))
        .map_err(|e| format!("ID token: {e}"))?;
    let subject = claims.subject().clone();
    let mut all = serde_json::to_value(claims)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    // The userinfo endpoint holds what the ID token may leave out (email, names).
    if let Ok(request) = client.user_info(tokens.access_token().clone(), Some(subject.clone())) {
        let info: Result<openidconnect::core::CoreUserInfoClaims, _> =
            request.request_async(&http).await;
        match info {
            Ok(info) => {
                if let Some(extra) = serde_json::to_value(&info)
                    .ok()
                    .and_then(|v| v.as_object().cloned())
                {
                    all.extend(extra);
                }
            }
            Err(e) => {
                tracing::info!(event = "upstream_userinfo_failed", provider = %p.id, error = %e)
            }
        }
    }
    Ok(Upstream {
        subject: subject.as_str().to_owned(),
        email: all.get("email").and_then(|v| v.as_str()).map(str::to_owned),
        email_verified: all
            .get("email_verified")
            .and_then(serde_json::Value::as_bool)
            == Some(true),
        claims: all,
    })
}

/// The callback: checks the state and its browser, exchanges the code, and decides
/// what the identity does. `Err(ServiceError::Forbidden)` for a state that is unknown,
/// used, expired or from another browser.
pub async fn finish(
    app: &AppState,
    context: &RequestContext,
    state: Option<&str>,
    code: Option<&str>,
    upstream_error: Option<&str>,
    binding: Option<&str>,
) -> Result<(After, Outcome), ServiceError> {
    let state = state
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or(ServiceError::Forbidden)?;
    let trip: RoundTrip = app
        .stores
        .auth_flows
        .take_flow(ROUND_TRIP, state)
        .await?
        .ok_or(ServiceError::Forbidden)?;
    if binding.map(digest).as_deref() != Some(trip.binding.as_str()) {
        tracing::warn!(event = "social_login_refused", reason = "state from another browser", provider = %trip.provider);
        return Err(ServiceError::Forbidden);
    }
    let after = trip.after.clone();
    if let Some(error) = upstream_error {
        tracing::info!(event = "social_login_refused", reason = "upstream error", provider = %trip.provider, error);
        return Ok((
            after,
            Outcome::Refused("The sign-in at the other provider did not finish."),
        ));
    }
    let db = app.db().await?;
    let p = identities::provider(&**db, &trip.provider)
        .await?
        .filter(|p| p.enabled)
        .ok_or(ServiceError::NotFound("Identity provider"))?;
    drop(db);
    let code = code
        .filter(|c| !c.is_empty())
        .ok_or(ServiceError::Forbidden)?;
    let upstream = match exchange(app, &trip, &p, code).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(event = "social_login_refused", reason = "exchange or ID token", provider = %p.id, error = %e);
            return Ok((
                after,
                Outcome::Refused("The other provider's answer could not be verified."),
            ));
        }
    };
    let outcome = decide(app, context, &p, upstream).await?;
    Ok((after, outcome))
}

async fn decide(
    app: &AppState,
    context: &RequestContext,
    p: &ProviderRecord,
    upstream: Upstream,
) -> Result<Outcome, ServiceError> {
    let db = app.db().await?;
    if let Some(user_id) = identities::use_identity(&**db, &p.id, &upstream.subject).await? {
        let user = users::find_by_id(&**db, user_id)
            .await?
            .filter(UserRecord::can_sign_in);
        return Ok(match user {
            Some(user) => Outcome::SignedIn {
                user: Box::new(user),
                provider: p.id.clone(),
            },
            None => Outcome::Refused("This account cannot sign in."),
        });
    }
    let email = match (&upstream.email, upstream.email_verified) {
        (Some(e), true) => Email::parse(e).ok(),
        _ => None,
    };
    let Some(email) = email else {
        tracing::info!(event = "social_login_refused", reason = "email missing or not verified upstream", provider = %p.id);
        return Ok(Outcome::Refused(
            "The other provider did not vouch for your email address. Verify it there, or sign in another way.",
        ));
    };
    if users::find_by_email(&**db, email.as_str()).await?.is_some() {
        return pending_link(app, p, &upstream, &email).await;
    }
    drop(db);
    // A first sign-in: the account, through the pipeline.
    let claim = |field: &str| {
        let default = DEFAULT_CLAIMS
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, c)| *c);
        let name = p
            .claim_map
            .get(field)
            .and_then(|v| v.as_str())
            .or(default)?;
        upstream.claims.get(name)?.as_str().map(str::to_owned)
    };
    let registration_id = new_registration_id();
    let event = RegistrationEvent {
        registration_id,
        email: email.as_str().to_owned(),
        first_name: claim("firstName").filter(|n| (2..=100).contains(&n.chars().count())),
        last_name: claim("lastName").filter(|n| (2..=100).contains(&n.chars().count())),
        gender: None,
        sex: None,
        occupation: None,
        credential: Credential::NoPassword,
        submitted_at_ms: chrono::Utc::now().timestamp_millis(),
        request_id: context.request_id.clone(),
        username: None,
        date_of_birth: None,
        role: None,
        created_at_ms: None,
        // The provider vouched for the address.
        email_verified: true,
        import: None,
        provisioning: None,
        identity: Some(UpstreamIdentity {
            provider: p.id.clone(),
            subject: upstream.subject.clone(),
        }),
    };
    let status = match registration::provision(app, &event, &email, app.scim.create_wait).await {
        Err(ServiceError::RegistrationPending) => {
            return Ok(Outcome::Refused(
                "A sign-up of this address is in progress. Try again in a moment.",
            ))
        }
        other => other?,
    };
    match status {
        Some(RegistrationStatus::Completed(_)) => {}
        Some(RegistrationStatus::Failed(f)) if f.reason == Some(FailureReason::EmailTaken) => {
            return pending_link(app, p, &upstream, &email).await;
        }
        Some(RegistrationStatus::Failed(_)) => {
            return Ok(Outcome::Refused("Your account could not be created."))
        }
        _ => {
            return Err(ServiceError::Overloaded {
                retry_after_secs: 5,
            })
        }
    }
    let db = app.db().await?;
    let user = users::find_by_email(&**db, email.as_str())
        .await?
        .filter(|u| u.registration_id == registration_id)
        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("a completed user is missing")))?;
    tracing::info!(event = "social_account_created", provider = %p.id, user_id = %user.id);
    Ok(Outcome::SignedIn {
        user: Box::new(user),
        provider: p.id.clone(),
    })
}

async fn pending_link(
    app: &AppState,
    p: &ProviderRecord,
    upstream: &Upstream,
    email: &Email,
) -> Result<Outcome, ServiceError> {
    let token = random_token("sl_");
    let link = PendingLink {
        provider: p.id.clone(),
        provider_name: p.name.clone(),
        subject: upstream.subject.clone(),
        email: email.as_str().to_owned(),
    };
    app.stores
        .auth_flows
        .put_flow(PENDING_LINK, &token, &link, ROUND_TRIP_TTL)
        .await?;
    tracing::info!(event = "social_link_pending", provider = %p.id, email = %email.masked());
    Ok(Outcome::LinkRequired { token, link })
}

/// A one-time code a frontend trades for a session (`POST /api/v1/auth/social/exchange`).
pub async fn exchange_code_for(
    app: &AppState,
    user: &UserRecord,
    provider: &str,
) -> Result<String, ServiceError> {
    let code = random_token("sc_");
    app.stores
        .auth_flows
        .put_flow(
            EXCHANGE,
            &code,
            &(user.id, provider.to_owned()),
            EXCHANGE_TTL,
        )
        .await?;
    Ok(code)
}

/// Trades a one-time code for a session.
pub async fn redeem(
    app: &AppState,
    context: &RequestContext,
    code: Option<&str>,
) -> Result<super::accounts::Tokens, ServiceError> {
    let code = code
        .filter(|c| !c.is_empty() && c.len() <= 128)
        .ok_or_else(|| ServiceError::invalid("code", "is required"))?;
    let (user_id, provider): (Uuid, String) = app
        .stores
        .auth_flows
        .take_flow(EXCHANGE, code)
        .await?
        .ok_or(ServiceError::LinkTokenInvalid)?;
    let mut client = app.db().await?;
    let user = users::find_by_id(&**client, user_id)
        .await?
        .filter(UserRecord::can_sign_in)
        .ok_or(ServiceError::LinkTokenInvalid)?;
    super::accounts::start_session(
        app,
        context,
        &mut client,
        user.id,
        &user.password_hash,
        &format!("social:{provider}"),
    )
    .await
}

/// Links a pending identity to `user`, who just proved the account: only when the
/// address the provider vouched for is the account's.
pub async fn complete_link(
    app: &AppState,
    context: &RequestContext,
    user: &UserRecord,
    token: &str,
) -> Result<IdentityRecord, ServiceError> {
    let link: PendingLink = app
        .stores
        .auth_flows
        .take_flow(PENDING_LINK, token)
        .await?
        .ok_or_else(|| {
            ServiceError::invalid(
                "linkToken",
                "is unknown, used or expired: sign in with the provider again",
            )
        })?;
    if !link.email.eq_ignore_ascii_case(&user.email) {
        return Err(ServiceError::invalid(
            "linkToken",
            "is for another account's address",
        ));
    }
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    users::lock_by_id(&*tx, user.id).await?;
    if !identities::link(
        &*tx,
        user.id,
        &link.provider,
        &link.subject,
        Some(&link.email),
    )
    .await?
    {
        return Err(ServiceError::invalid(
            "linkToken",
            "this identity is linked to an account already",
        ));
    }
    users::audit(
        &*tx,
        user.id,
        "auth.identity_linked",
        &context.audit(Some(user.id)),
        json!({ "provider": link.provider }),
    )
    .await?;
    let record = identities::of_user(&*tx, user.id)
        .await?
        .into_iter()
        .find(|i| i.provider_id == link.provider && i.subject == link.subject)
        .ok_or_else(|| {
            ServiceError::Internal(anyhow::anyhow!("the identity just linked is gone"))
        })?;
    tx.commit().await?;
    tracing::info!(event = "identity_linked", user_id = %user.id, provider = %link.provider);
    Ok(record)
}

/// `POST /api/v1/auth/identities`: the signed-in caller links a pending identity.
pub async fn link_for_caller(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    token: Option<&str>,
) -> Result<IdentityRecord, ServiceError> {
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ServiceError::invalid("linkToken", "is required"))?;
    let user = super::accounts::current_user(app, caller).await?;
    complete_link(app, context, &user, token).await
}

pub async fn identities_of(
    app: &AppState,
    caller: &Caller,
) -> Result<Vec<IdentityRecord>, ServiceError> {
    let user = super::accounts::current_user(app, caller).await?;
    let db = app.db().await?;
    Ok(identities::of_user(&**db, user.id).await?)
}

/// Another user's linked identities, for an admin (the console's user view).
pub async fn identities_of_user(
    app: &AppState,
    caller: &Caller,
    user: Uuid,
) -> Result<Vec<IdentityRecord>, ServiceError> {
    let db = super::accounts::admin_reading(app, caller, user).await?;
    Ok(identities::of_user(&**db, user).await?)
}

pub async fn unlink(
    app: &AppState,
    caller: &Caller,
    context: &RequestContext,
    id: Uuid,
) -> Result<(), ServiceError> {
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    users::lock_by_id(&*tx, caller.id).await?;
    super::accounts::ensure_current(&*tx, caller).await?;
    if !identities::unlink(&*tx, caller.id, id).await? {
        return Err(ServiceError::NotFound("Identity"));
    }
    users::audit(
        &*tx,
        caller.id,
        "auth.identity_unlinked",
        &context.audit(Some(caller.id)),
        json!({ "identity": id }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
