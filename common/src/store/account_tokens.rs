//! Single-use tokens mailed to users (verification links, password resets), stored only
//! as SHA-256 digests: the clear token exists in the mail and nowhere else.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// What a token proves when it comes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The holder reads mail at `email` (a registration's address, or a new one).
    VerifyEmail,
    /// The holder may set a new password.
    ResetPassword,
    /// The holder signs in (a passwordless link).
    SignIn,
    /// The holder of this 6-digit code for this address signs in ([`code_digest`]).
    SignInCode,
}

/// The digest a sign-in code is stored under: the address with the code, so the same
/// code for two addresses are two tokens, and a code is looked up by both.
pub fn code_digest(email: &str, code: &str) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(format!("sign-in-code\n{email}\n{code}").as_bytes()).to_vec()
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ResetPassword => "reset_password",
            Purpose::SignIn => "sign_in",
            Purpose::SignInCode => "sign_in_code",
        }
    }
}

/// Issues a token for a live user; `false` (nothing written) when the user was deleted
/// or erased meanwhile. The user row is locked `FOR SHARE` by the same statement, so an
/// erasure in flight (which updates that row first) either finishes before, and no token
/// is written, or waits for this one and then deletes it with the account's other tokens:
/// an erased account never keeps a token naming its address.
pub async fn insert(
    client: &impl GenericClient,
    token_hash: &[u8],
    user_id: Uuid,
    purpose: Purpose,
    email: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool, tokio_postgres::Error> {
    let written = client
        .execute(
            "INSERT INTO account_tokens (token_hash, user_id, purpose, email, expires_at)
             SELECT $1, u.id, $3, $4, $5 FROM users u
             WHERE u.id = $2 AND u.deleted_at IS NULL
             FOR SHARE",
            &[
                &token_hash,
                &user_id,
                &purpose.as_str(),
                &email,
                &expires_at,
            ],
        )
        .await?;
    Ok(written == 1)
}

/// A presented token, locked until the transaction ends.
#[derive(Debug, Clone)]
pub struct PresentedToken {
    pub user_id: Uuid,
    pub email: String,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
}

impl PresentedToken {
    /// Unused and unexpired.
    pub fn usable(&self, now: DateTime<Utc>) -> bool {
        !self.used && self.expires_at > now
    }
}

/// The token with this digest and purpose, locked (`FOR UPDATE`): two requests with the
/// same token are serialised, so only one can use it.
pub async fn lock(
    client: &impl GenericClient,
    token_hash: &[u8],
    purpose: Purpose,
) -> Result<Option<PresentedToken>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT user_id, email, expires_at, used_at IS NOT NULL FROM account_tokens
             WHERE token_hash = $1 AND purpose = $2 FOR UPDATE",
            &[&token_hash, &purpose.as_str()],
        )
        .await?;
    Ok(row.map(|r| PresentedToken {
        user_id: r.get(0),
        email: r.get(1),
        expires_at: r.get(2),
        used: r.get(3),
    }))
}

/// Uses up every live token of a user for `purpose` (the one just used, and any other
/// link of the same kind still in a mailbox).
pub async fn use_all(
    client: &impl GenericClient,
    user_id: Uuid,
    purpose: Purpose,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE account_tokens SET used_at = now()
             WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
            &[&user_id, &purpose.as_str()],
        )
        .await
}

/// Deletes a user's tokens of `purpose` (a new sign-in mail replaces the codes before it).
pub async fn delete_all(
    client: &impl GenericClient,
    user_id: Uuid,
    purpose: Purpose,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM account_tokens WHERE user_id = $1 AND purpose = $2",
            &[&user_id, &purpose.as_str()],
        )
        .await
}

/// Deletes tokens that expired before `before`; returns how many.
pub async fn purge_expired(
    client: &impl GenericClient,
    before: DateTime<Utc>,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM account_tokens WHERE expires_at < $1",
            &[&before],
        )
        .await
}
