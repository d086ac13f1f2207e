//! Webhook endpoints and their deliveries (Standard Webhooks). The api registers
//! endpoints and reads the delivery log; the consumer's intake writes one delivery per
//! event and subscribed endpoint, and its dispatcher claims the due ones: only the oldest
//! open delivery of an endpoint and user is claimable, so each endpoint gets one user's
//! events in order, while other users' events go on.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hpke_rand::RngCore;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// A registered endpoint as stored (its secrets included: the api never shows them after
/// creation or rotation).
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// Empty: every event type.
    pub event_types: Vec<String>,
    pub secret: String,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<DateTime<Utc>>,
    pub owner_id: Option<Uuid>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new signing secret: `whsec_` and the base64 of 32 random bytes, the form the
/// Standard Webhooks libraries take.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    hpke_rand::UnwrapErr(hpke_rand::OsRng).fill_bytes(&mut bytes);
    format!("whsec_{}", STANDARD.encode(bytes))
}

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, secret, previous_secret_until, enabled, disabled_reason, failing_since, owner_id, version, created_at, updated_at";

fn endpoint_from_row(r: &tokio_postgres::Row) -> WebhookEndpoint {
    WebhookEndpoint {
        id: r.get(0),
        url: r.get(1),
        description: r.get(2),
        event_types: r.get(3),
        secret: r.get(4),
        previous_secret_until: r.get(5),
        enabled: r.get(6),
        disabled_reason: r.get(7),
        failing_since: r.get(8),
        owner_id: r.get(9),
        version: r.get(10),
        created_at: r.get(11),
        updated_at: r.get(12),
    }
}

pub async fn insert_endpoint(
    client: &impl GenericClient,
    e: &WebhookEndpoint,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO webhook_endpoints (id, url, description, event_types, secret, owner_id, enabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &e.id,
                &e.url,
                &e.description,
                &e.event_types,
                &e.secret,
                &e.owner_id,
                &e.enabled,
            ],
        )
        .await?;
    Ok(())
}

pub async fn list_endpoints(
    client: &impl GenericClient,
) -> Result<Vec<WebhookEndpoint>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
                 WHERE deleted_at IS NULL ORDER BY created_at"
            ),
            &[],
        )
        .await?;
    Ok(rows.iter().map(endpoint_from_row).collect())
}

pub async fn find_endpoint(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<WebhookEndpoint>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints
                 WHERE id = $1 AND deleted_at IS NULL"
            ),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(endpoint_from_row))
}

/// Writes the changeable settings; enabling clears the failure state. `None` when there
/// is no such endpoint.
pub async fn update_endpoint(
    client: &impl GenericClient,
    e: &WebhookEndpoint,
) -> Result<Option<WebhookEndpoint>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            &format!(
                "UPDATE webhook_endpoints SET url = $2, description = $3, event_types = $4,
                    enabled = $5,
                    disabled_reason = CASE WHEN $5 THEN NULL ELSE disabled_reason END,
                    failing_since = CASE WHEN $5 AND NOT enabled THEN NULL ELSE failing_since END,
                    version = version + 1, updated_at = now()
                 WHERE id = $1 AND deleted_at IS NULL
                 RETURNING {ENDPOINT_COLUMNS}"
            ),
            &[&e.id, &e.url, &e.description, &e.event_types, &e.enabled],
        )
        .await?;
    Ok(row.as_ref().map(endpoint_from_row))
}

/// Gives an endpoint a new secret; the old one keeps signing beside it for `overlap`.
pub async fn rotate_secret(
    client: &impl GenericClient,
    id: Uuid,
    secret: &str,
    overlap: Duration,
) -> Result<Option<WebhookEndpoint>, tokio_postgres::Error> {
    let secs = overlap.as_secs_f64();
    let row = client
        .query_opt(
            &format!(
                "UPDATE webhook_endpoints SET previous_secret = secret,
                    previous_secret_until = now() + make_interval(secs => $3),
                    secret = $2, version = version + 1, updated_at = now()
                 WHERE id = $1 AND deleted_at IS NULL
                 RETURNING {ENDPOINT_COLUMNS}"
            ),
            &[&id, &secret, &secs],
        )
        .await?;
    Ok(row.as_ref().map(endpoint_from_row))
}

