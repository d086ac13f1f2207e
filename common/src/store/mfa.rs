//! TOTP second factors and their recovery codes. Secrets are stored sealed (the api
//! encrypts them under `MFA_ENCRYPTION_KEY`); recovery codes only as HMACs under a key
//! derived from it (older ones as SHA-256 digests).

use tokio_postgres::GenericClient;
use uuid::Uuid;

/// A user's second factor as stored.
#[derive(Debug, Clone)]
pub struct StoredFactor {
    pub key_id: String,
    pub secret_sealed: Vec<u8>,
    pub enabled: bool,
    /// The last accepted TOTP time step: a code of this step or an earlier one is refused.
    pub last_step: i64,
}

/// Starts (or restarts) an enrolment: a new secret, not enabled until confirmed. An
/// enabled factor is left alone (returns false).
pub async fn begin_enrolment(
    client: &impl GenericClient,
    user_id: Uuid,
    key_id: &str,
    secret_sealed: &[u8],
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "INSERT INTO user_mfa (user_id, key_id, secret_sealed) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET key_id = $2, secret_sealed = $3, created_at = now(), last_step = 0
             WHERE user_mfa.enabled_at IS NULL",
            &[&user_id, &key_id, &secret_sealed],
        )
        .await?;
    Ok(n == 1)
}

/// The user's factor, locked until the transaction ends.
pub async fn lock(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Option<StoredFactor>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT key_id, secret_sealed, enabled_at IS NOT NULL, last_step FROM user_mfa
             WHERE user_id = $1 FOR UPDATE",
            &[&user_id],
        )
        .await?;
    Ok(row.map(|r| StoredFactor {
        key_id: r.get(0),
        secret_sealed: r.get(1),
        enabled: r.get(2),
        last_step: r.get(3),
    }))
}

/// Whether the user has an enabled second factor.
pub async fn is_enabled(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT 1 FROM user_mfa WHERE user_id = $1 AND enabled_at IS NOT NULL",
            &[&user_id],
        )
        .await?;
    Ok(row.is_some())
}

/// Records an accepted step (and enables the factor, for a confirmation), only if the
/// step is newer than the last accepted one. False: the code was used already.
pub async fn accept_step(
    client: &impl GenericClient,
    user_id: Uuid,
    step: i64,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE user_mfa SET last_step = $2, enabled_at = COALESCE(enabled_at, now())
             WHERE user_id = $1 AND last_step < $2",
            &[&user_id, &step],
        )
        .await?;
    Ok(n == 1)
}

/// Re-seals a secret under the current key (after a key rotation).
pub async fn reseal(
    client: &impl GenericClient,
    user_id: Uuid,
    key_id: &str,
    secret_sealed: &[u8],
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE user_mfa SET key_id = $2, secret_sealed = $3 WHERE user_id = $1",
            &[&user_id, &key_id, &secret_sealed],
        )
        .await?;
    Ok(())
}

/// Replaces the user's recovery codes.
pub async fn replace_recovery_codes(
    client: &impl GenericClient,
    user_id: Uuid,
    digests: &[Vec<u8>],
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM mfa_recovery_codes WHERE user_id = $1",
            &[&user_id],
        )
        .await?;
    client
        .execute(
            "INSERT INTO mfa_recovery_codes (user_id, code_hash) SELECT $1, d FROM UNNEST($2::bytea[]) AS d",
            &[&user_id, &digests],
        )
        .await?;
    Ok(())
}

/// Uses a recovery code given as the stored forms it may have (see the api's
/// `recovery_candidates`); false when none is known or unused.
pub async fn use_recovery_code(
    client: &impl GenericClient,
    user_id: Uuid,
    candidates: &[Vec<u8>],
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE mfa_recovery_codes SET used_at = now()
             WHERE (user_id, code_hash) IN (
                 SELECT user_id, code_hash FROM mfa_recovery_codes
                 WHERE user_id = $1 AND code_hash = ANY($2) AND used_at IS NULL
                 LIMIT 1)",
            &[&user_id, &candidates],
        )
        .await?;
    Ok(n == 1)
}

/// Recovery codes not used yet.
pub async fn recovery_codes_left(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
            &[&user_id],
        )
        .await?;
    Ok(row.get(0))
}

/// Removes the second factor and its recovery codes; false when there was none.
pub async fn remove(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM mfa_recovery_codes WHERE user_id = $1",
            &[&user_id],
        )
        .await?;
    let n = client
        .execute("DELETE FROM user_mfa WHERE user_id = $1", &[&user_id])
        .await?;
    Ok(n == 1)
}
