//! The hosted login pages: sign in (password), the second factor, consent, and the
//! provider's own error and message pages. Rendered on the server (they work without
//! JavaScript) with auto-escaping templates; every page has a strict CSP (no script at
//! all; forms post only to this origin and, when a step ends, to the client's redirect
//! origin), refuses framing, and is never cached. Every form carries the flow's CSRF
//! token, and the flow is bound to the browser by a cookie.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::caller::RequestContext;
use crate::service::oidc::authorize::{
    self, Flow, FlowError, SignUpForm, SignUpRefused, Stage, StepOutcome,
};
use crate::service::oidc::provider;
use crate::state::AppState;

/// The browser session: the session's refresh token, never readable by scripts.
pub const SESSION_COOKIE: &str = "__Host-registrar_session";
/// Binds a flow to the browser that started it (one per flow, by the id's prefix).
const FLOW_COOKIE_PREFIX: &str = "__Host-registrar_flow_";

const TEMPLATES: &[(&str, &str)] = &[
    (
        "layout.html",
        include_str!("../../templates/oidc/layout.html"),
    ),
    (
        "login.html",
        include_str!("../../templates/oidc/login.html"),
    ),
    ("mfa.html", include_str!("../../templates/oidc/mfa.html")),
    (
        "consent.html",
        include_str!("../../templates/oidc/consent.html"),
    ),
    (
        "message.html",
        include_str!("../../templates/oidc/message.html"),
    ),
    (
        "signup.html",
        include_str!("../../templates/oidc/signup.html"),
    ),
];
const STYLESHEET: &str = include_str!("../../templates/oidc/login.css");
const PASSKEY_SCRIPT: &str = include_str!("../../templates/oidc/passkey.js");

fn templates() -> &'static minijinja::Environment<'static> {
    static ENV: OnceLock<minijinja::Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = minijinja::Environment::new();
        for (name, source) in TEMPLATES {
            // Built-in templates: a broken one fails the page test, not a request.
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(event = "template_not_loaded", template = name, error = %e);
            }
        }
        env
    })
}