/// Deletes an endpoint: nothing more is sent to it, and its deliveries go with it.
pub async fn delete_endpoint(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    let n = client
        .execute(
            "UPDATE webhook_endpoints SET deleted_at = now(), enabled = false, secret = '',
                previous_secret = NULL, version = version + 1, updated_at = now()
             WHERE id = $1 AND deleted_at IS NULL",
            &[&id],
        )
        .await?;
    if n == 0 {
        return Ok(false);
    }
    client
        .execute(
            "DELETE FROM webhook_deliveries WHERE endpoint_id = $1",
            &[&id],
        )
        .await?;
    Ok(true)
}

/// One event to deliver to every endpoint subscribed to its type.
pub struct NewEvent<'a> {
    pub event_id: Uuid,
    /// When the change happened: an endpoint gets the events after its registration.
    pub occurred_at: DateTime<Utc>,
    pub event_type: &'a str,
    pub subject: Uuid,
    pub payload: serde_json::Value,
}

/// Writes a delivery per event and live, subscribed endpoint registered before the event
/// happened (a disabled one too: it holds them until it is enabled), in the given order (which is the order of the events per user). Idempotent: an event read again (a redelivery
/// after a rebalance) adds nothing. Returns how many deliveries were written.
pub async fn enqueue(
    client: &impl GenericClient,
    events: &[NewEvent<'_>],
) -> Result<u64, tokio_postgres::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type).collect();
    let subjects: Vec<Uuid> = events.iter().map(|e| e.subject).collect();
    let payloads: Vec<&serde_json::Value> = events.iter().map(|e| &e.payload).collect();
    let occurred: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at).collect();
    client
        .execute(
            "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, subject, payload)
             SELECT w.id, e.event_id, e.event_type, e.subject, e.payload
             FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::jsonb[], $5::timestamptz[])
                  WITH ORDINALITY AS e(event_id, event_type, subject, payload, occurred_at, n)
             JOIN webhook_endpoints w
               ON w.deleted_at IS NULL AND w.created_at <= e.occurred_at
              AND (cardinality(w.event_types) = 0 OR e.event_type = ANY (w.event_types))
             ORDER BY e.n, w.id
             ON CONFLICT (endpoint_id, event_id) DO NOTHING",
            &[&ids, &types, &subjects, &payloads, &occurred],
        )
        .await
}

/// A delivery claimed for one attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub endpoint_id: Uuid,
    pub url: String,
    /// The secrets that sign this attempt: the current one, and the previous one while
    /// its overlap lasts.
    pub secrets: Vec<String>,
    pub event_id: Uuid,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// Claims up to `limit` due deliveries for `lease`: of each endpoint and user only the
/// oldest open one, of enabled endpoints, skipping rows another dispatcher holds. A
/// claim whose lease ran out (a dispatcher that died) is claimable again.
pub async fn claim(
    client: &impl GenericClient,
    limit: i64,
    lease: Duration,
) -> Result<Vec<Claimed>, tokio_postgres::Error> {
    let rows = client
        .query(
            "WITH due AS (
                 SELECT d.id FROM webhook_deliveries d
                 JOIN webhook_endpoints w ON w.id = d.endpoint_id
                 WHERE w.enabled AND w.deleted_at IS NULL
                   AND ((d.state = 'pending' AND d.next_attempt_at <= now())
                        OR (d.state = 'in_flight' AND d.lease_until < now()))
                   AND NOT EXISTS (
                       SELECT 1 FROM webhook_deliveries o
                       WHERE o.endpoint_id = d.endpoint_id AND o.subject = d.subject
                         AND o.id < d.id AND o.state IN ('pending', 'in_flight'))
                 ORDER BY d.next_attempt_at, d.id
                 LIMIT $1
                 FOR UPDATE OF d SKIP LOCKED
             )
             UPDATE webhook_deliveries d
                SET state = 'in_flight', lease_until = now() + make_interval(secs => $2)
             FROM due, webhook_endpoints w
             WHERE d.id = due.id AND w.id = d.endpoint_id
             RETURNING d.id, d.endpoint_id, w.url, w.secret,
                 CASE WHEN w.previous_secret_until > now() THEN w.previous_secret END,
                 d.event_id, d.event_type, d.payload, d.attempts, d.created_at",
            &[&limit, &lease.as_secs_f64()],
        )
        .await?;
    let mut claimed: Vec<Claimed> = rows
        .iter()
        .map(|r| {
            let mut secrets = vec![r.get::<_, String>(3)];
            secrets.extend(r.get::<_, Option<String>>(4));
            Claimed {
                id: r.get(0),
                endpoint_id: r.get(1),
                url: r.get(2),
                secrets,
                event_id: r.get(5),
                event_type: r.get(6),
                payload: r.get(7),
                attempts: r.get(8),
                created_at: r.get(9),
            }
        })
        .collect();
    claimed.sort_by_key(|c| c.id);
    Ok(claimed)
}

