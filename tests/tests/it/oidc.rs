//! The OpenID Connect provider against the real api and consumer: the client registry,
//! the hosted login with its second factor and browser session, and the cases a
//! certified client library does not try (openid-client runs the happy paths in the e2e
//! step): wrong redirect URIs, code reuse, PKCE mismatch, expired codes, wrong secrets,
//! `prompt=none` without a session, forms without their flow's cookie or CSRF token,
//! and the wall between the api's own tokens and a client's.

use common::events::client::{ClientEvent, ClientEventType};
use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use registrar_tests::{Account, TestApp, TestOptions};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Digest;

use crate::security::{claims, code_at, enable_totp, now_unix};

const REDIRECT: &str = "http://127.0.0.1:18999/callback";

/// A browser: a cookie jar and no automatic redirects.
struct Browser {
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
    base: String,
}

/// Where a navigation ended: a page of the provider, or a redirect away from it.
enum Landed {
    Page {
        status: u16,
        html: String,
        csp: String,
    },
    Away(url::Url),
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: BTreeMap::new(),
            base: app.url(""),
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let cookie: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let response = request
            .header("cookie", cookie.join("; "))
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if set.contains("Max-Age=0") {
                self.jar.remove(k);
            } else {
                self.jar.insert(k.to_owned(), v.to_owned());
            }
        }
        response
    }

    /// Follows the provider's own redirects.
    async fn go(&mut self, mut request: reqwest::RequestBuilder) -> Landed {
        loop {
            let response = self.send(request).await;
            let status = response.status().as_u16();
            if status == 303 || status == 302 {
                let location = response.headers()["location"].to_str().unwrap().to_owned();
                let url = url::Url::parse(&self.base)
                    .unwrap()
                    .join(&location)
                    .unwrap();
                // The console is an app of its own, though served by the api.
                if !url.as_str().starts_with(&self.base) || url.path().starts_with("/console") {
                    return Landed::Away(url);
                }
                request = self.http.get(url.as_str());
                continue;
            }
            let csp = response
                .headers()
                .get("content-security-policy")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            return Landed::Page {
                status,
                html: response.text().await.unwrap(),
                csp,
            };
        }
    }

    async fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Landed {
        let request = self.http.post(format!("{}{path}", self.base)).form(form);
        self.go(request).await
    }
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

fn page(landed: Landed) -> (u16, String, String) {
    match landed {
        Landed::Page { status, html, csp } => (status, html, csp),
        Landed::Away(url) => panic!("expected a page, went to {url}"),
    }
}

fn away(landed: Landed) -> url::Url {
    match landed {
        Landed::Away(url) => url,
        Landed::Page { status, html, .. } => panic!("expected a redirect, got {status}: {html}"),
    }
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

fn authorize_url(app: &TestApp, client_id: &str, pkce: &Pkce, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid profile email offline_access")
        .append_pair("state", "s1")
        .append_pair("nonce", "n1")
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        url.query_pairs_mut().append_pair(k, v);
    }
    url.to_string()
}

