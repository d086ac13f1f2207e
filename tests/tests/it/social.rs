//! Social login's own checks against the real api: identity providers are for admins,
//! must answer discovery and never show their secret; a round trip starts with PKCE,
//! state and nonce and a cookie binding it to the browser; a forged state, an unknown
//! exchange code and an unknown link token are refused. (The whole round trip against
//! oidc-provider, a certified OpenID provider, runs in Chromium in `make e2e`.)

use registrar_tests::{TestApp, TestOptions};
use reqwest::Method;
use serde_json::json;

const FRONTEND: &str = "https://app.registrar.test";

async fn spawn() -> TestApp {
    TestApp::spawn_with(TestOptions {
        api_args: vec!["--cors-origins".into(), FRONTEND.into()],
        ..Default::default()
    })
    .await
}

#[tokio::test]
async fn identity_providers_are_for_admins_must_answer_discovery_and_never_show_their_secret() {
    let app = spawn().await;
    let user = app.register_and_login().await;
    let admin = app.account_with_role("admin").await;
    // The api's own OpenID Connect provider stands in as the upstream issuer.
    let issuer = app.url("");
    let issuer = issuer.trim_end_matches('/');
    let spec = json!({
        "id": "self", "name": "Registrar itself", "issuer": issuer,
        "clientId": "registrar-client", "clientSecret": "a client secret 0123456789",
    });
    let path = "/api/v1/admin/identity-providers";
    let (status, _, _) = app
        .call(Method::POST, path, Some(&user.access), Some(&spec))
        .await;
    assert_eq!(status, 403);
    for (bad, field) in [
        (
            json!({ "id": "Bad Id", "name": "x", "issuer": issuer, "clientId": "c" }),
            "id",
        ),
        (
            json!({ "id": "callback", "name": "x", "issuer": issuer, "clientId": "c" }),
            "id",
        ),
        (
            json!({ "id": "down", "name": "x", "issuer": "http://127.0.0.1:9", "clientId": "c" }),
            "issuer",
        ),
        (
            json!({ "id": "noscope", "name": "x", "issuer": issuer, "clientId": "c", "scopes": ["email"] }),
            "scopes",
        ),
        (
            json!({ "id": "map", "name": "x", "issuer": issuer, "clientId": "c", "claimMap": {"role": "groups"} }),
            "claimMap",
        ),
    ] {
        let (status, _, body) = app
            .call(Method::POST, path, Some(&admin.access), Some(&bad))
            .await;
        assert_eq!(status, 400, "{bad} → {body}");
        assert_eq!(body["error"]["details"][0]["field"], field, "{body}");
    }
    let (status, _, created) = app
        .call(Method::POST, path, Some(&admin.access), Some(&spec))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["hasClientSecret"], true);
    assert!(
        !created.to_string().contains("a client secret"),
        "the secret is never shown"
    );
    assert_eq!(
        created["data"]["redirectUri"],
        format!("{issuer}/oauth2/social/callback")
    );
    assert_eq!(
        created["data"]["scopes"],
        json!(["openid", "email", "profile"])
    );
    let sealed: Vec<u8> = app
        .pg()
        .await
        .query_one(
            "SELECT client_secret FROM identity_providers WHERE id = 'self'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        !String::from_utf8_lossy(&sealed).contains("a client secret"),
        "stored sealed"
    );
    let (status, _, _) = app
        .call(Method::POST, path, Some(&admin.access), Some(&spec))
        .await;
    assert_eq!(status, 400, "the id is taken");

    // Offered on sign-in pages while enabled.
    let (_, _, offered) = app
        .call(Method::GET, "/api/v1/auth/identity-providers", None, None)
        .await;
    assert_eq!(offered["data"][0]["id"], "self");
    assert_eq!(
        offered["data"][0]["startUrl"],
        format!("{issuer}/oauth2/social/self")
    );
    let (status, _, _) = app
        .call(
            Method::PATCH,
            &format!("{path}/self"),
            Some(&admin.access),
            Some(&json!({ "enabled": false })),
        )
        .await;
    assert_eq!(status, 200);
    let (_, _, offered) = app
        .call(Method::GET, "/api/v1/auth/identity-providers", None, None)
        .await;
    assert_eq!(offered["data"], json!([]));
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("{path}/self"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .call(
            Method::GET,
            &format!("{path}/self"),
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_round_trip_starts_with_pkce_state_and_nonce_and_a_forged_state_or_code_is_refused() {
    let app = spawn().await;
    let admin = app.account_with_role("admin").await;
    let issuer = app.url("");
    let issuer = issuer.trim_end_matches('/');
    let (status, _, _) = app
        .call(
            Method::POST,
            "/api/v1/admin/identity-providers",
            Some(&admin.access),
            Some(&json!({ "id": "self", "name": "Registrar itself", "issuer": issuer, "clientId": "c1" })),
        )
        .await;
    assert_eq!(status, 201);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    let start = no_redirects
        .get(app.url(&format!("/oauth2/social/self?returnTo={FRONTEND}/signup")))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status().as_u16(), 303);
    let to = url::Url::parse(start.headers()["location"].to_str().unwrap()).unwrap();
    assert!(
        to.as_str()
            .starts_with(&format!("{issuer}/oauth2/authorize")),
        "{to}"
    );
    let q: std::collections::HashMap<String, String> = to.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["redirect_uri"],
        format!("{issuer}/oauth2/social/callback")
    );
    for p in ["state", "nonce", "code_challenge"] {
        assert!(q.get(p).is_some_and(|v| v.len() >= 16), "{p} missing: {to}");
    }
    let cookie = start.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cookie.starts_with("__Host-registrar_social=") && cookie.contains("HttpOnly"),
        "{cookie}"
    );

    // The state is bound to the browser: without its cookie, refused (and spent).
    let callback = format!("/oauth2/social/callback?state={}&code=abc", q["state"]);
    let answer = no_redirects.get(app.url(&callback)).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 400);
    assert!(answer.text().await.unwrap().contains("another browser"));
    let forged = no_redirects
        .get(app.url("/oauth2/social/callback?state=forged&code=abc"))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status().as_u16(), 400);

    // Only the CORS origins may be returned to; an unknown provider is a 404.
    let evil = no_redirects
        .get(app.url("/oauth2/social/self?returnTo=https://evil.example/"))
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status().as_u16(), 400);
    let unknown = no_redirects
        .get(app.url(&format!("/oauth2/social/nope?returnTo={FRONTEND}/")))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    // Codes and link tokens that were never issued.
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/social/exchange",
            None,
            Some(&json!({ "code": "sc_forged" })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("INVALID_OR_EXPIRED_TOKEN"))
    );
    let user = app.register_and_login().await;
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/v1/auth/identities",
            Some(&user.access),
            Some(&json!({ "linkToken": "sl_forged" })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, _, listed) = app
        .call(
            Method::GET,
            "/api/v1/auth/identities",
            Some(&user.access),
            None,
        )
        .await;
    assert_eq!(listed["data"], json!([]));
}
