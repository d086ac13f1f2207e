//! The authorization request (OIDC Core §3.1.2) and the hosted login behind it.
//!
//! A request is checked in two stages: the client and its redirect URI first (a wrong
//! one is answered on the provider's own page, never by a redirect: no open redirect),
//! then everything else (answered by a redirect to the client with `error`, `state` and
//! `iss`, RFC 9207). A browser that already has a session (the `__Host-registrar_session`
//! cookie) gets its code at once unless `prompt`, `max_age` or a missing consent say
//! otherwise. Otherwise the request becomes a *flow*: its state in Redis under a random
//! id, bound to the browser by a second cookie (so a form posted from another site, or
//! another browser, finds no flow), with a CSRF token in every form. The flow runs the
//! api's own login (password, lockout, verified email, then the second factor), opens
//! the browser session and ends at the consent screen or the code.

use std::time::Duration;

use chrono::Utc;
use common::store::oidc::{self, NewCode, OidcClient, SessionGrant};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::claims::amr_for;
use super::{parse_scope, provider, random_token, OAuthError};
use crate::bodies::accounts::LoginRequest;
use crate::caller::RequestContext;
use crate::service::accounts::{self, LoginOutcome};
use crate::service::{mfa, ServiceError};
use crate::state::AppState;

/// The kind under which flows are kept in Redis.
const FLOW: &str = "oidc-login";

/// The parameters of an authorization request, as sent.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub login_hint: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
    pub response_mode: Option<String>,
}

/// A request that passed every check.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthRequest {
    pub client_id: String,
    pub client_name: String,
    pub first_party: bool,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Vec<String>,
    pub max_age: Option<u64>,
    pub login_hint: Option<String>,
}

/// Where a redirect back to the client goes, and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect(pub String);

/// Why a request cannot even be answered by a redirect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub String);

/// How an authorization request goes on.
#[derive(Debug)]
pub enum Next {
    /// Back to the client (a code, or an error).
    Redirect(Redirect),
    /// The browser must sign in, or consent: a flow was started.
    Flow { id: String, binding: SecretString },
}

/// Builds the redirect to the client: its URI with the parameters added to its query.
pub fn redirect_to(uri: &str, params: &[(&str, &str)]) -> Redirect {
    let mut url = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return Redirect(uri.to_owned()),
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    Redirect(url.to_string())
}

/// An error sent back to the client (with `state` and `iss`).
pub fn error_redirect(app: &AppState, request: &AuthRequest, e: &OAuthError) -> Redirect {
    let issuer = provider(app).map(|p| p.issuer.clone()).unwrap_or_default();
    let mut params = vec![
        ("error", e.error),
        ("error_description", e.description.as_str()),
        ("iss", issuer.as_str()),
    ];
    if let Some(s) = &request.state {
        params.push(("state", s));
    }
    redirect_to(&request.redirect_uri, &params)
}

