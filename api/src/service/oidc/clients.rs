//! Registering relying parties (admins only, through the API or `api oidc-client`):
//! public or confidential, exact redirect URIs, allowed scopes and grants, token
//! lifetimes. A confidential client's secret is shown once, at creation or rotation,
//! and stored as its SHA-256 digest. Every change is audited in the acting admin's
//! trail (`oidc_client.created`, `.updated`, `.secret_rotated`, `.deleted`) and, in the
//! same transaction, appended to the outbox as a `client.*` event for the client events
//! topic.

use common::events::client::{ClientEvent, ClientEventType, ClientSettings};
use common::store::oidc::{self, OidcClient};
use common::store::user_events;
use common::store::users::AuditContext;
use secrecy::SecretString;
use serde_json::json;

use super::{random_token, GRANTS, SCOPES};
use crate::caller::Caller;
use crate::service::{accounts, ServiceError};
use crate::state::AppState;

/// Longest an access token of a client may live.
const MAX_ACCESS_TTL: i32 = 24 * 3600;
/// Longest a refresh token of a client may live.
const MAX_REFRESH_TTL: i32 = 90 * 24 * 3600;

/// What an admin asks for.
#[derive(Debug, Clone, Default)]
pub struct ClientSpec {
    pub name: Option<String>,
    /// Public clients (single-page and native apps) have no secret and must use PKCE.
    pub confidential: Option<bool>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    /// First-party clients skip the consent screen.
    pub first_party: Option<bool>,
    /// `RS256` (default) or `EdDSA`.
    pub id_token_alg: Option<String>,
    pub access_token_ttl_secs: Option<i32>,
    pub refresh_token_ttl_secs: Option<i32>,
}

/// A client as created or rotated: the secret is here once and never again.
pub struct WithSecret {
    pub client: OidcClient,
    pub secret: Option<SecretString>,
}

/// A redirect URI a client may register: absolute, without a fragment, `https`, or
/// `http` on a loopback host (development and native apps, RFC 8252 §7.3).
pub fn check_redirect_uri(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{raw} is not an absolute URL ({e})"))?;
    if url.fragment().is_some() {
        return Err(format!("{raw} has a fragment"));
    }
    if url.as_str() != raw && format!("{raw}/") != url.as_str() {
        return Err(format!("{raw} is not in its normal form ({url})"));
    }
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "{raw} must be https (http only on a loopback host)"
        )),
    }
}

fn field(name: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::invalid(name, message)
}

/// Applies a spec to a client (a new one: every default), checking every rule.
fn apply(mut c: OidcClient, spec: ClientSpec) -> Result<OidcClient, ServiceError> {
    if let Some(name) = spec.name {
        let name = name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(field("name", "must be 1-100 characters"));
        }
        c.name = name;
    }
    if let Some(uris) = spec.redirect_uris {
        for u in &uris {
            check_redirect_uri(u).map_err(|m| field("redirectUris", m))?;
        }
        c.redirect_uris = uris;
    }
    if let Some(uris) = spec.post_logout_redirect_uris {
        for u in &uris {
            check_redirect_uri(u).map_err(|m| field("postLogoutRedirectUris", m))?;
        }
        c.post_logout_redirect_uris = uris;
    }
    if let Some(scopes) = spec.scopes {
        if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            return Err(field(
                "scopes",
                format!("{bad} is not one of {}", SCOPES.join(", ")),
            ));
        }
        c.scopes = scopes;
    }
    if let Some(grants) = spec.grant_types {
        if let Some(bad) = grants.iter().find(|g| !GRANTS.contains(&g.as_str())) {
            return Err(field(
                "grantTypes",
                format!("{bad} is not one of {}", GRANTS.join(", ")),
            ));
        }
        c.grant_types = grants;
    }
    if let Some(first_party) = spec.first_party {
        c.first_party = first_party;
    }
    if let Some(alg) = spec.id_token_alg {
        if crate::auth::oidc_keys::IdTokenAlg::parse(&alg).is_none() {
            return Err(field("idTokenAlg", "must be RS256 or EdDSA"));
        }
        c.id_token_alg = alg;
    }
    if let Some(ttl) = spec.access_token_ttl_secs {
        if !(60..=MAX_ACCESS_TTL).contains(&ttl) {
            return Err(field(
                "accessTokenTtlSecs",
                format!("must be 60-{MAX_ACCESS_TTL}"),
            ));
        }
        c.access_token_ttl_secs = ttl;
    }
    if let Some(ttl) = spec.refresh_token_ttl_secs {
        if !(60..=MAX_REFRESH_TTL).contains(&ttl) {
            return Err(field(
                "refreshTokenTtlSecs",
                format!("must be 60-{MAX_REFRESH_TTL}"),
            ));
        }
        c.refresh_token_ttl_secs = ttl;
    }
    let has = |g: &str| c.grant_types.iter().any(|x| x == g);
    if c.grant_types.is_empty() {
        return Err(field("grantTypes", "must name at least one grant"));
    }
    if has("authorization_code") {
        if c.redirect_uris.is_empty() {
            return Err(field(
                "redirectUris",
                "the authorization_code grant needs at least one",
            ));
        }
        if !c.scopes.iter().any(|s| s == "openid") {
            return Err(field("scopes", "the authorization_code grant needs openid"));
        }
    }
    if has("refresh_token") && !has("authorization_code") {
        return Err(field(
            "grantTypes",
            "refresh_token comes with authorization_code",
        ));
    }
    if has("client_credentials") && !c.confidential {
        return Err(field(
            "grantTypes",
            "client_credentials is for confidential clients only",
        ));
    }
    Ok(c)
}