/// Registers a client through the admin API; returns its id and secret.
async fn register_client(app: &TestApp, admin: &Account, body: Value) -> (String, Option<String>) {
    let (status, _, answer) = app
        .call(
            Method::POST,
            "/api/v1/admin/oidc/clients",
            Some(&admin.access),
            Some(&body),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    (
        answer["data"]["clientId"].as_str().unwrap().to_owned(),
        answer["data"]["clientSecret"].as_str().map(str::to_owned),
    )
}

async fn first_party(app: &TestApp, admin: &Account) -> (String, String) {
    let (id, secret) = register_client(
        app,
        admin,
        json!({ "name": "App", "redirectUris": [REDIRECT], "firstParty": true,
                "scopes": ["openid", "profile", "email", "offline_access"],
                "grantTypes": ["authorization_code", "refresh_token"] }),
    )
    .await;
    (id, secret.unwrap())
}

async fn token(app: &TestApp, id: &str, secret: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let response = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(id, Some(secret))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The code exchange of a confidential client with PKCE.
async fn exchange(
    app: &TestApp,
    id: &str,
    secret: &str,
    code: &str,
    verifier: &str,
) -> (u16, Value) {
    token(
        app,
        id,
        secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// Signs in on the hosted page with a password; returns where the browser landed.
async fn sign_in(browser: &mut Browser, url: &str, account: &Account) -> Landed {
    let request = browser.http.get(url);
    let (status, html, _) = page(browser.go(request).await);
    assert_eq!(status, 200, "{html}");
    let flow = field(&html, "flow");
    let csrf = field(&html, "csrf");
    browser
        .post_form(
            "/oauth2/login",
            &[
                ("flow", &flow),
                ("csrf", &csrf),
                ("login", &account.email),
                ("password", &account.password),
            ],
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_registers_clients_whose_secret_is_shown_once_and_stored_as_a_digest() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let user = app.register_and_login().await;
    let body = json!({ "name": "Shop", "redirectUris": [REDIRECT],
                       "grantTypes": ["authorization_code", "client_credentials"] });
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/admin/oidc/clients",
            Some(&user.access),
            Some(&body),
        )
        .await;
    assert_eq!(status, 403, "only admins register clients");
    for (bad, field_name) in [
        (
            json!({ "name": "X", "redirectUris": ["http://evil.example/cb"] }),
            "redirectUris",
        ),
        (
            json!({ "name": "X", "redirectUris": [REDIRECT], "scopes": ["admin"] }),
            "scopes",
        ),
        (
            json!({ "name": "X", "confidential": false, "redirectUris": [REDIRECT],
                 "grantTypes": ["client_credentials"] }),
            "grantTypes",
        ),
        (json!({ "redirectUris": [REDIRECT] }), "name"),
    ] {
        let (status, _, answer) = app
            .call(
                Method::POST,
                "/api/v1/admin/oidc/clients",
                Some(&admin.access),
                Some(&bad),
            )
            .await;
        assert_eq!(status, 400, "{bad} → {answer}");
        assert_eq!(
            answer["error"]["details"][0]["field"], field_name,
            "{answer}"
        );
    }
    let (id, secret) = register_client(&app, &admin, body).await;
    let secret = secret.expect("a confidential client gets its secret once");
    let (_, _, shown) = app
        .call(
            Method::GET,
            &format!("/api/v1/admin/oidc/clients/{id}"),
            Some(&admin.access),
            None,
        )
        .await;
    assert!(shown["data"].get("clientSecret").is_none(), "{shown}");
    let stored: Vec<u8> = app
        .pg()
        .await
        .query_one(
            "SELECT secret_hash FROM oidc_clients WHERE client_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, sha2::Sha256::digest(secret.as_bytes()).to_vec());
    assert!(!stored
        .windows(8)
        .any(|w| secret.as_bytes().windows(8).any(|s| s == w)));

    let (status, machine) =
        token(&app, &id, &secret, &[("grant_type", "client_credentials")]).await;
    assert_eq!(status, 200, "{machine}");
    let (status, _, rotated) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/admin/oidc/clients/{id}"),
            Some(&admin.access),
            Some(&json!({ "rotateSecret": true })),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["data"]["clientSecret"].as_str().unwrap();
    let (status, refused) =
        token(&app, &id, &secret, &[("grant_type", "client_credentials")]).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, _) = token(
        &app,
        &id,
        new_secret,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200);
    let metrics = app.api_metrics().await;
    for outcome in ["ok", "invalid_client"] {
        let line = format!(
            "registrar_oidc_token_requests_total{{grant=\"client_credentials\",outcome=\"{outcome}\"}}"
        );
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }

    let actions: Vec<String> = app
        .pg()
        .await
        .query(
            "SELECT action FROM user_audit_log WHERE actor_id = $1 AND action LIKE 'oidc_client.%' ORDER BY id",
            &[&admin.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        actions,
        ["oidc_client.created", "oidc_client.secret_rotated"]
    );
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/oidc/clients/{id}"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = token(
        &app,
        &id,
        new_secret,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 401, "a deleted client is unknown");

    // Every change is on the client events topic, keyed by the client, in order, with
    // the acting admin and never the secret.
    let records = registrar_tests::kafka::read_all(
        &app.client_events_topic,
        3,
        std::time::Duration::from_secs(30),
    )
    .await;
    let events: Vec<ClientEvent> = records
        .iter()
        .map(|r| {
            assert_eq!(r.key.as_deref(), Some(id.as_bytes()));
            for s in [secret.as_bytes(), new_secret.as_bytes()] {
                assert!(
                    !r.payload.windows(s.len()).any(|w| w == s),
                    "a secret in an event"
                );
            }
            ClientEvent::decode(&r.payload).unwrap()
        })
        .collect();
    let kinds: Vec<_> = events.iter().map(|e| (e.event_type, e.version)).collect();
    assert_eq!(
        kinds,
        [
            (ClientEventType::Created, 1),
            (ClientEventType::SecretRotated, 2),
            (ClientEventType::Deleted, 3)
        ]
    );
    assert!(events
        .iter()
        .all(|e| e.client_id == id && e.actor_id == Some(admin.id)));
    assert_eq!(events[0].settings.name.as_deref(), Some("Shop"));
    assert_eq!(events[0].settings.redirect_uris, [REDIRECT]);
    assert!(events[0].settings.confidential);
    assert_eq!(
        events[2].settings.name, None,
        "a deleted client's settings are gone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosted_login_asks_for_the_second_factor_and_a_second_app_then_signs_in_without_a_prompt(
) {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let (app_a, secret_a) = first_party(&app, &admin).await;
    let (app_b, secret_b) = first_party(&app, &admin).await;
    let user = app.register_and_login().await;
    let (totp, _) = enable_totp(&app, &user).await;

    let mut browser = Browser::new(&app);
    let p = pkce();
    let landed = sign_in(&mut browser, &authorize_url(&app, &app_a, &p, &[]), &user).await;
    let (status, html, csp) = page(landed);
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("<label for=\"code\">"),
        "the second-factor page: {html}"
    );
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    // The code step ends in a redirect to the client: a browser checks `form-action`
    // along the whole redirect chain of the form.
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:18999;"),
        "{csp}"
    );
    assert!(!html.contains("<script"), "no script on the hosted pages");
    let (flow, csrf) = (field(&html, "flow"), field(&html, "csrf"));
    let (status, html, _) = page(
        browser
            .post_form(
                "/oauth2/mfa",
                &[("flow", &flow), ("csrf", &csrf), ("code", "000000")],
            )
            .await,
    );
    if status == 422 {
        assert!(html.contains("role=\"alert\""), "{html}");
    }
    let code_now = code_at(&totp, now_unix() + 30);
    let back = away(
        browser
            .post_form(
                "/oauth2/mfa",
                &[("flow", &flow), ("csrf", &csrf), ("code", &code_now)],
            )
            .await,
    );
    assert!(back.as_str().starts_with(REDIRECT), "{back}");
    assert_eq!(param(&back, "state").as_deref(), Some("s1"));
    assert_eq!(
        param(&back, "iss").as_deref(),
        Some(app.url("").trim_end_matches('/'))
    );
    let code = param(&back, "code").unwrap();
    let (status, tokens) = exchange(&app, &app_a, &secret_a, &code, &p.verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let id = claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(id["acr"], "urn:registrar:acr:2fa");
    assert_eq!(id["nonce"], "n1");
    assert_eq!(id["sub"], user.id.to_string());

    // The second app: the browser session answers, no page at all.
    let p2 = pkce();
    let back = away(
        browser
            .go(browser.http.get(authorize_url(&app, &app_b, &p2, &[])))
            .await,
    );
    let code = param(&back, "code").expect("a code without a prompt");
    let (status, tokens_b) = exchange(&app, &app_b, &secret_b, &code, &p2.verifier).await;
    assert_eq!(status, 200, "{tokens_b}");
    assert_eq!(
        claims(tokens_b["id_token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp", "mfa"])
    );
    // prompt=login asks again.
    let p3 = pkce();
    let (status, html, _) = page(
        browser
            .go(browser
                .http
                .get(authorize_url(&app, &app_b, &p3, &[("prompt", "login")])))
            .await,
    );
    assert_eq!(status, 200);
    assert!(html.contains("<label for=\"password\">"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_redirect_uris_unknown_clients_and_prompt_none_without_a_session_never_redirect_anywhere_else(
) {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let (id, _) = first_party(&app, &admin).await;
    let p = pkce();
    let mut browser = Browser::new(&app);
    let evil = authorize_url(&app, &id, &p, &[]).replace(
        &url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
        "https%3A%2F%2Fevil.example%2Fcb",
    );
    let (status, html, _) = page(browser.go(browser.http.get(evil)).await);
    assert_eq!(status, 400);
    assert!(html.contains("redirect_uri is not registered"), "{html}");
    let unknown = authorize_url(&app, "cl_nobody", &p, &[]);
    let (status, _, _) = page(browser.go(browser.http.get(unknown)).await);
    assert_eq!(status, 400);

    let none = away(
        browser
            .go(browser
                .http
                .get(authorize_url(&app, &id, &p, &[("prompt", "none")])))
            .await,
    );
    assert!(none.as_str().starts_with(REDIRECT));
    assert_eq!(param(&none, "error").as_deref(), Some("login_required"));
    assert_eq!(param(&none, "state").as_deref(), Some("s1"));
    assert!(param(&none, "iss").is_some(), "RFC 9207");
    // PKCE is S256 only: a plain challenge goes back as an error.
    let plain = authorize_url(&app, &id, &p, &[])
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let refused = away(browser.go(browser.http.get(plain)).await);
    assert_eq!(param(&refused, "error").as_deref(), Some("invalid_request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_works_once_within_its_lifetime_with_its_verifier_and_a_replay_revokes_what_it_gave()
{
    let app = TestApp::spawn_with(TestOptions {
        api_args: vec!["--oidc-code-ttl-secs".into(), "2".into()],
        ..Default::default()
    })
    .await;
    let admin = app.account_with_role("admin").await;
    let (id, secret) = first_party(&app, &admin).await;
    let user = app.register_and_login().await;
    let mut browser = Browser::new(&app);

    let p = pkce();
    let back = away(sign_in(&mut browser, &authorize_url(&app, &id, &p, &[]), &user).await);
    let code = param(&back, "code").unwrap();
    let exchange = |code: String, verifier: String, secret: String| {
        let app = &app;
        let id = id.clone();
        async move { exchange(app, &id, &secret, &code, &verifier).await }
    };
    let (status, wrong) = token(
        &app,
        &id,
        "cs_wrong",
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    assert_eq!(
        (status, wrong["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, mismatch) = exchange(code.clone(), pkce().verifier, secret.clone()).await;
    assert_eq!(
        (status, mismatch["error"].as_str()),
        (400, Some("invalid_grant")),
        "PKCE mismatch"
    );
    let (status, tokens) = exchange(code.clone(), p.verifier.clone(), secret.clone()).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let userinfo = |token: String| {
        let app = &app;
        async move {
            app.http
                .get(app.url("/oauth2/userinfo"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(userinfo(access.clone()).await, 200);
    let (status, replay) = exchange(code, p.verifier.clone(), secret.clone()).await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        userinfo(access).await,
        401,
        "the replay revoked the access token"
    );
    let (status, _) = token(
        &app,
        &id,
        &secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 400, "and its refresh token");

    let p = pkce();
    let back = away(
        browser
            .go(browser.http.get(authorize_url(&app, &id, &p, &[])))
            .await,
    );
    let late = param(&back, "code").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, expired) = exchange(late, p.verifier, secret).await;
    assert_eq!(
        (status, expired["error"].as_str()),
        (400, Some("invalid_grant")),
        "expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_their_flows_cookie_or_csrf_token_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let (id, _) = first_party(&app, &admin).await;
    let user = app.register_and_login().await;
    let mut browser = Browser::new(&app);
    let p = pkce();
    let (_, html, _) = page(
        browser
            .go(browser.http.get(authorize_url(&app, &id, &p, &[])))
            .await,
    );
    let (flow, csrf) = (field(&html, "flow"), field(&html, "csrf"));
    let form = |csrf: &str| {
        vec![
            ("flow".to_owned(), flow.clone()),
            ("csrf".to_owned(), csrf.to_owned()),
            ("login".to_owned(), user.email.clone()),
            ("password".to_owned(), user.password.clone()),
        ]
    };
    // Another browser (no binding cookie): the flow does not exist for it.
    let mut other = Browser::new(&app);
    let request = other.http.post(app.url("/oauth2/login")).form(&form(&csrf));
    let (status, html, _) = page(other.go(request).await);
    assert_eq!(status, 400, "{html}");
    // The right browser with a forged token.
    let request = browser
        .http
        .post(app.url("/oauth2/login"))
        .form(&form("forged"));
    let (status, _, _) = page(browser.go(request).await);
    assert_eq!(status, 400);
    // Neither attempt consumed the flow or signed anyone in.
    let request = browser
        .http
        .post(app.url("/oauth2/login"))
        .form(&form(&csrf));
    let back = away(browser.go(request).await);
    assert!(param(&back, "code").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_tokens_do_not_open_the_api_and_the_apis_refresh_tokens_do_not_open_the_token_endpoint(
) {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let (id, secret) = first_party(&app, &admin).await;
    let user = app.register_and_login().await;
    let mut browser = Browser::new(&app);
    let p = pkce();
    let back = away(sign_in(&mut browser, &authorize_url(&app, &id, &p, &[]), &user).await);
    let (_, tokens) = exchange(
        &app,
        &id,
        &secret,
        &param(&back, "code").unwrap(),
        &p.verifier,
    )
    .await;
    let (status, _, _) = app
        .call(
            Method::GET,
            "/api/v1/auth/me",
            tokens["access_token"].as_str(),
            None,
        )
        .await;
    assert_eq!(status, 401, "an OIDC access token is not an api token");
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({ "refreshToken": tokens["refresh_token"] })),
        )
        .await;
    assert_eq!(status, 401, "a client's refresh token is not the api's");
    let (status, _) = token(
        &app,
        &id,
        &secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &user.refresh),
        ],
    )
    .await;
    assert_eq!(status, 400, "the api's refresh token is not a client's");
    // Both sessions still work after the refusals.
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&json!({ "refreshToken": user.refresh })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = token(
        &app,
        &id,
        &secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_discovery_document_and_jwks_publish_both_key_kinds() {
    let app = TestApp::spawn_without_consumer().await;
    let doc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["issuer"], app.url("").trim_end_matches('/'));
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    let jwks = app.get_json("/oauth2/jwks").await;
    let kinds: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kty"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["OKP", "RSA"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_up_on_the_hosted_page_goes_through_the_pipeline_and_the_flow_goes_on_to_the_app() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let (id, secret) = first_party(&app, &admin).await;
    let mut browser = Browser::new(&app);
    let p = pkce();
    let (_, login, _) = page(
        browser
            .go(browser.http.get(authorize_url(&app, &id, &p, &[])))
            .await,
    );
    let flow = field(&login, "flow");
    assert!(
        login.contains(&format!("signup?flow={flow}\">Create an account")),
        "{login}"
    );
    let (status, form, _) = page(
        browser
            .go(browser
                .http
                .get(app.url(&format!("/oauth2/signup?flow={flow}"))))
            .await,
    );
    assert_eq!(status, 200, "{form}");
    let csrf = field(&form, "csrf");
    let email = format!("signup.{}@example.com", uuid::Uuid::new_v4().simple());
    // Every problem at once, the values kept, nothing submitted.
    let (status, refused, _) = page(
        browser
            .post_form(
                "/oauth2/signup",
                &[
                    ("flow", &flow),
                    ("csrf", &csrf),
                    ("email", &email),
                    ("password", "short"),
                ],
            )
            .await,
    );
    assert_eq!(status, 422);
    assert!(
        refused.contains("Password:") && !refused.contains("First name:"),
        "only the password is wrong: names are optional by default: {refused}"
    );
    assert!(refused.contains("First name (optional)"), "{refused}");
    assert!(refused.contains(&format!("value=\"{email}\"")));
    let password = "correct horse battery 1815";
    let mut landed = browser
        .post_form(
            "/oauth2/signup",
            &[
                ("flow", &flow),
                ("csrf", &csrf),
                ("firstName", "Ada"),
                ("lastName", "Lovelace"),
                ("email", &email),
                ("password", password),
                ("gender", "female"),
            ],
        )
        .await;
    // The waiting page reloads itself until the consumer persisted the account.
    for _ in 0..100 {
        match &landed {
            Landed::Page { html, .. } if html.contains("http-equiv=\"refresh\"") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                landed = browser
                    .go(browser
                        .http
                        .get(app.url(&format!("/oauth2/signup?flow={flow}"))))
                    .await;
            }
            _ => break,
        }
    }
    let (status, signin, _) = page(landed);
    assert_eq!(status, 200);
    assert!(signin.contains("Your account is ready"), "{signin}");
    assert!(
        signin.contains(&format!("value=\"{email}\"")),
        "the address filled in"
    );
    let csrf = field(&signin, "csrf");
    let back = away(
        browser
            .post_form(
                "/oauth2/login",
                &[
                    ("flow", &flow),
                    ("csrf", &csrf),
                    ("login", &email),
                    ("password", password),
                ],
            )
            .await,
    );
    let (status, tokens) = exchange(
        &app,
        &id,
        &secret,
        &param(&back, "code").unwrap(),
        &p.verifier,
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(claims(tokens["id_token"].as_str().unwrap())["email"], email);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_link_without_an_id_token_asks_before_it_ends_the_browser_session() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let (id, _) = first_party(&app, &admin).await;
    let user = app.register_and_login().await;
    let mut browser = Browser::new(&app);
    let p = pkce();
    away(sign_in(&mut browser, &authorize_url(&app, &id, &p, &[]), &user).await);
    let silent = authorize_url(&app, &id, &p, &[("prompt", "none")]);

    // Any site can embed this link: it only asks.
    let (status, html, _) = page(
        browser
            .go(browser.http.get(app.url("/oauth2/logout")))
            .await,
    );
    assert_eq!(status, 200);
    assert!(html.contains("Sign out of Registrar"), "{html}");
    let still = away(browser.go(browser.http.get(&silent)).await);
    assert!(
        param(&still, "code").is_some(),
        "the session survived the link"
    );

    let (status, html, _) = page(
        browser
            .post_form("/oauth2/logout", &[("confirm", "yes")])
            .await,
    );
    assert_eq!(status, 200);
    assert!(html.contains("You are signed out"), "{html}");
    let gone = away(browser.go(browser.http.get(&silent)).await);
    assert_eq!(param(&gone, "error").as_deref(), Some("login_required"));
}

/// The console's built-in client, redirecting to `<issuer>/console/`.
async fn console_client(app: &TestApp, admin: &Account) -> Value {
    for _ in 0..100 {
        let (_, _, list) = app
            .call(
                Method::GET,
                "/api/v1/admin/oidc/clients",
                Some(&admin.access),
                None,
            )
            .await;
        if let Some(c) = list["data"]
            .as_array()
            .and_then(|l| l.iter().find(|c| c["clientId"] == "registrar-console"))
        {
            return c.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the console's client was not registered")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_client_is_registered_by_its_first_sign_in_and_gets_the_apis_own_access_token()
{
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let redirect = app.url("/console/");
    let moderator = app.account_with_role("moderator").await;
    let mut browser = Browser::new(&app);
    let p = pkce();
    let mut url = url::Url::parse(&app.url("/oauth2/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", "registrar-console")
        .append_pair("redirect_uri", &redirect)
        .append_pair("scope", "openid profile email")
        .append_pair("state", "s1")
        .append_pair("nonce", "n1")
        .append_pair("code_challenge", &p.challenge)
        .append_pair("code_challenge_method", "S256");
    let back = away(sign_in(&mut browser, url.as_str(), &moderator).await);
    assert!(back.as_str().starts_with(&redirect), "{back}");
    let client = console_client(&app, &admin).await;
    assert_eq!(client["redirectUris"], json!([redirect]));
    assert_eq!(client["confidential"], json!(false));
    assert_eq!(client["firstParty"], json!(true));
    let code = param(&back, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("client_id", "registrar-console"),
    ];
    let exchange = |form: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let response = app
                .http
                .post(app.url("/oauth2/token"))
                .form(&form)
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let owned = |extra: Option<&str>| {
        let mut f: Vec<(&'static str, String)> =
            form.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        if let Some(v) = extra {
            f.push(("code_verifier", v.to_owned()));
        }
        f
    };
    // A public client: the verifier is the proof.
    let (status, _) = exchange(owned(None)).await;
    assert_eq!(status, 400, "no code_verifier, no tokens");
    let code2 = {
        let p2 = pkce();
        let mut url2 = url.clone();
        url2.query_pairs_mut()
            .clear()
            .append_pair("response_type", "code")
            .append_pair("client_id", "registrar-console")
            .append_pair("redirect_uri", &redirect)
            .append_pair("scope", "openid profile email")
            .append_pair("state", "s2")
            .append_pair("nonce", "n2")
            .append_pair("code_challenge", &p2.challenge)
            .append_pair("code_challenge_method", "S256");
        // The browser session signs in without a prompt.
        let landed = browser.go(browser.http.get(url2.as_str())).await;
        (param(&away(landed), "code").unwrap(), p2)
    };
    let mut f = owned(Some(&code2.1.verifier));
    f[1].1 = code2.0.clone();
    let (status, tokens) = exchange(f).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, _, me) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&access), None)
        .await;
    assert_eq!(status, 200, "the console's token is an api token: {me}");
    assert_eq!(me["data"]["role"], "moderator");
    let (status, _, _) = app
        .call(Method::GET, "/api/v1/users", Some(&access), None)
        .await;
    assert_eq!(status, 200, "a moderator lists users with it");
    let (status, _, _) = app
        .call(
            Method::GET,
            "/api/v1/admin/dead-letters",
            Some(&access),
            None,
        )
        .await;
    assert_eq!(status, 403, "but not what admins alone may see");

    // Its role changes: the console's token stops working at once.
    let (status, _, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{}", moderator.id),
            Some(&admin.access),
            Some(&json!({ "role": "user" })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .call(Method::GET, "/api/v1/auth/me", Some(&access), None)
        .await;
    assert_eq!(status, 401);
}