/// Checks the client and the redirect URI; then the rest of the request.
pub async fn check(
    app: &AppState,
    p: AuthorizeParams,
) -> Result<Result<AuthRequest, (AuthRequest, OAuthError)>, BadRequest> {
    let client_id = p
        .client_id
        .filter(|c| !c.is_empty() && c.len() <= 128)
        .ok_or_else(|| BadRequest("client_id is missing".into()))?;
    // The console's client is registered the first time the console signs someone in.
    if client_id == super::clients::CONSOLE_CLIENT_ID {
        let issuer = super::provider(app)
            .map(|p| p.issuer.clone())
            .map_err(|_| BadRequest("unknown client".into()))?;
        super::clients::ensure_console_client(app, &issuer)
            .await
            .map_err(|_| BadRequest("the service is unavailable; try again".into()))?;
    }
    let db = app
        .db()
        .await
        .map_err(|_| BadRequest("the service is unavailable; try again".into()))?;
    let client: OidcClient = oidc::find_client(&**db, &client_id)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| BadRequest("unknown client".into()))?;
    drop(db);
    let redirect_uri = p
        .redirect_uri
        .ok_or_else(|| BadRequest("redirect_uri is missing".into()))?;
    if !client.redirect_uris.contains(&redirect_uri) {
        tracing::warn!(event = "oidc_redirect_uri_refused", client_id = %client.client_id);
        return Err(BadRequest(
            "redirect_uri is not registered for this client".into(),
        ));
    }
    let mut request = AuthRequest {
        client_id: client.client_id.clone(),
        client_name: client.name.clone(),
        first_party: client.first_party,
        redirect_uri,
        scopes: Vec::new(),
        state: p.state.filter(|s| !s.is_empty()),
        nonce: p.nonce.filter(|s| !s.is_empty()),
        code_challenge: None,
        prompt: Vec::new(),
        max_age: None,
        login_hint: p.login_hint.filter(|s| !s.is_empty() && s.len() <= 254),
    };
    let rest = (|| {
        if p.request.is_some() {
            return Err(OAuthError {
                error: "request_not_supported",
                ..OAuthError::invalid_request("request objects are not supported")
            });
        }
        if p.request_uri.is_some() {
            return Err(OAuthError {
                error: "request_uri_not_supported",
                ..OAuthError::invalid_request("request_uri is not supported")
            });
        }
        if p.response_mode.as_deref().is_some_and(|m| m != "query") {
            return Err(OAuthError::invalid_request("response_mode must be query"));
        }
        match p.response_type.as_deref() {
            Some("code") => {}
            Some(_) => {
                return Err(OAuthError {
                    error: "unsupported_response_type",
                    ..OAuthError::invalid_request("only response_type=code is supported")
                })
            }
            None => return Err(OAuthError::invalid_request("response_type is missing")),
        }
        if !client.grant_types.iter().any(|g| g == "authorization_code") {
            return Err(OAuthError::unauthorized_client(
                "the client may not use the authorization code flow",
            ));
        }
        let scopes = parse_scope(p.scope.as_deref().unwrap_or(""))?;
        if !scopes.iter().any(|s| s == "openid") {
            return Err(OAuthError::invalid_scope("scope must include openid"));
        }
        if let Some(s) = scopes.iter().find(|s| !client.scopes.contains(s)) {
            return Err(OAuthError::invalid_scope(format!(
                "the client may not ask for {s}"
            )));
        }
        request.scopes = scopes;
        if request.state.as_ref().is_some_and(|s| s.len() > 1024)
            || request.nonce.as_ref().is_some_and(|s| s.len() > 1024)
        {
            return Err(OAuthError::invalid_request(
                "state and nonce are at most 1024 characters",
            ));
        }
        match (p.code_challenge, p.code_challenge_method.as_deref()) {
            (Some(c), Some("S256")) => {
                let valid = c.len() == 43
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !valid {
                    return Err(OAuthError::invalid_request(
                        "code_challenge must be a base64url SHA-256 (43 characters)",
                    ));
                }
                request.code_challenge = Some(c);
            }
            (Some(_), _) => {
                return Err(OAuthError::invalid_request(
                    "code_challenge_method must be S256",
                ))
            }
            (None, Some(_)) => {
                return Err(OAuthError::invalid_request("code_challenge is missing"))
            }
            (None, None) if !client.confidential => {
                return Err(OAuthError::invalid_request(
                    "a public client must use PKCE (code_challenge with S256)",
                ))
            }
            (None, None) => {}
        }
        let prompt: Vec<String> = p
            .prompt
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(bad) = prompt
            .iter()
            .find(|v| !["none", "login", "consent", "select_account"].contains(&v.as_str()))
        {
            return Err(OAuthError::invalid_request(format!("unknown prompt {bad}")));
        }
        if prompt.iter().any(|v| v == "none") && prompt.len() > 1 {
            return Err(OAuthError::invalid_request(
                "prompt=none goes with no other value",
            ));
        }
        request.prompt = prompt;
        request.max_age = match p.max_age.as_deref() {
            None | Some("") => None,
            Some(raw) => Some(
                raw.parse::<u64>()
                    .map_err(|_| OAuthError::invalid_request("max_age must be seconds"))?,
            ),
        };
        Ok(())
    })();
    Ok(match rest {
        Ok(()) => Ok(request),
        Err(e) => Err((request, e)),
    })
}

