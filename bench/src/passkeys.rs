//! `passkeys`: passkey-first registrations end to end (no password, so nothing to hash:
//! the pace is the intake's, not argon2's) and passkey sign-ins per second with the
//! api's CPU per sign-in. A software authenticator (ES256) answers the ceremonies.

use super::*;
use crate::authenticator::SoftAuthenticator;

/// The page origin the authenticator claims: the api's address by the name `localhost`
/// (the default relying party of an api without `OIDC_ISSUER`).
fn origin(api: &str) -> String {
    let mut url = url::Url::parse(api)
        .unwrap_or_else(|_| url::Url::parse("http://localhost").expect("a URL"));
    let _ = url.set_host(Some("localhost"));
    url.origin().ascii_serialization()
}

/// One passkey-first sign-up: options, the authenticator's answer, the registration.
/// Returns the polling location.
async fn sign_up(
    client: &reqwest::Client,
    api: &str,
    origin: &str,
    email: &str,
    authenticator: &mut SoftAuthenticator,
) -> Result<String, String> {
    let options: serde_json::Value = client
        .post(format!("{api}/api/v1/auth/passkey/register/options"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .map_err(|_| "options: error".to_owned())?
        .json()
        .await
        .map_err(|_| "options: not JSON".to_owned())?;
    let credential = authenticator.create(&options["options"], origin, None);
    let r = client
        .post(format!("{api}/api/v1/auth/passkey/register"))
        .json(&json!({
            "ceremonyId": options["ceremonyId"], "credential": credential,
            "email": email, "name": "Bench Passkey",
        }))
        .send()
        .await
        .map_err(|_| "register: error".to_owned())?;
    if r.status() != 202 {
        return Err(r.status().as_u16().to_string());
    }
    Ok(location_of(&r).unwrap_or_default())
}

pub(crate) async fn passkey_sign_ups(c: &CommonArgs, args: E2eArgs) -> anyhow::Result<Report> {
    let client = http();
    let run = unique("passkey");
    let api = c.api.clone();
    let origin = origin(&api);
    let load_args = LoadArgs {
        concurrency: 0,
        rate: args.rate,
        seconds: args.seconds,
    };
    let (tally, elapsed, usage) = load(c.processes(), &load_args, move |i| {
        let (client, api, origin) = (client.clone(), api.clone(), origin.clone());
        let email = format!("{run}-{i}@bench.example");
        async move {
            let mut authenticator = SoftAuthenticator::new();
            match sign_up(&client, &api, &origin, &email, &mut authenticator).await {
                Ok(location) => {
                    if wait_completed(&client, &api, &location, Duration::from_secs(60)).await {
                        ("completed".into(), true)
                    } else {
                        ("not completed in 60 s".into(), false)
                    }
                }
                Err(e) => (e, false),
            }
        }
    })
    .await;
    Ok(load_report(
        "passkey-sign-up",
        format!(
            "Passkey-first sign-up (options, ES256 attestation, POST) then poll every 5 ms until completed, open loop at {} sign-ups/s for {} s; broker: {}",
            args.rate, args.seconds, c.broker_storage
        ),
        tally,
        elapsed,
        "completed",
        &usage,
    ))
}

pub(crate) async fn passkey_sign_ins(c: &CommonArgs, args: LoadArgs) -> anyhow::Result<Report> {
    const ACCOUNTS: usize = 64;
    let client = http();
    let api = c.api.clone();
    let origin = origin(&api);
    let run = unique("passkey-sign-in");
    // Accounts with a passkey each; one sign-in at a time per authenticator, so its
    // signature counter only goes up.
    let mut accounts = Vec::with_capacity(ACCOUNTS);
    for n in 0..ACCOUNTS {
        let mut authenticator = SoftAuthenticator::new();
        let email = format!("{run}-{n}@bench.example");
        let location = sign_up(&client, &api, &origin, &email, &mut authenticator)
            .await
            .map_err(|e| anyhow::anyhow!("passkey sign-up refused: {e}"))?;
        anyhow::ensure!(
            wait_completed(&client, &api, &location, Duration::from_secs(60)).await,
            "passkey sign-up of {email} did not complete"
        );
        accounts.push(tokio::sync::Mutex::new(authenticator));
    }
    let accounts = Arc::new(accounts);
    let (tally, elapsed, usage) = load(c.processes(), &args, move |i| {
        let (client, api, origin, accounts) = (
            client.clone(),
            api.clone(),
            origin.clone(),
            accounts.clone(),
        );
        async move {
            let n = accounts.len() as u64;
            let mut authenticator = accounts[((i / 1_000_000_000 + i) % n) as usize]
                .lock()
                .await;
            let options: serde_json::Value = match client
                .post(format!("{api}/api/v1/auth/passkey/login/options"))
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => match r.json().await {
                    Ok(v) => v,
                    Err(_) => return ("options: not JSON".into(), false),
                },
                Ok(r) => return (format!("options: {}", r.status().as_u16()), false),
                Err(_) => return ("options: error".into(), false),
            };
            let assertion = authenticator.get(&options["options"], &origin, None);
            outcome(
                client
                    .post(format!("{api}/api/v1/auth/passkey/login"))
                    .json(&json!({ "ceremonyId": options["ceremonyId"], "credential": assertion }))
                    .send()
                    .await,
                200,
            )
        }
    })
    .await;
    Ok(load_report(
        "passkey-sign-in",
        format!(
            "Passkey sign-in (options, ES256 assertion, POST: challenge from Redis, credential lock and counter update, session) over {ACCOUNTS} accounts, {}",
            mode(&args)
        ),
        tally,
        elapsed,
        "sign-ins",
        &usage,
    ))
}