/// Refuses an admin whose account changed since the token was issued.
async fn ensure_actor(
    tx: &deadpool_postgres::Transaction<'_>,
    actor: Option<&Caller>,
) -> Result<(), ServiceError> {
    match actor {
        Some(c) => accounts::ensure_current(&**tx, c).await,
        None => Ok(()),
    }
}

/// A client's change, in its transaction: the audit row (`oidc_client.*`) and the
/// `client.*` event.
struct ClientChange<'a> {
    actor: Option<&'a Caller>,
    context: &'a crate::caller::RequestContext,
    kind: ClientEventType,
    client_id: &'a str,
    version: i64,
    /// The client after the change; `None` once deleted.
    client: Option<&'a OidcClient>,
    details: serde_json::Value,
}

async fn record(
    tx: &deadpool_postgres::Transaction<'_>,
    change: ClientChange<'_>,
) -> Result<(), ServiceError> {
    let actor = change.actor.map(|c| c.id);
    let ctx: AuditContext = change.context.audit(actor);
    let action = match change.kind {
        ClientEventType::Created => "oidc_client.created",
        ClientEventType::Updated => "oidc_client.updated",
        ClientEventType::SecretRotated => "oidc_client.secret_rotated",
        ClientEventType::Deleted => "oidc_client.deleted",
    };
    oidc::audit_client_change(&**tx, actor, action, &ctx, change.details).await?;
    let mut event = ClientEvent::new(change.kind, change.client_id, change.version);
    event.actor_id = actor;
    event.request_id = change.context.request_id.clone();
    if let Some(c) = change.client {
        event.settings = ClientSettings {
            name: Some(c.name.clone()),
            confidential: c.confidential,
            first_party: c.first_party,
            redirect_uris: c.redirect_uris.clone(),
            scopes: c.scopes.clone(),
            grant_types: c.grant_types.clone(),
        };
    }
    Ok(user_events::append_client_event(&**tx, &event).await?)
}