/// The live browser session a cookie names, if it satisfies `max_age`.
pub async fn browser_session(
    app: &AppState,
    cookie: Option<&str>,
    max_age: Option<u64>,
) -> Result<Option<SessionGrant>, ServiceError> {
    let Some(token) = cookie.filter(|c| !c.is_empty() && c.len() <= 256) else {
        return Ok(None);
    };
    // A `max_age` beyond a century is no bound at all.
    let started_after = max_age
        .filter(|secs| *secs < 100 * 365 * 24 * 3600)
        .map(|secs| Utc::now() - chrono::Duration::seconds(i64::try_from(secs).unwrap_or(0)));
    let db = app.db().await?;
    let session =
        oidc::live_browser_session(&**db, &accounts::digest(token), started_after).await?;
    drop(db);
    // Revocations reach Redis first for access tokens; a revoked session is revoked here
    // in PostgreSQL too, so this lookup is the whole answer.
    Ok(session)
}

/// Decides how a checked request goes on, given the browser's session.
pub async fn decide(
    app: &AppState,
    context: &RequestContext,
    request: AuthRequest,
    session: Option<SessionGrant>,
) -> Result<Next, ServiceError> {
    let none = request.prompt.iter().any(|p| p == "none");
    let login = request.prompt.iter().any(|p| p == "login");
    let session = session.filter(|_| !login);
    if let Some(s) = &session {
        let consented = consent_covers(app, s.user_id, &request).await?;
        if consented {
            let code = issue_code(app, context, &request, s).await?;
            return Ok(Next::Redirect(code));
        }
        if none {
            return Ok(Next::Redirect(error_redirect(
                app,
                &request,
                &OAuthError::consent_required("the user has not consented to this client"),
            )));
        }
    } else if none {
        return Ok(Next::Redirect(error_redirect(
            app,
            &request,
            &OAuthError::login_required("no session"),
        )));
    }
    let stage = match session {
        Some(s) => Stage::Consent { session: s },
        None => Stage::Login,
    };
    start_flow(app, request, stage).await
}

async fn consent_covers(
    app: &AppState,
    user_id: Uuid,
    request: &AuthRequest,
) -> Result<bool, ServiceError> {
    if request.prompt.iter().any(|p| p == "consent") {
        return Ok(false);
    }
    if request.first_party {
        return Ok(true);
    }
    let db = app.db().await?;
    let granted = oidc::consent(&**db, user_id, &request.client_id).await?;
    Ok(request.scopes.iter().all(|s| granted.contains(s)))
}

/// Where a flow stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Stage {
    /// Waiting for a password.
    Login,
    /// The password was right; waiting for the second factor.
    SecondFactor { challenge: String },
    /// Signed in; waiting for the user's consent.
    Consent { session: SessionGrant },
    /// A sign-up from the hosted page, on its way through the pipeline.
    SignUp {
        email: String,
        registration_id: Uuid,
    },
}

/// A flow's state in Redis.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flow {
    pub request: AuthRequest,
    pub stage: Stage,
    /// Digest of the binding cookie's value.
    pub binding: Vec<u8>,
    /// The token every form of the flow carries.
    pub csrf: String,
    /// A message for the next page (a wrong password, an expired code).
    #[serde(default)]
    pub notice: Option<String>,
    /// An upstream identity (social login) waiting for the person to prove the
    /// account of its address: linked once this flow signs in.
    #[serde(default)]
    pub pending_link: Option<String>,
}

