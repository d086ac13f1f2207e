//! `token-code` and `token-client-credentials`: the OpenID Connect token endpoint's two
//! busiest grants. The api must run with `OIDC_ISSUER` set (`make bench` does). Clients
//! and authorization codes are written straight into PostgreSQL (as the provider
//! writes them), so only the token endpoint is measured: a code exchange locks the code
//! and the user, opens a session, audits and signs an RS256 ID token and an EdDSA access
//! token; a client-credentials grant authenticates the client, counts it against its
//! rate limit and signs an access token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::*;

const REDIRECT: &str = "http://127.0.0.1:18999/callback";

fn digest(s: &str) -> Vec<u8> {
    Sha256::digest(s.as_bytes()).to_vec()
}

async fn pg(c: &CommonArgs) -> anyhow::Result<tokio_postgres::Client> {
    let (pg, conn) = tokio_postgres::connect(&c.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    Ok(pg)
}

/// Registers a confidential client with `grants`; returns its id and secret.
async fn client(pg: &tokio_postgres::Client, grants: &[&str]) -> anyhow::Result<(String, String)> {
    let id = unique("bench-client");
    let secret = unique("cs");
    let now = chrono::Utc::now();
    let grants: Vec<String> = grants.iter().map(|g| (*g).to_owned()).collect();
    common::store::oidc::insert_client(
        pg,
        &common::store::oidc::OidcClient {
            client_id: id.clone(),
            name: "Bench".into(),
            confidential: true,
            secret_hash: Some(digest(&secret)),
            redirect_uris: vec![REDIRECT.into()],
            post_logout_redirect_uris: vec![],
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            grant_types: grants,
            first_party: true,
            id_token_alg: "RS256".into(),
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 3600,
            version: 1,
            created_at: now,
            updated_at: now,
        },
    )
    .await?;
    Ok((id, secret))
}

fn token_request(
    client: &reqwest::Client,
    api: &str,
    id: &str,
    secret: &str,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{api}/oauth2/token"))
        .basic_auth(id, Some(secret))
}

pub(crate) async fn token_client_credentials(
    c: &CommonArgs,
    args: LoadArgs,
) -> anyhow::Result<Report> {
    let pg = pg(c).await?;
    let (id, secret) = client(&pg, &["client_credentials"]).await?;
    let http = http();
    let api = c.api.clone();
    let (tally, elapsed, usage) = load(c.processes(), &args, move |_| {
        let request =
            token_request(&http, &api, &id, &secret).form(&[("grant_type", "client_credentials")]);
        async move { outcome(request.send().await, 200) }
    })
    .await;
    Ok(load_report(
        "token-client-credentials",
        format!(
            "POST /oauth2/token grant_type=client_credentials (client secret check, per-client rate count in Redis, EdDSA access token), {}",
            mode(&args)
        ),
        tally,
        elapsed,
        "grants",
        &usage,
    ))
}

pub(crate) async fn token_code(c: &CommonArgs, args: LoadArgs) -> anyhow::Result<Report> {
    let pg = pg(c).await?;
    let (id, secret) = client(&pg, &["authorization_code"]).await?;
    let users = completed_users(c, "token-code", 8).await?;
    let mut user_ids = Vec::new();
    for email in &users {
        let row = pg
            .query_one("SELECT id FROM users WHERE email = $1", &[email])
            .await?;
        user_ids.push(row.get::<_, uuid::Uuid>(0));
    }
    // Enough codes for the run at this machine's pace, issued as the provider does.
    let count = 40_000usize;
    let verifier = "bench-verifier-0123456789-0123456789-0123456789";
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let expires = chrono::Utc::now() + chrono::Duration::minutes(30);
    let amr = vec!["pwd".to_owned()];
    let codes: Vec<String> = (0..count).map(|_| unique("code")).collect();
    for chunk in codes.chunks(2000).enumerate() {
        let (n, chunk) = chunk;
        let hashes: Vec<Vec<u8>> = chunk.iter().map(|c| digest(c)).collect();
        let owners: Vec<uuid::Uuid> = (0..chunk.len())
            .map(|i| user_ids[(n * 2000 + i) % user_ids.len()])
            .collect();
        pg.execute(
            "INSERT INTO oidc_codes (code_hash, client_id, user_id, redirect_uri, scope, nonce,
                code_challenge, auth_time, amr, expires_at)
             SELECT h, $2, u, $3, 'openid profile email', 'n', $4, now(), $5, $6
             FROM unnest($1::bytea[], $7::uuid[]) AS t(h, u)",
            &[&hashes, &id, &REDIRECT, &challenge, &amr, &expires, &owners],
        )
        .await?;
    }
    let codes = Arc::new(codes);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let http = http();
    let api = c.api.clone();
    let (tally, elapsed, usage) = load(c.processes(), &args, move |_| {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let code = codes.get(i).cloned();
        let request = token_request(&http, &api, &id, &secret);
        async move {
            let Some(code) = code else {
                return ("out of codes".to_owned(), false);
            };
            let request = request.form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ]);
            outcome(request.send().await, 200)
        }
    })
    .await;
    Ok(load_report(
        "token-code",
        format!(
            "POST /oauth2/token grant_type=authorization_code with PKCE (code and user locked, session opened and audited, RS256 ID token and EdDSA access token signed), {}",
            mode(&args)
        ),
        tally,
        elapsed,
        "grants",
        &usage,
    ))
}