/// Registers a client; a confidential one's secret is in the answer, once.
pub async fn create(
    app: &AppState,
    actor: Option<&Caller>,
    context: &crate::caller::RequestContext,
    spec: ClientSpec,
) -> Result<WithSecret, ServiceError> {
    crate::service::require_admin(actor)?;
    let confidential = spec.confidential.unwrap_or(true);
    let now = chrono::Utc::now();
    let blank = OidcClient {
        client_id: random_token("cl_")[..27].to_owned(),
        name: String::new(),
        confidential,
        secret_hash: None,
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        scopes: vec!["openid".into(), "profile".into(), "email".into()],
        grant_types: vec!["authorization_code".into()],
        first_party: false,
        id_token_alg: "RS256".into(),
        access_token_ttl_secs: 900,
        refresh_token_ttl_secs: i32::try_from(app.accounts.refresh_ttl.as_secs())
            .unwrap_or(MAX_REFRESH_TTL)
            .min(MAX_REFRESH_TTL),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    if spec.name.is_none() {
        return Err(field("name", "is required"));
    }
    let mut client = apply(blank, spec)?;
    let secret = confidential.then(|| random_token("cs_"));
    client.secret_hash = secret.as_deref().map(accounts::digest);
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    ensure_actor(&tx, actor).await?;
    oidc::insert_client(&*tx, &client).await?;
    record(
        &tx,
        ClientChange {
            actor,
            context,
            kind: ClientEventType::Created,
            client_id: &client.client_id,
            version: client.version,
            client: Some(&client),
            details: json!({ "clientId": client.client_id, "name": client.name,
                "confidential": confidential, "redirectUris": client.redirect_uris,
                "grantTypes": client.grant_types, "scopes": client.scopes,
                "firstParty": client.first_party }),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(event = "oidc_client_created", client_id = %client.client_id, actor = ?actor.map(|c| c.id));
    Ok(WithSecret {
        client,
        secret: secret.map(SecretString::from),
    })
}

pub async fn list(app: &AppState, actor: Option<&Caller>) -> Result<Vec<OidcClient>, ServiceError> {
    crate::service::require_admin(actor)?;
    let db = app.db().await?;
    Ok(oidc::list_clients(&**db).await?)
}

pub async fn get(
    app: &AppState,
    actor: Option<&Caller>,
    id: &str,
) -> Result<OidcClient, ServiceError> {
    crate::service::require_admin(actor)?;
    let db = app.db().await?;
    oidc::find_client(&**db, id)
        .await?
        .ok_or(ServiceError::NotFound("Client"))
}

/// Changes a client (the fields the spec names); `rotate_secret` gives a confidential
/// client a new secret (in the answer, once) and the old one stops working.
pub async fn update(
    app: &AppState,
    actor: Option<&Caller>,
    context: &crate::caller::RequestContext,
    id: &str,
    spec: ClientSpec,
    rotate_secret: bool,
) -> Result<WithSecret, ServiceError> {
    crate::service::require_admin(actor)?;
    if spec.confidential.is_some() {
        return Err(field(
            "confidential",
            "cannot change; register a new client",
        ));
    }
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    ensure_actor(&tx, actor).await?;
    let current = oidc::find_client(&*tx, id)
        .await?
        .ok_or(ServiceError::NotFound("Client"))?;
    let mut client = apply(current, spec)?;
    let secret = (rotate_secret && client.confidential).then(|| random_token("cs_"));
    if rotate_secret && !client.confidential {
        return Err(field("rotateSecret", "a public client has no secret"));
    }
    if let Some(s) = &secret {
        client.secret_hash = Some(accounts::digest(s));
    }
    let version = oidc::update_client(&*tx, &client)
        .await?
        .ok_or(ServiceError::NotFound("Client"))?;
    let kind = if secret.is_some() {
        ClientEventType::SecretRotated
    } else {
        ClientEventType::Updated
    };
    record(
        &tx,
        ClientChange {
            actor,
            context,
            kind,
            client_id: &client.client_id,
            version,
            client: Some(&client),
            details: json!({ "clientId": client.client_id, "redirectUris": client.redirect_uris,
                "grantTypes": client.grant_types, "scopes": client.scopes,
                "firstParty": client.first_party, "idTokenAlg": client.id_token_alg }),
        },
    )
    .await?;
    tx.commit().await?;
    let client = get(app, actor, id).await?;
    tracing::info!(event = "oidc_client_updated", client_id = %client.client_id, actor = ?actor.map(|c| c.id), rotated = secret.is_some());
    Ok(WithSecret {
        client,
        secret: secret.map(SecretString::from),
    })
}

/// Deletes a client: its sessions end at once (refresh tokens revoked, access tokens
/// refused).
pub async fn delete(
    app: &AppState,
    actor: Option<&Caller>,
    context: &crate::caller::RequestContext,
    id: &str,
) -> Result<(), ServiceError> {
    crate::service::require_admin(actor)?;
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    ensure_actor(&tx, actor).await?;
    let deleted = oidc::delete_client(&*tx, id)
        .await?
        .ok_or(ServiceError::NotFound("Client"))?;
    let revoked = deleted.sessions;
    record(
        &tx,
        ClientChange {
            actor,
            context,
            kind: ClientEventType::Deleted,
            client_id: id,
            version: deleted.version,
            client: None,
            details: json!({ "clientId": id, "sessionsEnded": revoked.len() }),
        },
    )
    .await?;
    tx.commit().await?;
    accounts::revoke_access(app, &revoked).await?;
    tracing::info!(event = "oidc_client_deleted", client_id = %id, actor = ?actor.map(|c| c.id), sessions = revoked.len());
    Ok(())
}

/// The operators' console's client: public, PKCE, first party, its redirect URI the
/// console under the issuer (`<issuer>/console/`). The token endpoint gives it the api's
/// own access token, so the console calls the admin API as the signed-in user.
pub const CONSOLE_CLIENT_ID: &str = "registrar-console";

/// Where the console is served relative to the issuer, and its redirect URI.
pub fn console_redirect_uri(issuer: &str) -> String {
    format!("{}/console/", issuer.trim_end_matches('/'))
}

/// Registers the console's client, or brings its redirect URI in line with the issuer.
/// Runs when the console starts a sign-in (nothing is written for deployments that never
/// open it); idempotent and safe to race between api pods.
pub async fn ensure_console_client(app: &AppState, issuer: &str) -> Result<(), ServiceError> {
    let redirect = console_redirect_uri(issuer);
    let origin = issuer.trim_end_matches('/').to_owned();
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    let context = crate::caller::RequestContext::default();
    match oidc::find_client(&*tx, CONSOLE_CLIENT_ID).await? {
        Some(c) if c.redirect_uris == [redirect.clone()] => return Ok(()),
        Some(mut c) => {
            c.redirect_uris = vec![redirect];
            c.post_logout_redirect_uris = vec![format!("{origin}/console/")];
            let Some(version) = oidc::update_client(&*tx, &c).await? else {
                return Ok(());
            };
            record(
                &tx,
                ClientChange {
                    actor: None,
                    context: &context,
                    kind: ClientEventType::Updated,
                    client_id: CONSOLE_CLIENT_ID,
                    version,
                    client: Some(&c),
                    details: json!({ "clientId": CONSOLE_CLIENT_ID, "redirectUris": c.redirect_uris }),
                },
            )
            .await?;
        }
        None => {
            let now = chrono::Utc::now();
            let c = OidcClient {
                client_id: CONSOLE_CLIENT_ID.to_owned(),
                name: "Registrar console".to_owned(),
                confidential: false,
                secret_hash: None,
                redirect_uris: vec![redirect],
                post_logout_redirect_uris: vec![format!("{origin}/console/")],
                scopes: vec!["openid".into(), "profile".into(), "email".into()],
                grant_types: vec!["authorization_code".into()],
                first_party: true,
                id_token_alg: "RS256".into(),
                access_token_ttl_secs: 900,
                refresh_token_ttl_secs: 900,
                version: 1,
                created_at: now,
                updated_at: now,
            };
            if let Err(e) = oidc::insert_client(&*tx, &c).await {
                // Another pod registered it first.
                if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                    return Ok(());
                }
                return Err(e.into());
            }
            record(
                &tx,
                ClientChange {
                    actor: None,
                    context: &context,
                    kind: ClientEventType::Created,
                    client_id: CONSOLE_CLIENT_ID,
                    version: 1,
                    client: Some(&c),
                    details: json!({ "clientId": CONSOLE_CLIENT_ID, "firstParty": true }),
                },
            )
            .await?;
        }
    }
    tx.commit().await?;
    tracing::info!(
        event = "console_client_registered",
        client_id = CONSOLE_CLIENT_ID
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_must_be_https_or_loopback_http_without_fragment() {
        assert!(check_redirect_uri("https://app.example/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:3000/cb").is_ok());
        assert!(check_redirect_uri("http://localhost/cb").is_ok());
        assert!(check_redirect_uri("http://app.example/cb").is_err());
        assert!(check_redirect_uri("https://app.example/cb#x").is_err());
        assert!(check_redirect_uri("/cb").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
        assert!(check_redirect_uri("https://APP.example/cb").is_err());
    }
}