async fn start_flow(
    app: &AppState,
    request: AuthRequest,
    stage: Stage,
) -> Result<Next, ServiceError> {
    let id = random_token("");
    let binding = random_token("");
    let flow = Flow {
        request,
        stage,
        binding: accounts::digest(&binding),
        csrf: random_token(""),
        notice: None,
        pending_link: None,
    };
    save(app, &id, &flow).await?;
    Ok(Next::Flow {
        id,
        binding: SecretString::from(binding),
    })
}

async fn save(app: &AppState, id: &str, flow: &Flow) -> Result<(), ServiceError> {
    let ttl = provider(app)?.login_ttl;
    Ok(app.stores.auth_flows.put_flow(FLOW, id, flow, ttl).await?)
}

/// Why a flow cannot go on: gone (expired, finished, or never this browser's).
#[derive(Debug)]
pub enum FlowError {
    Gone,
    Service(ServiceError),
}

impl From<ServiceError> for FlowError {
    fn from(e: ServiceError) -> Self {
        Self::Service(e)
    }
}

/// Loads a flow for this browser; with `csrf`, the form's token must match too.
pub async fn load(
    app: &AppState,
    id: &str,
    binding: Option<&str>,
    csrf: Option<&str>,
) -> Result<Flow, FlowError> {
    if id.is_empty() || id.len() > 128 {
        return Err(FlowError::Gone);
    }
    let flow: Flow = app
        .stores
        .auth_flows
        .flow(FLOW, id)
        .await
        .map_err(ServiceError::from)?
        .ok_or(FlowError::Gone)?;
    let bound = binding.is_some_and(|b| {
        bool::from(
            accounts::digest(b)
                .as_slice()
                .ct_eq(flow.binding.as_slice()),
        )
    });
    if !bound {
        tracing::warn!(
            event = "oidc_flow_refused",
            reason = "not this browser's flow"
        );
        return Err(FlowError::Gone);
    }
    if let Some(given) = csrf {
        if !bool::from(given.as_bytes().ct_eq(flow.csrf.as_bytes())) {
            tracing::warn!(event = "oidc_flow_refused", reason = "csrf token mismatch");
            return Err(FlowError::Gone);
        }
    }
    Ok(flow)
}

/// What a step of the hosted login leads to.
#[derive(Debug)]
pub enum StepOutcome {
    /// Show the flow's page again (its stage and notice say which and why).
    Page(Box<Flow>),
    /// Done: back to the client. A new browser session comes with its cookie value.
    Done {
        redirect: Redirect,
        session_cookie: Option<(SecretString, Duration)>,
    },
}

/// The password step. A wrong password, a lockout or an unverified address shows the
/// page again with a notice; a second factor moves the flow to its step.
pub async fn submit_password(
    app: &AppState,
    context: &RequestContext,
    id: &str,
    mut flow: Flow,
    login: String,
    password: SecretString,
) -> Result<StepOutcome, ServiceError> {
    let (email, username) = if login.contains('@') {
        (Some(login), None)
    } else {
        (None, Some(login))
    };
    let request = LoginRequest {
        email,
        username,
        password: Some(password),
    };
    let outcome = accounts::login(app, context, request).await;
    let notice = match outcome {
        Ok(LoginOutcome::Tokens(tokens)) => {
            return signed_in(app, context, id, flow, tokens, "password").await;
        }
        Ok(LoginOutcome::MfaRequired { challenge, .. }) => {
            flow.stage = Stage::SecondFactor {
                challenge: challenge.expose_secret().to_owned(),
            };
            flow.notice = None;
            save(app, id, &flow).await?;
            return Ok(StepOutcome::Page(Box::new(flow)));
        }
        Err(ServiceError::InvalidCredentials | ServiceError::Invalid(_)) => {
            "The email or password is not right."
        }
        Err(ServiceError::AccountLocked { .. }) => {
            "Too many attempts. Wait a few minutes and try again."
        }
        Err(ServiceError::EmailNotVerified) => {
            "Verify your email address first: follow the link in the mail we sent you."
        }
        Err(ServiceError::RegistrationPending) => {
            "Your account is still being created. Try again in a moment."
        }
        Err(ServiceError::PasswordResetRequired) => {
            "Your password must be reset before you can sign in."
        }
        Err(e) => return Err(e),
    };
    flow.notice = Some(notice.to_owned());
    save(app, id, &flow).await?;
    Ok(StepOutcome::Page(Box::new(flow)))
}

