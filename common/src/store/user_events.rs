//! The outbox of the `user-events` topic. Use cases append events in the transaction of
//! their change; the relay (consumer) publishes them in `seq` order under an advisory
//! lock, so one relay publishes at a time whatever the number of replicas, and moves
//! them to `user_event_outbox_sent` after the broker acknowledged them: a crash in
//! between publishes them again, with the same event ids (at least once, never a gap).
//! The outbox itself holds only unsent events; sent ones stay for the retention.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::events::user::{UserEvent, UserEventError};

/// Key of the advisory lock that makes one relay publish at a time.
const RELAY_LOCK: i64 = 0x7265_6c61_795f_7565; // "relay_ue"

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
    #[error("event encoding: {0}")]
    Encode(#[from] UserEventError),
}

/// The statement of [`append_prepared`].
pub const APPEND: &str = "INSERT INTO user_event_outbox (event_id, user_id, type, payload)
     SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::bytea[])";

/// Appends events to the outbox (in the caller's transaction).
pub async fn append(client: &impl GenericClient, events: &[UserEvent]) -> Result<(), OutboxError> {
    if events.is_empty() {
        return Ok(());
    }
    let statement = client.prepare(APPEND).await?;
    append_prepared(client, &statement, events).await
}

/// [`append`] with [`APPEND`] prepared by the caller (a statement cache).
pub async fn append_prepared(
    client: &impl GenericClient,
    statement: &tokio_postgres::Statement,
    events: &[UserEvent],
) -> Result<(), OutboxError> {
    if events.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(events.len());
    let mut users = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for e in events {
        ids.push(e.event_id);
        users.push(e.user_id);
        types.push(e.event_type.as_str());
        payloads.push(e.encode()?);
    }
    client
        .execute(statement, &[&ids, &users, &types, &payloads])
        .await?;
    Ok(())
}

/// Takes the relay lock for this transaction; false when another relay holds it.
pub async fn try_lock_relay(client: &impl GenericClient) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&RELAY_LOCK])
        .await?;
    Ok(row.get(0))
}

/// An event waiting for the relay.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub seq: i64,
    pub user_id: Uuid,
    pub event_type: String,
    pub payload: Vec<u8>,
}

/// The oldest unsent events after `after` (all of them: `None`), in `seq` order, which
/// is commit order per user.
pub async fn pending(
    client: &impl GenericClient,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<PendingEvent>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT seq, user_id, type, payload FROM user_event_outbox
             WHERE seq > $1 ORDER BY seq LIMIT $2",
            &[&after.unwrap_or(i64::MIN), &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| PendingEvent {
            seq: r.get(0),
            user_id: r.get(1),
            event_type: r.get(2),
            payload: r.get(3),
        })
        .collect())
}

/// Moves published events out of the outbox into `user_event_outbox_sent`; returns how
/// many moved (an event erased meanwhile is no longer there to move).
pub async fn mark_sent(
    client: &impl GenericClient,
    seqs: &[i64],
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "WITH sent AS (
                 DELETE FROM user_event_outbox WHERE seq = ANY($1)
                 RETURNING seq, event_id, user_id, type, payload, created_at
             )
             INSERT INTO user_event_outbox_sent (seq, event_id, user_id, type, payload, created_at)
             SELECT * FROM sent",
            &[&seqs],
        )
        .await
}

/// Unsent events and the age of the oldest, in seconds.
pub async fn lag(client: &impl GenericClient) -> Result<(i64, f64), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
             FROM user_event_outbox",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Deletes events sent before `before`; returns how many.
pub async fn purge_sent(
    client: &impl GenericClient,
    before: DateTime<Utc>,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM user_event_outbox_sent WHERE sent_at < $1",
            &[&before],
        )
        .await
}
