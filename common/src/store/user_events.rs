//! The outbox of the `user-events` topic. Use cases append events in the transaction of
//! their change; the relay (consumer) publishes them in `seq` order under an advisory
//! lock, so one relay publishes at a time whatever the number of replicas, and advances
//! its cursor (`user_event_relay.published_seq`) after the broker acknowledged them: a
//! crash in between publishes them again, with the same event ids (at least once). The
//! cursor never passes a number a running transaction holds ([`settled_seq`]), so an
//! event that commits late is not skipped (never a gap). Published events stay for the
//! retention.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::events::client::ClientEvent;
use crate::events::user::{UserEvent, UserEventError};

/// Key of the advisory lock that makes one relay publish at a time.
const RELAY_LOCK: i64 = 0x7265_6c61_795f_7565; // "relay_ue"

/// Key of the advisory lock every outbox insert holds shared until its transaction ends
/// (taken by the table's statement trigger, migration V12, which names the same number).
pub const OUTBOX_WRITERS_LOCK: i64 = 0x6f75_7462_6f78_5f77; // "outbox_w"

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

/// Appends a client's event to the outbox (in the caller's transaction); the relay
/// publishes it to the client events topic, keyed by the client id.
pub async fn append_client_event(
    client: &impl GenericClient,
    event: &ClientEvent,
) -> Result<(), OutboxError> {
    client
        .execute(
            "INSERT INTO user_event_outbox (event_id, client_id, type, payload)
             VALUES ($1, $2, $3, $4)",
            &[
                &event.event_id,
                &event.client_id,
                &event.event_type.as_str(),
                &event.encode()?,
            ],
        )
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

/// The highest `seq` that no running transaction can still commit: every number up to
/// it is committed or rolled back for good, so the relay may publish up to it without
/// passing an event that commits later. Waits (at most `lock_timeout`) for the
/// transactions that hold numbers, holding back the ones that would draw new numbers
/// meanwhile, then reads the sequence. `None`: the wait timed out.
pub async fn settled_seq(
    client: &mut impl tokio_postgres::GenericClient,
    lock_timeout: std::time::Duration,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}",
        lock_timeout.as_millis().max(1)
    ))
    .await?;
    match tx
        .execute("SELECT pg_advisory_xact_lock($1)", &[&OUTBOX_WRITERS_LOCK])
        .await
    {
        Ok(_) => {}
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    let row = tx
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END
             FROM user_event_outbox_seq_seq",
            &[],
        )
        .await?;
    let settled = row.get(0);
    tx.commit().await?;
    Ok(Some(settled))
}

/// The `seq` up to which every event was published (read under the relay lock).
pub async fn published_seq(client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    Ok(client
        .query_one("SELECT published_seq FROM user_event_relay", &[])
        .await?
        .get(0))
}

/// Whose event an outbox row is, which names its topic and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// An account's: `user-events`, keyed by the user id.
    User(Uuid),
    /// An OpenID Connect client's: the client events topic, keyed by the client id.
    Client(String),
}

impl Subject {
    /// The record key.
    pub fn key(&self) -> String {
        match self {
            Subject::User(id) => id.to_string(),
            Subject::Client(id) => id.clone(),
        }
    }
}

/// An event waiting for the relay.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    pub seq: i64,
    pub subject: Subject,
    pub event_type: String,
    pub payload: Vec<u8>,
}

/// The events after `after` up to `through` (a [`settled_seq`]), at most `limit`, in
/// `seq` order, which is commit order per user (every change of an account locks its
/// row, so a later change of the same account draws a higher number).
pub async fn pending(
    client: &impl GenericClient,
    after: i64,
    through: i64,
    limit: i64,
) -> Result<Vec<PendingEvent>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT seq, user_id, client_id, type, payload FROM user_event_outbox
             WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3",
            &[&after, &through, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| PendingEvent {
            seq: r.get(0),
            // The table's CHECK: exactly one of the two is set.
            subject: match r.get::<_, Option<Uuid>>(1) {
                Some(user) => Subject::User(user),
                None => Subject::Client(r.get::<_, Option<String>>(2).unwrap_or_default()),
            },
            event_type: r.get(3),
            payload: r.get(4),
        })
        .collect())
}

/// Records that every event up to `seq` was published (under the relay lock).
pub async fn mark_published(
    client: &impl GenericClient,
    seq: i64,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE user_event_relay SET published_seq = $1 WHERE published_seq < $1",
            &[&seq],
        )
        .await?;
    Ok(())
}

/// Unpublished events and the age of the oldest, in seconds.
pub async fn lag(client: &impl GenericClient) -> Result<(i64, f64), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
             FROM user_event_outbox WHERE seq > (SELECT published_seq FROM user_event_relay)",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Rows deleted per purge statement.
const PURGE_CHUNK: i64 = 10_000;

/// Deletes published events written before `before`; returns how many. Goes from the
/// oldest number on, a chunk at a time, and stops at the first chunk that was not all
/// old enough (events are numbered in about the order they were written).
pub async fn purge_published(
    client: &impl GenericClient,
    before: DateTime<Utc>,
) -> Result<u64, tokio_postgres::Error> {
    let statement = client
        .prepare(
            "WITH head AS (
                 SELECT seq, created_at FROM user_event_outbox
                 WHERE seq <= (SELECT published_seq FROM user_event_relay)
                 ORDER BY seq LIMIT $2
             )
             DELETE FROM user_event_outbox
             WHERE seq IN (SELECT seq FROM head WHERE created_at < $1)",
        )
        .await?;
    let mut purged = 0;
    loop {
        let n = client.execute(&statement, &[&before, &PURGE_CHUNK]).await?;
        purged += n;
        if n < PURGE_CHUNK as u64 {
            return Ok(purged);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_outbox_trigger_takes_the_lock_the_relay_waits_for() {
        let migration = include_str!("../../../migrations/V12__outbox_cursor.sql");
        assert!(
            migration.contains(&format!(
                "pg_advisory_xact_lock_shared({})",
                super::OUTBOX_WRITERS_LOCK
            )),
            "migration V12 and OUTBOX_WRITERS_LOCK name different locks"
        );
    }
}