/// A passkey sign-in from the login page: it is both factors, so no second-factor step
/// follows.
pub async fn submit_passkey(
    app: &AppState,
    context: &RequestContext,
    id: &str,
    mut flow: Flow,
    ceremony: Option<String>,
    credential: Option<serde_json::Value>,
) -> Result<StepOutcome, ServiceError> {
    let notice = if credential.is_none() {
        "Your browser did not give a passkey. Sign in with your password instead."
    } else {
        match crate::service::passkeys::finish_sign_in(
            app,
            context,
            ceremony.as_deref(),
            credential,
        )
        .await
        {
            Ok(tokens) => return signed_in(app, context, id, flow, tokens, "passkey").await,
            Err(ServiceError::PasskeyRejected | ServiceError::Invalid(_)) => {
                "That passkey was not accepted. Try again, or sign in with your password."
            }
            Err(ServiceError::EmailNotVerified) => {
                "Verify your email address first: follow the link in the mail we sent you."
            }
            Err(e) => return Err(e),
        }
    };
    flow.notice = Some(notice.to_owned());
    save(app, id, &flow).await?;
    Ok(StepOutcome::Page(Box::new(flow)))
}

/// A social sign-in (an upstream identity linked to, or just made, an account) ends the
/// login step like a password would, second factor included.
pub async fn social_signed_in(
    app: &AppState,
    context: &RequestContext,
    id: &str,
    mut flow: Flow,
    user: &common::store::users::UserRecord,
    provider: &str,
) -> Result<StepOutcome, ServiceError> {
    let method = format!("social:{provider}");
    match accounts::session_or_second_factor(app, context, user, &method).await? {
        LoginOutcome::Tokens(tokens) => signed_in(app, context, id, flow, tokens, &method).await,
        LoginOutcome::MfaRequired { challenge, .. } => {
            flow.stage = Stage::SecondFactor {
                challenge: challenge.expose_secret().to_owned(),
            };
            flow.notice = None;
            save(app, id, &flow).await?;
            Ok(StepOutcome::Page(Box::new(flow)))
        }
    }
}

/// A social round trip that ended without a sign-in: its message on the login page, and
/// the identity to link once the person signs in, if any.
pub async fn social_not_signed_in(
    app: &AppState,
    id: &str,
    mut flow: Flow,
    notice: String,
    pending_link: Option<String>,
) -> Result<StepOutcome, ServiceError> {
    flow.stage = Stage::Login;
    flow.notice = Some(notice);
    flow.pending_link = pending_link;
    save(app, id, &flow).await?;
    Ok(StepOutcome::Page(Box::new(flow)))
}

/// The second-factor step.
pub async fn submit_code(
    app: &AppState,
    context: &RequestContext,
    id: &str,
    mut flow: Flow,
    code: String,
) -> Result<StepOutcome, ServiceError> {
    let Stage::SecondFactor { challenge } = &flow.stage else {
        return Ok(StepOutcome::Page(Box::new(flow)));
    };
    let method = if crate::auth::mfa::looks_like_recovery_code(&code) {
        "recovery_code"
    } else {
        "totp"
    };
    let notice = match mfa::verify_login(app, context, Some(challenge), Some(&code)).await {
        Ok(tokens) => return signed_in(app, context, id, flow, tokens, method).await,
        Err(ServiceError::InvalidMfaCode | ServiceError::Invalid(_)) => "That code is not right.",
        Err(ServiceError::AccountLocked { .. }) => {
            "Too many wrong codes. Wait a few minutes and try again."
        }
        Err(ServiceError::InvalidToken) => {
            flow.stage = Stage::Login;
            "The sign-in took too long. Enter your password again."
        }
        Err(e) => return Err(e),
    };
    flow.notice = Some(notice.to_owned());
    save(app, id, &flow).await?;
    Ok(StepOutcome::Page(Box::new(flow)))
}