/// A page with the strict headers; `form_target` adds the client's origin to
/// `form-action`: any step of a flow may end in a redirect to the client, and a
/// browser checks `form-action` along a form's whole redirect chain.
fn page(
    status: StatusCode,
    template: &str,
    ctx: minijinja::Value,
    form_target: Option<&str>,
) -> Response {
    let html = templates()
        .get_template(template)
        .and_then(|t| t.render(ctx))
        .unwrap_or_else(|e| {
            tracing::error!(event = "page_not_rendered", template, error = %e);
            "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
        });
    let origin = form_target
        .and_then(|u| url::Url::parse(u).ok())
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    // The login page alone runs a script of this origin (passkeys: the options come
    // from this origin's api); every other page has none.
    let script = if template == "login.html" {
        " script-src 'self'; connect-src 'self';"
    } else {
        ""
    };
    let csp = format!(
        "default-src 'none';{script} style-src 'self'; img-src 'self'; form-action 'self'{origin}; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

pub fn error_page(status: StatusCode, message: &str) -> Response {
    page(
        status,
        "message.html",
        minijinja::context! { title => "Sign-in problem", message => message },
        None,
    )
}

pub fn message_page(title: &str, message: &str) -> Response {
    page(
        StatusCode::OK,
        "message.html",
        minijinja::context! { title => title, message => message },
        None,
    )
}

/// A page that asks before doing something: a button that posts `hidden` to `action`
/// (`then`: where that may redirect to, for `form-action`).
pub fn confirm_page(
    title: &str,
    message: &str,
    action: &str,
    hidden: &[(&str, String)],
    button: &str,
    then: Option<&str>,
) -> Response {
    page(
        StatusCode::OK,
        "message.html",
        minijinja::context! {
            title => title, message => message, form_action => action,
            hidden => hidden, button => button,
        },
        then,
    )
}

/// A 303 to `location` (a GET, whatever the request's method was).
pub fn redirect(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(response: &mut Response, name: &str, value: &str, max_age: Duration) {
    let v = format!(
        "{name}={value}; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Lax",
        max_age.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&v) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

pub fn clear_cookie(response: &mut Response, name: &str, path: &str) {
    let v = format!("{name}=; Path={path}; Max-Age=0; HttpOnly; Secure; SameSite=Lax");
    if let Ok(v) = HeaderValue::from_str(&v) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn flow_cookie_name(id: &str) -> String {
    let short: String = id.chars().take(12).collect();
    format!("{FLOW_COOKIE_PREFIX}{short}")
}

/// A new flow: its binding cookie, and on to its page.
pub fn start_flow(id: &str, binding: &SecretString) -> Response {
    let mut r = redirect(&format!("/oauth2/login?flow={id}"));
    set_cookie(
        &mut r,
        &flow_cookie_name(id),
        binding.expose_secret(),
        Duration::from_secs(24 * 3600),
    );
    r
}

/// The page of a flow's stage.
async fn flow_page(app: &AppState, id: &str, flow: &Flow) -> Response {
    let r = &flow.request;
    match &flow.stage {
        Stage::Login => {
            let (signup_url, reset_url) = provider(app)
                .map(|p| (p.signup_url.clone(), p.password_reset_url.clone()))
                .unwrap_or_default();
            // Without a sign-up page of your own, the hosted one.
            let signup_url = if signup_url.is_empty() {
                format!("/oauth2/signup?flow={id}")
            } else {
                signup_url
            };
            // A page without them is better than no page.
            let providers: Vec<(String, String)> = crate::service::social::offered(app)
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|p| (format!("/oauth2/social/{}?flow={id}", p.id), p.name))
                .collect();
            page(
                StatusCode::OK,
                "login.html",
                minijinja::context! {
                    title => "Sign in", client => &r.client_name, notice => &flow.notice,
                    flow => id, csrf => &flow.csrf, login_hint => r.login_hint.clone().unwrap_or_default(),
                    signup_url => signup_url, reset_url => reset_url, providers => providers,
                },
                Some(&r.redirect_uri),
            )
        }
        Stage::SecondFactor { .. } => page(
            StatusCode::OK,
            "mfa.html",
            minijinja::context! {
                title => "Two-step verification", client => &r.client_name, notice => &flow.notice,
                flow => id, csrf => &flow.csrf,
            },
            Some(&r.redirect_uri),
        ),
        Stage::SignUp { .. } => page(
            StatusCode::OK,
            "message.html",
            minijinja::context! {
                title => "Creating your account", client => &r.client_name, refresh => 1,
                message => "Your account is being created. This page moves on by itself in a moment.",
            },
            None,
        ),
        Stage::Consent { .. } => {
            let scopes: Vec<&str> = r
                .scopes
                .iter()
                .filter_map(|s| match s.as_str() {
                    "openid" => Some("know who you are (your account id)"),
                    "profile" => Some("see your name and profile"),
                    "email" => Some("see your email address"),
                    "offline_access" => Some("stay signed in when you are away"),
                    _ => None,
                })
                .collect();
            page(
                StatusCode::OK,
                "consent.html",
                minijinja::context! {
                    title => "Allow access?", client_name => &r.client_name, scopes => scopes,
                    flow => id, csrf => &flow.csrf,
                },
                Some(&r.redirect_uri),
            )
        }
    }
}

fn gone() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "This sign-in expired or was opened in another browser. Go back to the app and start again.",
    )
}

fn failed(e: crate::service::ServiceError) -> Response {
    let e = crate::service::oidc::OAuthError::from(e);
    if e.status == 503 {
        error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is unavailable right now. Try again in a moment.",
        )
    } else {
        error_page(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.")
    }
}

#[derive(Debug, Deserialize)]
pub struct FlowQuery {
    flow: Option<String>,
}

async fn load(
    app: &AppState,
    headers: &HeaderMap,
    id: &str,
    csrf: Option<&str>,
) -> Result<Flow, Response> {
    let binding = cookie(headers, &flow_cookie_name(id));
    match authorize::load(app, id, binding.as_deref(), csrf).await {
        Ok(f) => Ok(f),
        Err(FlowError::Gone) => Err(gone()),
        Err(FlowError::Service(e)) => Err(failed(e)),
    }
}

/// The flow a form was posted for, its binding cookie and CSRF token checked. A form
/// of another step than the flow is at (a second tab, the back button) gets the page of
/// the step the flow is at instead.
async fn posted(
    app: &AppState,
    headers: &HeaderMap,
    flow: Option<String>,
    csrf: Option<String>,
    expected: fn(&Stage) -> bool,
) -> Result<(String, Flow), Response> {
    let id = flow.unwrap_or_default();
    let flow = load(app, headers, &id, Some(csrf.as_deref().unwrap_or(""))).await?;
    if !expected(&flow.stage) {
        return Err(flow_page(app, &id, &flow).await);
    }
    Ok((id, flow))
}

/// `GET /oauth2/login?flow=…` and `GET /oauth2/consent?flow=…`: the flow's page.
pub async fn show(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<FlowQuery>,
) -> Response {
    let id = q.flow.unwrap_or_default();
    match load(&app, &headers, &id, None).await {
        Ok(flow) => flow_page(&app, &id, &flow).await,
        Err(r) => r,
    }
}

async fn finish(
    app: &AppState,
    id: &str,
    outcome: Result<StepOutcome, crate::service::ServiceError>,
) -> Response {
    match outcome {
        Ok(StepOutcome::Page(flow)) => {
            let mut r = flow_page(app, id, &flow).await;
            if flow.notice.is_some() {
                *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            }
            r
        }
        Ok(StepOutcome::Done {
            redirect: to,
            session_cookie,
        }) => {
            let mut r = redirect(&to.0);
            if let Some((token, ttl)) = session_cookie {
                set_cookie(&mut r, SESSION_COOKIE, token.expose_secret(), ttl);
            }
            if !to.0.starts_with("/oauth2/") {
                clear_cookie(&mut r, &flow_cookie_name(id), "/");
            }
            r
        }
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    flow: Option<String>,
    csrf: Option<String>,
    login: Option<String>,
    password: Option<String>,
}

/// `POST /oauth2/login`
pub async fn login(
    State(app): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let (id, flow) = match posted(&app, &headers, f.flow, f.csrf, |s| {
        matches!(s, Stage::Login)
    })
    .await
    {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let login = f.login.unwrap_or_default().trim().to_owned();
    let password = SecretString::from(f.password.unwrap_or_default());
    let outcome = authorize::submit_password(&app, &context, &id, flow, login, password).await;
    finish(&app, &id, outcome).await
}

#[derive(Deserialize)]
pub struct CodeForm {
    flow: Option<String>,
    csrf: Option<String>,
    code: Option<String>,
}

/// `POST /oauth2/mfa`
pub async fn second_factor(
    State(app): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Response {
    let (id, flow) = match posted(&app, &headers, f.flow, f.csrf, |s| {
        matches!(s, Stage::SecondFactor { .. })
    })
    .await
    {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let code = f.code.unwrap_or_default().trim().to_owned();
    let outcome = authorize::submit_code(&app, &context, &id, flow, code).await;
    finish(&app, &id, outcome).await
}

#[derive(Deserialize)]
pub struct ConsentForm {
    flow: Option<String>,
    csrf: Option<String>,
    decision: Option<String>,
}

/// `POST /oauth2/consent`
pub async fn consent(
    State(app): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Form(f): Form<ConsentForm>,
) -> Response {
    let (id, flow) = match posted(&app, &headers, f.flow, f.csrf, |s| {
        matches!(s, Stage::Consent { .. })
    })
    .await
    {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let approve = f.decision.as_deref() == Some("allow");
    let outcome = authorize::submit_consent(&app, &context, &id, flow, approve).await;
    finish(&app, &id, outcome).await
}

#[derive(Deserialize)]
pub struct PasskeyForm {
    flow: Option<String>,
    csrf: Option<String>,
    ceremony: Option<String>,
    credential: Option<String>,
}

/// `POST /oauth2/login/passkey`: the login page's passkey answer (autofill or button).
pub async fn login_with_passkey(
    State(app): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Form(f): Form<PasskeyForm>,
) -> Response {
    let (id, flow) = match posted(&app, &headers, f.flow, f.csrf, |s| {
        matches!(s, Stage::Login)
    })
    .await
    {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let credential = f
        .credential
        .as_deref()
        .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok());
    let outcome =
        authorize::submit_passkey(&app, &context, &id, flow, f.ceremony, credential).await;
    finish(&app, &id, outcome).await
}

/// Binds a social round trip to the browser that started it.
const SOCIAL_COOKIE: &str = "__Host-registrar_social";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SocialStart {
    flow: Option<String>,
    return_to: Option<String>,
}

/// `GET /oauth2/social/{provider}?flow=…` (the hosted login) or `?returnTo=…` (a
/// frontend among the CORS origins): off to the upstream provider.
pub async fn social_start(
    State(app): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(provider): axum::extract::Path<String>,
    Query(q): Query<SocialStart>,
) -> Response {
    use crate::service::social::{self, After};
    let after = match (q.flow, q.return_to) {
        (Some(id), None) => match load(&app, &headers, &id, None).await {
            Ok(flow) if matches!(flow.stage, Stage::Login) => After::Hosted { flow: id },
            Ok(flow) => return flow_page(&app, &id, &flow).await,
            Err(page) => return page,
        },
        (None, Some(to)) if social::allowed_return(&app, &to) => After::App { return_to: to },
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in link is not valid: it names no sign-in in progress and no allowed page to return to.",
            )
        }
    };
    let binding = crate::service::social::binding_token();
    match social::start(&app, &provider, after, &binding).await {
        Ok(url) => {
            let mut r = redirect(&url);
            set_cookie(&mut r, SOCIAL_COOKIE, &binding, Duration::from_secs(600));
            r
        }
        Err(crate::service::ServiceError::NotFound(_)) => {
            error_page(StatusCode::NOT_FOUND, "There is no such way to sign in.")
        }
        Err(e) => failed(e),
    }
}

#[derive(Deserialize)]
pub struct SocialCallback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
}

/// Where the fragment of a frontend's return goes: `#key=value&…`, escaped.
fn back_to(return_to: &str, pairs: &[(&str, &str)]) -> Response {
    let fragment: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect();
    let base = return_to.split('#').next().unwrap_or(return_to);
    redirect(&format!("{base}#{}", fragment.join("&")))
}

/// `GET /oauth2/social/callback`: the upstream provider sends the browser back here.
pub async fn social_callback(
    State(app): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Query(q): Query<SocialCallback>,
) -> Response {
    use crate::service::social::{self, After, Outcome};
    let binding = cookie(&headers, SOCIAL_COOKIE);
    let finished = social::finish(
        &app,
        &context,
        q.state.as_deref(),
        q.code.as_deref(),
        q.error.as_deref(),
        binding.as_deref(),
    )
    .await;
    let mut response = match finished {
        Err(crate::service::ServiceError::Forbidden) => error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in expired, was used already or was started in another browser. Start again.",
        ),
        Err(e) => failed(e),
        Ok((After::Hosted { flow: id }, outcome)) => {
            let flow = match load(&app, &headers, &id, None).await {
                Ok(flow) => flow,
                Err(page) => return page,
            };
            let step = match outcome {
                Outcome::SignedIn { user, provider } => {
                    authorize::social_signed_in(&app, &context, &id, flow, &user, &provider).await
                }
                Outcome::LinkRequired { token, link } => {
                    let notice = format!(
                        "An account with the address {} exists. Sign in to it to link your {} account.",
                        link.email, link.provider_name
                    );
                    authorize::social_not_signed_in(&app, &id, flow, notice, Some(token)).await
                }
                Outcome::Refused(message) => {
                    authorize::social_not_signed_in(&app, &id, flow, message.to_owned(), None)
                        .await
                }
            };
            match step {
                Ok(StepOutcome::Page(_)) => redirect(&format!("/oauth2/login?flow={id}")),
                other => finish(&app, &id, other).await,
            }
        }
        Ok((After::App { return_to }, outcome)) => match outcome {
            Outcome::SignedIn { user, provider } => {
                match social::exchange_code_for(&app, &user, &provider).await {
                    Ok(code) => back_to(&return_to, &[("socialCode", &code)]),
                    Err(e) => failed(e),
                }
            }
            Outcome::LinkRequired { token, link } => back_to(
                &return_to,
                &[("socialLink", &token), ("provider", &link.provider_name), ("email", &link.email)],
            ),
            Outcome::Refused(message) => back_to(&return_to, &[("socialError", message)]),
        },
    };
    clear_cookie(&mut response, SOCIAL_COOKIE, "/");
    response
}

/// `GET /oauth2/assets/passkey.js`
pub async fn passkey_script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        PASSKEY_SCRIPT,
    )
        .into_response()
}

/// `GET /oauth2/assets/login.css`
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// The sign-up form of a flow, with what was wrong with the last attempt.
fn sign_up_page(
    app: &AppState,
    id: &str,
    flow: &Flow,
    values: &[(&str, String)],
    errors: &[common::domain::registration::FieldError],
) -> Response {
    let label = |field: &str| match field {
        "firstName" => "First name",
        "lastName" => "Last name",
        "email" => "Email",
        "password" => "Password",
        "gender" => "Gender",
        "occupation" => "Occupation",
        _ => "Registration",
    };
    let errors: Vec<minijinja::Value> = errors
        .iter()
        .map(|e| minijinja::context! { label => label(&e.field), message => &e.message })
        .collect();
    let values: std::collections::BTreeMap<&str, &String> =
        values.iter().map(|(k, v)| (*k, v)).collect();
    let genders: Vec<&str> = common::domain::registration::Gender::ALL
        .iter()
        .map(|g| g.as_str())
        .collect();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    page(
        status,
        "signup.html",
        minijinja::context! {
            title => "Create your account", client => &flow.request.client_name,
            flow => id, csrf => &flow.csrf, errors => errors, values => values, genders => genders,
            min_length => app.accounts.password_policy.min_chars(),
            required => app.accounts.required_profile_fields.names(),
        },
        None,
    )
}

/// `GET /oauth2/signup?flow=…`: the form, or while a sign-up is in flight the waiting
/// page, which reloads itself until the account exists and the sign-in step follows.
pub async fn sign_up_show(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<FlowQuery>,
) -> Response {
    let id = q.flow.unwrap_or_default();
    let flow = match load(&app, &headers, &id, None).await {
        Ok(flow) => flow,
        Err(r) => return r,
    };
    match flow.stage {
        Stage::Login => sign_up_page(&app, &id, &flow, &[], &[]),
        Stage::SignUp { .. } => match authorize::sign_up_progress(&app, &id, flow).await {
            Ok(flow) if matches!(flow.stage, Stage::SignUp { .. }) => {
                flow_page(&app, &id, &flow).await
            }
            Ok(_) => redirect(&format!("/oauth2/login?flow={id}")),
            Err(e) => failed(e),
        },
        _ => flow_page(&app, &id, &flow).await,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignUpFields {
    flow: Option<String>,
    csrf: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
    password: Option<String>,
    gender: Option<String>,
    occupation: Option<String>,
}

/// `POST /oauth2/signup`
pub async fn sign_up(
    State(app): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    Form(f): Form<SignUpFields>,
) -> Response {
    let (id, flow) = match posted(&app, &headers, f.flow, f.csrf, |s| {
        matches!(s, Stage::Login)
    })
    .await
    {
        Ok(posted) => posted,
        Err(page) => return page,
    };
    let values = [
        ("firstName", f.first_name.clone().unwrap_or_default()),
        ("lastName", f.last_name.clone().unwrap_or_default()),
        ("email", f.email.clone().unwrap_or_default()),
        ("gender", f.gender.clone().unwrap_or_default()),
        ("occupation", f.occupation.clone().unwrap_or_default()),
    ];
    let form = SignUpForm {
        first_name: f.first_name,
        last_name: f.last_name,
        email: f.email,
        password: f.password.map(SecretString::from),
        gender: f.gender,
        occupation: f.occupation,
    };
    match authorize::submit_sign_up(&app, &context, &id, flow.clone(), form).await {
        Ok(_) => redirect(&format!("/oauth2/signup?flow={id}")),
        Err(SignUpRefused::Fields(errors)) => sign_up_page(&app, &id, &flow, &values, &errors),
        Err(SignUpRefused::Service(crate::service::ServiceError::RegistrationPending)) => {
            let errors = [common::domain::registration::FieldError::new(
                "email",
                "a sign-up of this address is already in progress",
            )];
            sign_up_page(&app, &id, &flow, &values, &errors)
        }
        Err(SignUpRefused::Service(e)) => failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_labelled_fields_and_escapes_what_it_is_given() {
        let ctx = minijinja::context! {
            title => "T", client => "<App>", notice => "n", flow => "f", csrf => "c",
            login_hint => "", signup_url => "/s", reset_url => "",
            scopes => vec!["see your email address"], client_name => "<App>",
            errors => vec![minijinja::context! { label => "Email", message => "is required" }],
            values => std::collections::BTreeMap::<&str, &str>::new(),
            providers => vec![("/oauth2/social/u?flow=f", "<Upstream>")],
            genders => vec!["male"], min_length => 12, required => vec!["email", "gender"], message => "m", refresh => 1,
        };
        let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/oidc"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "html")
            })
            .count();
        assert_eq!(on_disk, TEMPLATES.len(), "every page template is built in");
        for (name, _) in TEMPLATES.iter().filter(|(n, _)| *n != "layout.html") {
            let html = templates()
                .get_template(name)
                .and_then(|t| t.render(&ctx))
                .unwrap_or_else(|e| panic!("{name}: {e:#}"));
            assert!(
                html.contains("&lt;App&gt;") || *name == "message.html",
                "{name}: {html}"
            );
            // No inline script anywhere; the login page alone loads its passkey script
            // (of this origin: its CSP allows `script-src 'self'`).
            let scripts = html.matches("<script").count();
            if *name == "login.html" {
                assert_eq!(scripts, 1, "{name}");
                assert!(html.contains(r#"<script src="/oauth2/assets/passkey.js" defer></script>"#));
                assert!(html.contains("Continue with &lt;Upstream&gt;"), "{html}");
            } else {
                assert_eq!(scripts, 0, "{name}");
            }
            for id in html.split("<input id=\"").skip(1) {
                let id = id.split('"').next().unwrap_or_default();
                assert!(
                    html.contains(&format!("<label for=\"{id}\"")),
                    "{name}: #{id} has no label"
                );
            }
        }
    }
}
