//! The token endpoint's grants (authorization code with PKCE, refresh-token rotation,
//! client credentials), and userinfo, introspection (RFC 7662), revocation (RFC 7009)
//! and RP-initiated logout.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use common::store::oidc::{self, OidcClient, SessionGrant};
use common::store::sessions;
use common::store::users::{self, UserRecord};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::claims::{acr_for, user_claims, AccessClaims, HintClaims};
use super::{authenticate_client, limit_client, parse_scope, provider, OAuthError};
use crate::auth::oidc_keys::IdTokenAlg;
use crate::caller::RequestContext;
use crate::service::accounts::{self, SessionKind};
use crate::service::ServiceError;
use crate::state::AppState;

/// A token request's form, as sent (client credentials already taken from the
/// `Authorization` header or the form).
#[derive(Debug, Default)]
pub struct TokenParams {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<SecretString>,
    pub scope: Option<String>,
}

/// A token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Debug)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: u64,
    pub id_token: Option<String>,
    pub refresh_token: Option<SecretString>,
    pub scope: String,
}

/// The token endpoint.
pub async fn token(
    app: &AppState,
    context: &RequestContext,
    client_id: &str,
    client_secret: Option<&str>,
    params: TokenParams,
) -> Result<TokenResponse, OAuthError> {
    provider(app)?;
    let client = authenticate_client(app, client_id, client_secret).await?;
    limit_client(app, &client.client_id).await?;
    let grant = params
        .grant_type
        .clone()
        .ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
    if !super::GRANTS.contains(&grant.as_str()) {
        return Err(OAuthError::unsupported_grant_type(format!(
            "{grant} is not supported"
        )));
    }
    if !client.grant_types.contains(&grant) {
        return Err(OAuthError::unauthorized_client(format!(
            "the client may not use {grant}"
        )));
    }
    match grant.as_str() {
        "authorization_code" => authorization_code(app, context, &client, params).await,
        "refresh_token" => refresh(app, context, &client, params).await,
        _ => client_credentials(app, &client, params),
    }
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

async fn authorization_code(
    app: &AppState,
    context: &RequestContext,
    client: &OidcClient,
    params: TokenParams,
) -> Result<TokenResponse, OAuthError> {
    let code = params
        .code
        .filter(|c| !c.is_empty() && c.len() <= 256)
        .ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let digest = accounts::digest(&code);
    let mut db = app.db().await?;
    let tx = db.transaction().await.map_err(ServiceError::from)?;
    let presented = oidc::lock_code(&*tx, &digest)
        .await
        .map_err(ServiceError::from)?
        .filter(|c| c.client_id == client.client_id)
        .ok_or_else(|| OAuthError::invalid_grant("unknown code"))?;
    if presented.used {
        // A replayed code: whatever it yielded is revoked (RFC 6749 §4.1.2).
        if let Some(family) = presented.family_id {
            sessions::revoke_family(&*tx, family)
                .await
                .map_err(ServiceError::from)?;
            users::audit(
                &*tx,
                presented.user_id,
                "oidc.code_reused",
                &context.audit(None),
                json!({ "clientId": client.client_id, "session": family }),
            )
            .await
            .map_err(ServiceError::from)?;
            tx.commit().await.map_err(ServiceError::from)?;
            accounts::revoke_access(app, &[family]).await?;
        }
        tracing::warn!(event = "oidc_code_reused", client_id = %client.client_id, user_id = %presented.user_id);
        return Err(OAuthError::invalid_grant("the code was used already"));
    }
    if presented.expires_at <= Utc::now() {
        return Err(OAuthError::invalid_grant("the code expired"));
    }
    if params.redirect_uri.as_deref() != Some(presented.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    match (&presented.code_challenge, params.code_verifier.as_deref()) {
        (Some(challenge), Some(verifier)) => {
            let valid_form = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !valid_form || !bool::from(s256(verifier).as_bytes().ct_eq(challenge.as_bytes())) {
                tracing::warn!(event = "oidc_pkce_mismatch", client_id = %client.client_id);
                return Err(OAuthError::invalid_grant("code_verifier does not match"));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is missing")),
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "the authorization request had no code_challenge",
            ))
        }
        (None, None) => {}
    }
    let user = users::lock_by_id(&*tx, presented.user_id)
        .await
        .map_err(ServiceError::from)?
        .filter(|u| u.can_sign_in())
        .ok_or_else(|| OAuthError::invalid_grant("the user is gone"))?;
    let lifetime =
        Duration::from_secs(u64::try_from(client.refresh_token_ttl_secs).unwrap_or(3600));
    let (family, refresh, _) = accounts::open_session(app, &tx, context, user.id, lifetime).await?;
    let grant = SessionGrant {
        family_id: family,
        user_id: user.id,
        client_id: Some(client.client_id.clone()),
        scope: presented.scope.clone(),
        auth_time: presented.auth_time,
        amr: presented.amr.clone(),
    };
    oidc::insert_session(&*tx, &grant)
        .await
        .map_err(ServiceError::from)?;
    oidc::use_code(&*tx, &digest, family)
        .await
        .map_err(ServiceError::from)?;
    users::audit(
        &*tx,
        user.id,
        "oidc.tokens_issued",
        &context.audit(Some(user.id)),
        json!({ "clientId": client.client_id, "session": family, "scope": presented.scope }),
    )
    .await
    .map_err(ServiceError::from)?;
    tx.commit().await.map_err(ServiceError::from)?;
    tracing::info!(event = "oidc_tokens_issued", grant = "authorization_code", client_id = %client.client_id, user_id = %user.id, session = %family);
    Ok(issue(
        app,
        client,
        &user,
        &grant,
        presented.nonce.as_deref(),
        Some(refresh),
    ))
}

async fn refresh(
    app: &AppState,
    context: &RequestContext,
    client: &OidcClient,
    params: TokenParams,
) -> Result<TokenResponse, OAuthError> {
    let token = params
        .refresh_token
        .filter(|t| !t.expose_secret().is_empty() && t.expose_secret().len() <= 256)
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let lifetime =
        Duration::from_secs(u64::try_from(client.refresh_token_ttl_secs).unwrap_or(3600));
    let rotated = accounts::rotate(
        app,
        context,
        token.expose_secret(),
        SessionKind::Client(&client.client_id),
        Some(lifetime),
    )
    .await
    .map_err(|e| match e {
        ServiceError::InvalidToken => OAuthError::invalid_grant("the refresh token is invalid"),
        other => other.into(),
    })?;
    let db = app.db().await?;
    let mut grant = oidc::session(&**db, rotated.family_id)
        .await
        .map_err(ServiceError::from)?
        .ok_or_else(|| OAuthError::invalid_grant("the refresh token is invalid"))?;
    if let Some(raw) = params.scope.as_deref().filter(|s| !s.is_empty()) {
        let asked = parse_scope(raw)?;
        let granted: Vec<&str> = grant.scope.split(' ').collect();
        if let Some(s) = asked.iter().find(|s| !granted.contains(&s.as_str())) {
            return Err(OAuthError::invalid_scope(format!("{s} was not granted")));
        }
        grant.scope = asked.join(" ");
    }
    tracing::info!(event = "oidc_tokens_issued", grant = "refresh_token", client_id = %client.client_id, user_id = %rotated.user.id, session = %rotated.family_id);
    Ok(issue(
        app,
        client,
        &rotated.user,
        &grant,
        None,
        Some(rotated.next),
    ))
}

fn client_credentials(
    app: &AppState,
    client: &OidcClient,
    params: TokenParams,
) -> Result<TokenResponse, OAuthError> {
    let p = provider(app)?;
    // A machine has no user: the user-facing scopes are not its to ask for.
    let allowed: Vec<&String> = client
        .scopes
        .iter()
        .filter(|s| !["openid", "offline_access"].contains(&s.as_str()))
        .collect();
    let scopes = match params.scope.as_deref().filter(|s| !s.is_empty()) {
        Some(raw) => {
            let asked = parse_scope(raw)?;
            if let Some(s) = asked.iter().find(|s| !allowed.contains(s)) {
                return Err(OAuthError::invalid_scope(format!(
                    "{s} is not available to client_credentials"
                )));
            }
            asked
        }
        None => Vec::new(),
    };
    let now = Utc::now().timestamp();
    let ttl = u64::try_from(client.access_token_ttl_secs).unwrap_or(900);
    let claims = AccessClaims {
        iss: p.issuer.clone(),
        sub: client.client_id.clone(),
        aud: client.client_id.clone(),
        client_id: client.client_id.clone(),
        scope: scopes.join(" "),
        iat: now,
        exp: now + i64::try_from(ttl).unwrap_or(900),
        jti: Uuid::new_v4(),
        sid: None,
        auth_time: None,
    };
    tracing::info!(event = "oidc_tokens_issued", grant = "client_credentials", client_id = %client.client_id);
    Ok(TokenResponse {
        access_token: app.accounts.jwt.sign_any(&claims, "at+jwt"),
        expires_in: ttl,
        id_token: None,
        refresh_token: None,
        scope: claims.scope,
    })
}

/// The access token and ID token of a session (and its refresh token when the client
/// may refresh and `offline_access` was granted).
fn issue(
    app: &AppState,
    client: &OidcClient,
    user: &UserRecord,
    grant: &SessionGrant,
    nonce: Option<&str>,
    refresh: Option<SecretString>,
) -> TokenResponse {
    let Ok(p) = provider(app) else {
        unreachable!("the token endpoint answers only with a provider")
    };
    let now = Utc::now().timestamp();
    let ttl = u64::try_from(client.access_token_ttl_secs).unwrap_or(900);
    let exp = now + i64::try_from(ttl).unwrap_or(900);
    let access = AccessClaims {
        iss: p.issuer.clone(),
        sub: user.id.to_string(),
        aud: client.client_id.clone(),
        client_id: client.client_id.clone(),
        scope: grant.scope.clone(),
        iat: now,
        exp,
        jti: Uuid::new_v4(),
        sid: Some(grant.family_id),
        auth_time: Some(grant.auth_time.timestamp()),
    };
    let scopes: Vec<String> = grant.scope.split(' ').map(str::to_owned).collect();
    let mut id: Map<String, Value> = user_claims(user, &scopes);
    id.insert("iss".into(), Value::String(p.issuer.clone()));
    id.insert("aud".into(), Value::String(client.client_id.clone()));
    id.insert("azp".into(), Value::String(client.client_id.clone()));
    id.insert("iat".into(), Value::from(now));
    id.insert("exp".into(), Value::from(exp));
    id.insert("auth_time".into(), Value::from(grant.auth_time.timestamp()));
    id.insert("sid".into(), Value::String(grant.family_id.to_string()));
    id.insert("amr".into(), json!(grant.amr));
    id.insert("acr".into(), Value::String(acr_for(&grant.amr).to_owned()));
    if let Some(n) = nonce {
        id.insert("nonce".into(), Value::String(n.to_owned()));
    }
    let alg = IdTokenAlg::parse(&client.id_token_alg).unwrap_or(IdTokenAlg::Rs256);
    let id_token = p
        .keys
        .sign_id_token(alg, &Value::Object(id), &app.accounts.jwt);
    let offline = scopes.iter().any(|s| s == "offline_access")
        && client.grant_types.iter().any(|g| g == "refresh_token");
    // The console is the api's own front end: its access token is the api's, with the
    // role, bound to this session (revoking the session refuses it).
    let (access_token, expires_in) = if client.client_id == super::clients::CONSOLE_CLIENT_ID {
        let (token, claims) = app.accounts.jwt.issue_with(
            user.id,
            user.role,
            grant.family_id,
            user.email_verified_at.is_some(),
        );
        (token, u64::try_from(claims.exp - claims.iat).unwrap_or(ttl))
    } else {
        (app.accounts.jwt.sign_any(&access, "at+jwt"), ttl)
    };
    TokenResponse {
        access_token,
        expires_in,
        id_token: Some(id_token),
        refresh_token: refresh.filter(|_| offline),
        scope: grant.scope.clone(),
    }
}

/// An access token the provider issued, if it is valid and its session lives.
async fn live_access_token(
    app: &AppState,
    token: &str,
) -> Result<Option<AccessClaims>, ServiceError> {
    let p = provider(app)?;
    let Ok(claims) = app
        .accounts
        .jwt
        .verify_any::<AccessClaims>(token, &p.issuer, None, true)
    else {
        return Ok(None);
    };
    if claims.aud != claims.client_id {
        return Ok(None);
    }
    if let Some(sid) = claims.sid {
        if app.stores.revoked_sessions.is_revoked(sid).await? {
            return Ok(None);
        }
    }
    Ok(Some(claims))
}

/// Userinfo: the claims the token's scopes release about its user.
pub async fn userinfo(app: &AppState, bearer: Option<&str>) -> Result<Value, OAuthError> {
    let token = bearer.ok_or_else(|| OAuthError::invalid_token("no bearer token"))?;
    let claims = live_access_token(app, token)
        .await?
        .ok_or_else(|| OAuthError::invalid_token("the access token is invalid"))?;
    let Some(sid) = claims.sid else {
        return Err(OAuthError::invalid_token(
            "a client's own token names no user",
        ));
    };
    let scopes: Vec<String> = claims.scope.split(' ').map(str::to_owned).collect();
    if !scopes.iter().any(|s| s == "openid") {
        return Err(OAuthError {
            error: "insufficient_scope",
            ..OAuthError::invalid_token("the token was not issued for openid")
        });
    }
    let user_id: Uuid = claims
        .sub
        .parse()
        .map_err(|_| OAuthError::invalid_token("the access token is invalid"))?;
    let db = app.db().await?;
    if !oidc::family_live(&**db, sid)
        .await
        .map_err(ServiceError::from)?
    {
        return Err(OAuthError::invalid_token("the session ended"));
    }
    let user = users::find_by_id(&**db, user_id)
        .await
        .map_err(ServiceError::from)?
        .filter(|u| u.can_sign_in())
        .ok_or_else(|| OAuthError::invalid_token("the user is gone"))?;
    Ok(Value::Object(user_claims(&user, &scopes)))
}

/// Introspection of a token issued to the asking client (a client sees only its own
/// tokens): `{"active": false}` for anything else.
pub async fn introspect(
    app: &AppState,
    client_id: &str,
    client_secret: Option<&str>,
    token: Option<&str>,
) -> Result<Value, OAuthError> {
    provider(app)?;
    let client = authenticate_client(app, client_id, client_secret).await?;
    limit_client(app, &client.client_id).await?;
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let inactive = json!({ "active": false });
    if let Some(claims) = live_access_token(app, token).await? {
        if claims.client_id != client.client_id {
            return Ok(inactive);
        }
        if let Some(sid) = claims.sid {
            let db = app.db().await?;
            if !oidc::family_live(&**db, sid)
                .await
                .map_err(ServiceError::from)?
            {
                return Ok(inactive);
            }
        }
        return Ok(json!({
            "active": true, "token_type": "Bearer", "scope": claims.scope,
            "client_id": claims.client_id, "sub": claims.sub, "aud": claims.aud,
            "iss": claims.iss, "iat": claims.iat, "exp": claims.exp, "jti": claims.jti,
        }));
    }
    if token.len() > 256 {
        return Ok(inactive);
    }
    let db = app.db().await?;
    let row = refresh_of_client(&**db, token, &client.client_id).await?;
    Ok(match row {
        Some((grant, exp)) => json!({
            "active": true, "token_type": "refresh_token", "scope": grant.scope,
            "client_id": client.client_id, "sub": grant.user_id.to_string(),
            "exp": exp.timestamp(), "iss": provider(app)?.issuer,
        }),
        None => inactive,
    })
}

/// A live, unused refresh token of one of the client's sessions.
async fn refresh_of_client(
    db: &impl tokio_postgres::GenericClient,
    token: &str,
    client_id: &str,
) -> Result<Option<(SessionGrant, chrono::DateTime<Utc>)>, ServiceError> {
    let digest = accounts::digest(token);
    let row = db
        .query_opt(
            "SELECT family_id, expires_at FROM refresh_tokens
             WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now()",
            &[&digest],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let family: Uuid = row.get(0);
    let grant = oidc::session(db, family)
        .await?
        .filter(|g| g.client_id.as_deref() == Some(client_id));
    Ok(grant.map(|g| (g, row.get(1))))
}

/// Revocation: a refresh or access token of the asking client ends its session. An
/// unknown token, or another client's, is answered the same (RFC 7009 §2.2).
pub async fn revoke(
    app: &AppState,
    context: &RequestContext,
    client_id: &str,
    client_secret: Option<&str>,
    token: Option<&str>,
) -> Result<(), OAuthError> {
    provider(app)?;
    let client = authenticate_client(app, client_id, client_secret).await?;
    limit_client(app, &client.client_id).await?;
    let token = token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
    let family = match live_access_token(app, token).await? {
        Some(claims) if claims.client_id == client.client_id => claims.sid,
        Some(_) => None,
        None if token.len() <= 256 => {
            let db = app.db().await?;
            let digest = accounts::digest(token);
            let row = db
                .query_opt(
                    "SELECT family_id FROM refresh_tokens WHERE token_hash = $1",
                    &[&digest],
                )
                .await
                .map_err(ServiceError::from)?;
            match row {
                Some(r) => {
                    let family: Uuid = r.get(0);
                    oidc::session(&**db, family)
                        .await
                        .map_err(ServiceError::from)?
                        .filter(|g| g.client_id.as_deref() == Some(client.client_id.as_str()))
                        .map(|g| g.family_id)
                }
                None => None,
            }
        }
        None => None,
    };
    if let Some(family) = family {
        end_sessions(
            app,
            context,
            &[family],
            "oidc.token_revoked",
            &client.client_id,
        )
        .await?;
    }
    Ok(())
}

/// Ends sessions (refresh tokens in PostgreSQL, access tokens in Redis), audited.
async fn end_sessions(
    app: &AppState,
    context: &RequestContext,
    families: &[Uuid],
    action: &str,
    client_id: &str,
) -> Result<(), ServiceError> {
    let mut db = app.db().await?;
    let tx = db.transaction().await?;
    for family in families {
        let Some(grant) = oidc::session(&*tx, *family).await? else {
            continue;
        };
        users::lock_by_id(&*tx, grant.user_id).await?;
        sessions::revoke_family(&*tx, *family).await?;
        users::audit(
            &*tx,
            grant.user_id,
            action,
            &context.audit(Some(grant.user_id)),
            json!({ "clientId": client_id, "session": family }),
        )
        .await?;
    }
    tx.commit().await?;
    accounts::revoke_access(app, families).await
}

/// Whether an `id_token_hint` is an ID token this provider signed (expired or not).
pub fn valid_hint(app: &AppState, hint: Option<&str>) -> bool {
    let Ok(p) = provider(app) else { return false };
    hint.is_some_and(|t| {
        p.keys
            .verify_id_token_hint::<HintClaims>(t, &p.issuer, &app.accounts.jwt)
            .is_ok()
    })
}

/// Where RP-initiated logout sends the browser.
#[derive(Debug, PartialEq, Eq)]
pub enum LoggedOut {
    /// Back to the client's registered post-logout URI.
    Redirect(String),
    /// No (valid) place to return to: the provider's own page says so.
    Page,
}

/// RP-initiated logout 1.0: ends the browser session and, named by the
/// `id_token_hint`, the client's session. A `post_logout_redirect_uri` is followed only
/// when it is registered for the hint's (or `client_id`'s) client.
pub async fn end_session(
    app: &AppState,
    context: &RequestContext,
    browser_cookie: Option<&str>,
    id_token_hint: Option<&str>,
    client_id: Option<&str>,
    post_logout_redirect_uri: Option<&str>,
    state: Option<&str>,
) -> Result<LoggedOut, ServiceError> {
    let p = provider(app)?;
    let hint: Option<HintClaims> = id_token_hint.and_then(|t| {
        p.keys
            .verify_id_token_hint(t, &p.issuer, &app.accounts.jwt)
            .ok()
    });
    let hint_client = hint.as_ref().and_then(|h| match &h.aud {
        Value::String(s) => Some(s.clone()),
        Value::Array(a) => a.first().and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    });
    let client_id = hint_client.or_else(|| client_id.map(str::to_owned));
    let mut families = Vec::new();
    if let Some(h) = &hint {
        if let Some(sid) = h.sid {
            let db = app.db().await?;
            if let Some(g) = oidc::session(&**db, sid).await? {
                if g.client_id == client_id && g.user_id.to_string() == h.sub {
                    families.push(sid);
                }
            }
        }
    }
    if let Some(browser) = super::authorize::browser_session(app, browser_cookie, None).await? {
        families.push(browser.family_id);
    }
    if !families.is_empty() {
        end_sessions(
            app,
            context,
            &families,
            "oidc.logout",
            client_id.as_deref().unwrap_or(""),
        )
        .await?;
    }
    let Some(uri) = post_logout_redirect_uri else {
        return Ok(LoggedOut::Page);
    };
    let Some(client_id) = client_id else {
        return Ok(LoggedOut::Page);
    };
    let db = app.db().await?;
    let registered = oidc::find_client(&**db, &client_id)
        .await?
        .is_some_and(|c| c.post_logout_redirect_uris.iter().any(|u| u == uri));
    if !registered {
        tracing::warn!(event = "oidc_logout_redirect_refused", client_id = %client_id);
        return Ok(LoggedOut::Page);
    }
    let mut params = Vec::new();
    if let Some(s) = state {
        params.push(("state", s));
    }
    Ok(LoggedOut::Redirect(
        super::authorize::redirect_to(uri, &params).0,
    ))
}