/// After a login: the browser session is recorded (how the user authenticated, when),
/// then the consent screen or the code.
async fn signed_in(
    app: &AppState,
    context: &RequestContext,
    id: &str,
    mut flow: Flow,
    tokens: accounts::Tokens,
    method: &str,
) -> Result<StepOutcome, ServiceError> {
    let db = app.db().await?;
    let user_id = tokens.user_id;
    // The person proved the account: the upstream identity that waited for it is linked.
    if let Some(token) = flow.pending_link.take() {
        if let Some(user) = common::store::users::find_by_id(&**db, user_id).await? {
            if let Err(e) = crate::service::social::complete_link(app, context, &user, &token).await
            {
                tracing::info!(event = "identity_not_linked", user_id = %user_id, error = %e);
            }
        }
    }
    let session = SessionGrant {
        family_id: tokens.session_id,
        user_id,
        client_id: None,
        scope: String::new(),
        auth_time: Utc::now(),
        amr: amr_for(method),
    };
    oidc::insert_session(&**db, &session).await?;
    drop(db);
    let cookie = Some((tokens.refresh_token, tokens.refresh_ttl));
    if consent_covers(app, user_id, &flow.request).await? {
        app.stores.auth_flows.end_flow(FLOW, id).await?;
        let redirect = issue_code(app, context, &flow.request, &session).await?;
        return Ok(StepOutcome::Done {
            redirect,
            session_cookie: cookie,
        });
    }
    flow.stage = Stage::Consent { session };
    flow.notice = None;
    save(app, id, &flow).await?;
    // The session exists now: the consent page is reached with its cookie set.
    Ok(StepOutcome::Done {
        redirect: Redirect(format!("/oauth2/consent?flow={id}")),
        session_cookie: cookie,
    })
}

/// The consent step: granted scopes are remembered; a refusal goes back to the client as
/// `access_denied`.
pub async fn submit_consent(
    app: &AppState,
    context: &RequestContext,
    id: &str,
    flow: Flow,
    approve: bool,
) -> Result<StepOutcome, ServiceError> {
    let Stage::Consent { session } = &flow.stage else {
        return Ok(StepOutcome::Page(Box::new(flow)));
    };
    app.stores.auth_flows.end_flow(FLOW, id).await?;
    if !approve {
        tracing::info!(event = "oidc_consent_refused", user_id = %session.user_id, client_id = %flow.request.client_id);
        return Ok(StepOutcome::Done {
            redirect: error_redirect(
                app,
                &flow.request,
                &OAuthError::access_denied("the user refused"),
            ),
            session_cookie: None,
        });
    }
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    oidc::grant_consent(
        &*tx,
        session.user_id,
        &flow.request.client_id,
        &flow.request.scopes,
    )
    .await?;
    common::store::users::audit(
        &*tx,
        session.user_id,
        "oidc.consent_granted",
        &context.audit(Some(session.user_id)),
        json!({ "clientId": flow.request.client_id, "scopes": flow.request.scopes }),
    )
    .await?;
    tx.commit().await?;
    let redirect = issue_code(app, context, &flow.request, session).await?;
    Ok(StepOutcome::Done {
        redirect,
        session_cookie: None,
    })
}