/// What one attempt gave.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub status: Option<i32>,
    pub error: Option<String>,
    pub latency_ms: i32,
}

/// Records a delivered attempt; the endpoint is no longer failing.
pub async fn record_delivered(
    client: &impl GenericClient,
    id: i64,
    attempt: &Attempt,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "WITH d AS (
                 UPDATE webhook_deliveries SET state = 'delivered', attempts = attempts + 1,
                     last_status = $2, last_error = NULL, last_latency_ms = $3,
                     finished_at = now(), lease_until = NULL
                 WHERE id = $1 RETURNING endpoint_id)
             UPDATE webhook_endpoints SET failing_since = NULL
             WHERE id = (SELECT endpoint_id FROM d) AND failing_since IS NOT NULL",
            &[&id, &attempt.status, &attempt.latency_ms],
        )
        .await?;
    Ok(())
}

/// What a failed attempt led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailure {
    /// Tried again then.
    Retry,
    /// The delivery is older than the retry horizon: given up.
    GaveUp,
}

/// An endpoint that this failure disabled, and who registered it.
#[derive(Debug, Clone)]
pub struct Disabled {
    pub endpoint_id: Uuid,
    pub owner: Option<(Uuid, String)>,
}

/// Records a failed attempt: the delivery is tried again after `retry_in`, or, once it
/// is older than `horizon`, given up. The endpoint has been failing since its first
/// failure after its last success; once that is `disable_after` ago it is disabled (its
/// open deliveries wait for it to be enabled again).
pub async fn record_failed(
    client: &mut impl GenericClient,
    id: i64,
    attempt: &Attempt,
    retry_in: Duration,
    horizon: Duration,
    disable_after: Duration,
) -> Result<(AfterFailure, Option<Disabled>), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let row = tx
        .query_one(
            "UPDATE webhook_deliveries SET
                 attempts = attempts + 1, last_status = $2, last_error = $3, last_latency_ms = $4,
                 lease_until = NULL,
                 state = CASE WHEN created_at + make_interval(secs => $6) <= now()
                              THEN 'failed' ELSE 'pending' END,
                 finished_at = CASE WHEN created_at + make_interval(secs => $6) <= now()
                                    THEN now() END,
                 next_attempt_at = now() + make_interval(secs => $5)
             WHERE id = $1 RETURNING state, endpoint_id",
            &[
                &id,
                &attempt.status,
                &attempt.error,
                &attempt.latency_ms,
                &retry_in.as_secs_f64(),
                &horizon.as_secs_f64(),
            ],
        )
        .await?;
    let after = if row.get::<_, &str>(0) == "failed" {
        AfterFailure::GaveUp
    } else {
        AfterFailure::Retry
    };
    let endpoint: Uuid = row.get(1);
    let since: DateTime<Utc> = tx
        .query_one(
            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, now())
             WHERE id = $1 RETURNING failing_since",
            &[&endpoint],
        )
        .await?
        .get(0);
    let disabled = if since + disable_after <= Utc::now() {
        tx.query_opt(
            "UPDATE webhook_endpoints SET enabled = false, updated_at = now(),
                 version = version + 1,
                 disabled_reason = 'every delivery failed for ' || $2 || ' seconds'
             WHERE id = $1 AND enabled
             RETURNING owner_id",
            &[&endpoint, &disable_after.as_secs().to_string()],
        )
        .await?
    } else {
        None
    };
    let disabled = match disabled {
        None => None,
        Some(r) => {
            let owner_id: Option<Uuid> = r.get(0);
            let owner = match owner_id {
                Some(owner) => tx
                    .query_opt(
                        "SELECT email FROM users WHERE id = $1 AND deleted_at IS NULL",
                        &[&owner],
                    )
                    .await?
                    .map(|r| (owner, r.get::<_, String>(0))),
                None => None,
            };
            if let Some((owner, email)) = &owner {
                crate::store::mail_outbox::enqueue(
                    &tx,
                    *owner,
                    crate::store::mail_outbox::MailKind::WebhookDisabled,
                    email,
                )
                .await?;
            }
            Some(Disabled {
                endpoint_id: endpoint,
                owner,
            })
        }
    };
    tx.commit().await?;
    Ok((after, disabled))
}

