//! Work after a committed change, shared by the use cases that change accounts: refuse
//! the access tokens of revoked sessions and forget what Redis still holds about an
//! address the account no longer uses. The change is durable before any of it runs, so
//! a failure here is logged, never returned.

use common::domain::email::Email;
use uuid::Uuid;

use super::accounts;
use crate::state::AppState;

/// After an email change took effect: forget the cached registration state of the
/// address the account no longer uses.
pub async fn forget_old_email(app: &AppState, old_email: &str) {
    after_commit(app, &[], Some(&old_email.to_owned())).await;
}

/// Work after a committed change: refuse the access tokens of revoked sessions and
/// forget the cached registration status of an email the account no longer uses. The
/// change is durable already; a failure here is logged (refresh tokens are revoked in
/// PostgreSQL either way; access tokens then live out their 15 minutes).
pub async fn after_commit(app: &AppState, revoked: &[Uuid], old_email: Option<&String>) {
    if let Err(e) = accounts::revoke_access(app, revoked).await {
        tracing::error!(event = "access_tokens_not_revoked", sessions = revoked.len(), error = %crate::error::error_chain(&e));
    }
    if let Some(email) = old_email.and_then(|e| Email::parse(e).ok()) {
        app.finished.forget_email(&email);
        if let Err(e) = app.stores.status.forget(&email).await {
            tracing::warn!(event = "status_not_forgotten", error = %e);
        }
    }
}

/// Erasure reaches Redis too: the email's registration status, its login attempts and
/// the idempotency answers that name it. Logged, not failed, when Redis is down: the
/// keys expire within a day either way.
pub async fn forget_email(app: &AppState, email: &str) {
    let Ok(email) = Email::parse(email) else {
        return;
    };
    let stores = &app.stores;
    let (status, attempts, answers, limits) = tokio::join!(
        stores.status.forget_all(&email),
        stores.login_attempts.forget_email(&email),
        stores.idempotency.forget_email(&email),
        stores.auth_flows.forget_email(email.as_str()),
    );
    if let Err(e) = status.and(attempts).and(answers).and(limits) {
        tracing::warn!(event = "erased_email_not_forgotten_in_redis", error = %e);
    }
}