/// Issues a code for a signed-in browser and builds the redirect that carries it.
async fn issue_code(
    app: &AppState,
    context: &RequestContext,
    request: &AuthRequest,
    session: &SessionGrant,
) -> Result<Redirect, ServiceError> {
    let p = provider(app)?;
    let code = random_token("");
    let digest = accounts::digest(&code);
    let scope = request.scopes.join(" ");
    let db = app.db().await?;
    oidc::insert_code(
        &**db,
        &NewCode {
            code_hash: &digest,
            client_id: &request.client_id,
            user_id: session.user_id,
            redirect_uri: &request.redirect_uri,
            scope: &scope,
            nonce: request.nonce.as_deref(),
            code_challenge: request.code_challenge.as_deref(),
            auth_time: session.auth_time,
            amr: &session.amr,
            expires_at: Utc::now() + chrono::Duration::from_std(p.code_ttl).unwrap_or_default(),
        },
    )
    .await?;
    tracing::info!(event = "oidc_code_issued", user_id = %session.user_id, client_id = %request.client_id, ip = ?context.ip);
    let mut params = vec![("code", code.as_str()), ("iss", p.issuer.as_str())];
    if let Some(s) = &request.state {
        params.push(("state", s));
    }
    Ok(redirect_to(&request.redirect_uri, &params))
}

/// What the sign-up step asks for: the registration fields, as the form sends them.
#[derive(Debug, Default)]
pub struct SignUpForm {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub password: Option<SecretString>,
    pub gender: Option<String>,
    pub occupation: Option<String>,
}

/// Why a sign-up was not accepted: the fields the page shows again with their problem.
#[derive(Debug)]
pub enum SignUpRefused {
    Fields(Vec<common::domain::registration::FieldError>),
    Service(ServiceError),
}

/// The sign-up step: the registration goes through the same pipeline as
/// `POST /api/v1/users` (the same rules, the same event, the consumer persists it); the
/// flow then waits for it to complete.
pub async fn submit_sign_up(
    app: &AppState,
    context: &RequestContext,
    id: &str,
    mut flow: Flow,
    form: SignUpForm,
) -> Result<Flow, SignUpRefused> {
    let request = crate::bodies::registration::RegistrationRequest {
        name: None,
        first_name: form.first_name.filter(|s| !s.trim().is_empty()),
        last_name: form.last_name.filter(|s| !s.trim().is_empty()),
        email: form.email.filter(|s| !s.trim().is_empty()),
        password: form.password,
        gender: form.gender.filter(|s| !s.is_empty()),
        sex: None,
        occupation: form.occupation.filter(|s| !s.trim().is_empty()),
        username: None,
        date_of_birth: None,
    };
    let registration = request
        .parse(
            &app.accounts.password_policy,
            app.accounts.required_profile_fields,
        )
        .map_err(SignUpRefused::Fields)?;
    let email = registration.profile.email.as_str().to_owned();
    let submission = crate::service::registration::Submission {
        registration,
        idempotency_key: None,
        request_id: context.request_id.clone(),
    };
    let submitted = crate::service::registration::submit_registration(app, submission)
        .await
        .map_err(SignUpRefused::Service)?;
    tracing::info!(event = "oidc_sign_up_submitted", registration_id = %submitted.answer.data.registration_id);
    flow.stage = Stage::SignUp {
        email,
        registration_id: submitted.answer.data.registration_id,
    };
    flow.notice = None;
    save(app, id, &flow).await.map_err(SignUpRefused::Service)?;
    Ok(flow)
}

/// Where a sign-up in flight stands: still pending (the page waits), or done, when the
/// flow goes back to the sign-in step with the address filled in and a notice.
pub async fn sign_up_progress(
    app: &AppState,
    id: &str,
    mut flow: Flow,
) -> Result<Flow, ServiceError> {
    let Stage::SignUp {
        email,
        registration_id,
    } = &flow.stage
    else {
        return Ok(flow);
    };
    let state =
        crate::service::registration::registration_status(app, email, Some(*registration_id), None)
            .await?;
    match state.status {
        "pending" => return Ok(flow),
        "completed" => {
            flow.request.login_hint = Some(email.clone());
            flow.notice = Some("Your account is ready. Sign in to continue.".to_owned());
        }
        _ => {
            flow.notice = Some(match state.reason {
                Some(common::domain::registration::FailureReason::UsernameTaken) => {
                    "That username is taken. Try another.".to_owned()
                }
                _ => "The account could not be created. Try again.".to_owned(),
            });
        }
    }
    flow.stage = Stage::Login;
    save(app, id, &flow).await?;
    Ok(flow)
}