/// One row of the delivery log.
#[derive(Debug, Clone)]
pub struct DeliveryRecord {
    pub id: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub subject: Uuid,
    pub state: String,
    pub attempts: i32,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub last_latency_ms: Option<i32>,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// An endpoint's deliveries, newest first, after the keyset cursor `before` (an id).
pub async fn log(
    client: &impl GenericClient,
    endpoint: Uuid,
    state: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<DeliveryRecord>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT id, event_id, event_type, subject, state, attempts, last_status, last_error,
                    last_latency_ms, next_attempt_at, created_at, finished_at
             FROM webhook_deliveries
             WHERE endpoint_id = $1 AND ($2::text IS NULL OR state = $2)
               AND ($3::bigint IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
            &[&endpoint, &state, &before, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DeliveryRecord {
            id: r.get(0),
            event_id: r.get(1),
            event_type: r.get(2),
            subject: r.get(3),
            state: r.get(4),
            attempts: r.get(5),
            last_status: r.get(6),
            last_error: r.get(7),
            last_latency_ms: r.get(8),
            next_attempt_at: r.get(9),
            created_at: r.get(10),
            finished_at: r.get(11),
        })
        .collect())
}

/// Sends finished deliveries of an endpoint again: one (`delivery`), or every one
/// written in `[from, to)`. They keep their order and their event ids (receivers
/// deduplicate on `webhook-id`). Returns how many were queued.
pub async fn redeliver(
    client: &impl GenericClient,
    endpoint: Uuid,
    delivery: Option<i64>,
    range: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<u64, tokio_postgres::Error> {
    let (from, to) = range.unzip();
    client
        .execute(
            "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = now(),
                 finished_at = NULL, lease_until = NULL
             WHERE endpoint_id = $1 AND state IN ('delivered', 'failed')
               AND ($2::bigint IS NULL OR id = $2)
               AND ($3::timestamptz IS NULL OR created_at >= $3)
               AND ($4::timestamptz IS NULL OR created_at < $4)",
            &[&endpoint, &delivery, &from, &to],
        )
        .await
}

/// Per endpoint: open deliveries and the age of the oldest, in seconds.
pub async fn lag(
    client: &impl GenericClient,
) -> Result<Vec<(Uuid, i64, f64)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT w.id, count(d.id),
                    COALESCE(EXTRACT(EPOCH FROM now() - min(d.created_at)), 0)::float8
             FROM webhook_endpoints w
             LEFT JOIN webhook_deliveries d
               ON d.endpoint_id = w.id AND d.state IN ('pending', 'in_flight')
             WHERE w.deleted_at IS NULL
             GROUP BY w.id",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Deletes finished deliveries older than `before`; returns how many.
pub async fn purge_finished(
    client: &impl GenericClient,
    before: DateTime<Utc>,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM webhook_deliveries
             WHERE state IN ('delivered', 'failed') AND finished_at < $1",
            &[&before],
        )
        .await
}

/// Erasure: a user's finished deliveries go, and the open ones lose the email.
pub async fn erase_subject(
    client: &impl GenericClient,
    user: Uuid,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM webhook_deliveries
             WHERE subject = $1 AND state IN ('delivered', 'failed')",
            &[&user],
        )
        .await?;
    client
        .execute(
            "UPDATE webhook_deliveries SET payload = payload #- '{data,email}'
             WHERE subject = $1",
            &[&user],
        )
        .await?;
    Ok(())
}
