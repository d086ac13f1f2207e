//! `login` and `me`: password verification and an authenticated read.

use super::*;

pub(crate) async fn login(c: &CommonArgs, args: LoadArgs) -> anyhow::Result<Report> {
    let emails = Arc::new(completed_users(c, "login", 32).await?);
    let client = http();
    let url = format!("{}/api/v1/auth/login", c.api);
    let (tally, elapsed, usage) = load(c.processes(), &args, move |i| {
        let (client, url) = (client.clone(), url.clone());
        // Clients start at i = client * 10^9: spread them over the users so no account
        // sees more than a couple of logins at once (more would trip its lockout).
        let n = emails.len() as u64;
        let email = emails[((i / 1_000_000_000 + i) % n) as usize].clone();
        async move {
            let body = json!({ "email": email, "password": "bench-password-123" });
            outcome(client.post(&url).json(&body).send().await, 200)
        }
    })
    .await;
    Ok(load_report(
        "login",
        format!(
            "POST /api/v1/auth/login over 32 users with their passwords (argon2id verify with the api's ARGON2_* parameters), {}",
            mode(&args)
        ),
        tally,
        elapsed,
        "logins",
        &usage,
    ))
}

pub(crate) async fn me(c: &CommonArgs, args: LoadArgs) -> anyhow::Result<Report> {
    let email = completed_users(c, "me", 1).await?.remove(0);
    let client = http();
    let tokens: serde_json::Value = client
        .post(format!("{}/api/v1/auth/login", c.api))
        .json(&json!({ "email": email, "password": "bench-password-123" }))
        .send()
        .await?
        .json()
        .await?;
    let token = tokens["accessToken"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("login failed: {tokens}"))?
        .to_owned();
    let url = format!("{}/api/v1/auth/me", c.api);
    let (tally, elapsed, usage) = load(c.processes(), &args, move |_| {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move { outcome(client.get(&url).bearer_auth(token).send().await, 200) }
    })
    .await;
    Ok(load_report(
        "me",
        format!(
            "GET /api/v1/auth/me with an access token (EdDSA verify, Redis revocation check, PostgreSQL read), {}",
            mode(&args)
        ),
        tally,
        elapsed,
        "requests",
        &usage,
    ))
}
