//! Registration status in Redis: the pending key the api claims with `SET NX`, and the
//! completed or failed key the consumer writes when a registration ends.

use std::time::Duration;

use deadpool_redis::redis::{self, AsyncCommands};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::redis::{Redis, StoreError};
use crate::domain::email::Email;
use crate::domain::registration::FailureReason;

pub const PENDING_TTL: Duration = Duration::from_secs(3600);
pub const COMPLETED_TTL: Duration = Duration::from_secs(24 * 3600);
pub const FAILED_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a consumer's `taken` mark lives: far longer than any produce timeout, the
/// longest the api can still be deciding about a registration it sent.
pub const TAKEN_TTL: Duration = Duration::from_secs(3600);
/// How long the api's `withdrawn` mark lives: longer than the topic's retention (a day
/// by default) and a week of dead-letter replays, as long as the record can be read.
pub const WITHDRAWN_TTL: Duration = Duration::from_secs(8 * 24 * 3600);

const TAKEN: &str = "taken";
const WITHDRAWN: &str = "withdrawn";

/// What [`RegistrationStatusStore::withdraw`] settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Withdrawal {
    /// No consumer had read the record; none ever will act on it.
    Withdrawn,
    /// A consumer read the record first: the broker took it after all.
    AlreadyTaken,
}

/// The value stored under the pending, completed and failed keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusRecord {
    pub registration_id: Uuid,
    /// Unix ms when this state was reached.
    pub at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailureReason>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationStatus {
    Pending(StatusRecord),
    Completed(StatusRecord),
    Failed(StatusRecord),
}

impl RegistrationStatus {
    /// The status name of the polling API and the record behind it.
    pub fn parts(&self) -> (&'static str, &StatusRecord) {
        match self {
            RegistrationStatus::Pending(r) => ("pending", r),
            RegistrationStatus::Completed(r) => ("completed", r),
            RegistrationStatus::Failed(r) => ("failed", r),
        }
    }
}

/// Everything Redis holds about an email's registrations: the one in flight and the
/// last completed and failed ones (each names its registration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusRecords {
    pub pending: Option<StatusRecord>,
    pub completed: Option<StatusRecord>,
    pub failed: Option<StatusRecord>,
}

impl StatusRecords {
    /// The email's status as its owner sees it: a pending registration wins; otherwise
    /// the newer of completed and failed.
    pub fn latest(self) -> Option<RegistrationStatus> {
        match (self.pending, self.completed, self.failed) {
            (Some(p), _, _) => Some(RegistrationStatus::Pending(p)),
            (None, Some(c), Some(f)) if f.at_ms > c.at_ms => Some(RegistrationStatus::Failed(f)),
            (None, Some(c), _) => Some(RegistrationStatus::Completed(c)),
            (None, None, Some(f)) => Some(RegistrationStatus::Failed(f)),
            (None, None, None) => None,
        }
    }

    /// The status of one registration: a later registration of the same email (someone
    /// else's, perhaps) does not change what this one's submitter sees.
    pub fn of(self, registration_id: Uuid) -> Option<RegistrationStatus> {
        let mine = |r: &Option<StatusRecord>| {
            r.as_ref()
                .is_some_and(|r| r.registration_id == registration_id)
        };
        if mine(&self.pending) {
            self.pending.map(RegistrationStatus::Pending)
        } else if mine(&self.completed) {
            self.completed.map(RegistrationStatus::Completed)
        } else if mine(&self.failed) {
            self.failed.map(RegistrationStatus::Failed)
        } else {
            None
        }
    }
}

/// How one registration ended, for `finish`.
#[derive(Debug, Clone)]
pub struct Finished {
    pub email: Email,
    pub registration_id: Uuid,
    pub reason: Option<FailureReason>,
}

impl Finished {
    pub fn completed(email: Email, registration_id: Uuid) -> Self {
        Self {
            email,
            registration_id,
            reason: None,
        }
    }

    pub fn failed(email: Email, registration_id: Uuid, reason: FailureReason) -> Self {
        Self {
            email,
            registration_id,
            reason: Some(reason),
        }
    }
}

/// Deletes the pending key only if it still belongs to this registration: a redelivered
/// old registration must not clear a newer one that is in flight.
const DELETE_PENDING_IF_OWNED: &str = r#"
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v)['registrationId'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// [`DELETE_PENDING_IF_OWNED`] with its SHA-1, for `EVALSHA` in pipelines.
static DELETE_PENDING_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(DELETE_PENDING_IF_OWNED));

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Clone)]
pub struct RegistrationStatusStore {
    redis: Redis,
}

impl RegistrationStatusStore {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// `SET NX` the pending key; `false` when a registration for this email is in flight.
    pub async fn create_pending(
        &self,
        email: &Email,
        registration_id: Uuid,
    ) -> Result<bool, StoreError> {
        let key = self.redis.keys.pending(email);
        let value = serde_json::to_string(&StatusRecord {
            registration_id,
            at_ms: now_ms(),
            reason: None,
        })?;
        self.redis
            .with_conn(move |c| {
                Box::pin(async move {
                    let set: Option<String> = redis::cmd("SET")
                        .arg(&key)
                        .arg(&value)
                        .arg("NX")
                        .arg("EX")
                        .arg(PENDING_TTL.as_secs())
                        .query_async(c)
                        .await?;
                    Ok(set.is_some())
                })
            })
            .await
    }

    /// Removes the pending key of a registration the broker did not take.
    pub async fn remove_pending(
        &self,
        email: &Email,
        registration_id: Uuid,
    ) -> Result<(), StoreError> {
        let _: i64 = self
            .redis
            .eval(
                DELETE_PENDING_IF_OWNED,
                self.redis.keys.pending(email),
                vec![registration_id.to_string()],
            )
            .await?;
        Ok(())
    }

    /// Settles a registration whose publish failed. A produce that times out may still
    /// have been written (the broker appended it, its acknowledgement was lost), so the
    /// api cannot know whether the record will be read. Redis decides: the first of the
    /// api's `withdrawn` and a consumer's `taken` (see [`Self::take`]) wins. After
    /// `Withdrawn` the api answers 503 and no consumer persists the record; after
    /// `AlreadyTaken` the record is in the log and being persisted, so the api accepts it.
    pub async fn withdraw(&self, registration_id: Uuid) -> Result<Withdrawal, StoreError> {
        let key = self.redis.keys.decision(registration_id);
        self.redis
            .with_conn(move |c| {
                Box::pin(async move {
                    let (set, now): (Option<String>, Option<String>) = redis::pipe()
                        .cmd("SET")
                        .arg(&key)
                        .arg(WITHDRAWN)
                        .arg("NX")
                        .arg("EX")
                        .arg(WITHDRAWN_TTL.as_secs())
                        .cmd("GET")
                        .arg(&key)
                        .query_async(c)
                        .await?;
                    Ok(if set.is_none() && now.as_deref() == Some(TAKEN) {
                        Withdrawal::AlreadyTaken
                    } else {
                        Withdrawal::Withdrawn
                    })
                })
            })
            .await
    }

    /// A consumer takes the registrations it is about to process: for each, `SET NX`
    /// `taken`, then reads what is there. Returns the ones the api withdrew (answered
    /// 503), which must not be persisted. One pipeline for the batch; a redelivered
    /// record finds its own `taken` and goes on.
    pub async fn take(&self, registration_ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
        if registration_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in registration_ids {
            let key = self.redis.keys.decision(*id);
            pipe.cmd("SET")
                .arg(&key)
                .arg(TAKEN)
                .arg("NX")
                .arg("EX")
                .arg(TAKEN_TTL.as_secs())
                .ignore()
                .cmd("GET")
                .arg(key);
        }
        let ids = registration_ids.to_vec();
        self.redis
            .with_conn(move |c| {
                Box::pin(async move {
                    let marks: Vec<Option<String>> = pipe.query_async(c).await?;
                    Ok(ids
                        .into_iter()
                        .zip(marks)
                        .filter(|(_, mark)| mark.as_deref() == Some(WITHDRAWN))
                        .map(|(id, _)| id)
                        .collect())
                })
            })
            .await
    }

    /// The status the owner of an email sees: see `StatusRecords::latest`.
    pub async fn lookup(&self, email: &Email) -> Result<Option<RegistrationStatus>, StoreError> {
        Ok(self.records(email).await?.latest())
    }

    /// The pending, completed and failed records of an email, in one round trip.
    pub async fn records(&self, email: &Email) -> Result<StatusRecords, StoreError> {
        let keys = [
            self.redis.keys.pending(email),
            self.redis.keys.completed(email),
            self.redis.keys.failed(email),
        ];
        let values: Vec<Option<String>> = self
            .redis
            .with_conn(move |c| Box::pin(async move { Ok(c.mget(&keys).await?) }))
            .await?;
        let parse = |v: Option<&Option<String>>| -> Result<Option<StatusRecord>, StoreError> {
            v.and_then(Option::as_deref)
                .map(serde_json::from_str)
                .transpose()
                .map_err(StoreError::from)
        };
        Ok(StatusRecords {
            pending: parse(values.first())?,
            completed: parse(values.get(1))?,
            failed: parse(values.get(2))?,
        })
    }

    /// Registrations in one state (`"pending"`, `"completed"` or `"failed"`), read with
    /// `SCAN` (never `KEYS`): at most `max` of them, with whether the scan saw every key.
    /// For the operators' console; each call walks the key space once.
    pub async fn scan(
        &self,
        state: &'static str,
        max: usize,
    ) -> Result<(Vec<(String, StatusRecord)>, bool), StoreError> {
        let prefix = format!("{}user:{state}:", self.redis.keys.prefix());
        let pattern = format!("{prefix}*");
        let (keys, complete): (Vec<String>, bool) = self
            .redis
            .with_conn(move |c| {
                Box::pin(async move {
                    let mut cursor: u64 = 0;
                    let mut keys = Vec::new();
                    loop {
                        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000)
                            .query_async(c)
                            .await?;
                        keys.extend(batch);
                        cursor = next;
                        if cursor == 0 {
                            return Ok((keys, true));
                        }
                        if keys.len() >= max {
                            return Ok((keys, false));
                        }
                    }
                })
            })
            .await?;
        let complete = complete && keys.len() <= max;
        let keys: Vec<String> = keys.into_iter().take(max).collect();
        if keys.is_empty() {
            return Ok((Vec::new(), complete));
        }
        let lookup = keys.clone();
        let values: Vec<Option<String>> = self
            .redis
            .with_conn(move |c| Box::pin(async move { Ok(c.mget(&lookup).await?) }))
            .await?;
        let mut out = Vec::with_capacity(keys.len());
        for (key, value) in keys.iter().zip(values) {
            // Gone since the scan (finished, expired): not in flight any more.
            let Some(value) = value else { continue };
            let record: StatusRecord = serde_json::from_str(&value)?;
            out.push((key[prefix.len()..].to_owned(), record));
        }
        Ok((out, complete))
    }

    /// Records the end of a batch of registrations in one pipeline: the completed or
    /// failed key, then the pending key removed if it is still theirs.
    pub async fn finish(&self, finished: &[Finished]) -> Result<(), StoreError> {
        if finished.is_empty() {
            return Ok(());
        }
        let at_ms = now_ms();
        let keys = &self.redis.keys;
        let mut pipe = redis::pipe();
        // Loaded first on the same connection, so the EVALSHAs below find it even on a
        // server that restarted or flushed its scripts: Redis hashes the body once per
        // batch instead of once per registration.
        pipe.cmd("SCRIPT")
            .arg("LOAD")
            .arg(DELETE_PENDING_IF_OWNED)
            .ignore();
        for f in finished {
            let record = serde_json::to_string(&StatusRecord {
                registration_id: f.registration_id,
                at_ms,
                reason: f.reason,
            })?;
            let (key, ttl) = match f.reason {
                None => (keys.completed(&f.email), COMPLETED_TTL),
                Some(_) => (keys.failed(&f.email), FAILED_TTL),
            };
            pipe.cmd("SET")
                .arg(key)
                .arg(record)
                .arg("EX")
                .arg(ttl.as_secs())
                .ignore();
            pipe.cmd("EVALSHA")
                .arg(DELETE_PENDING_SCRIPT.get_hash())
                .arg(1)
                .arg(keys.pending(&f.email))
                .arg(f.registration_id.to_string())
                .ignore();
        }
        self.redis.run_pipeline(pipe).await
    }

    /// Forgets the completed/failed status of an email (after its account was deleted
    /// or moved to another address), so polling answers from PostgreSQL.
    pub async fn forget(&self, email: &Email) -> Result<(), StoreError> {
        self.delete(vec![
            self.redis.keys.completed(email),
            self.redis.keys.failed(email),
        ])
        .await
    }

    /// Forgets everything about an email (erasure): pending, completed, failed.
    pub async fn forget_all(&self, email: &Email) -> Result<(), StoreError> {
        self.delete(vec![
            self.redis.keys.pending(email),
            self.redis.keys.completed(email),
            self.redis.keys.failed(email),
        ])
        .await
    }

    async fn delete(&self, keys: Vec<String>) -> Result<(), StoreError> {
        self.redis
            .with_conn(move |c| {
                Box::pin(async move {
                    let _: i64 = c.del(&keys).await?;
                    Ok(())
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(at_ms: i64) -> StatusRecord {
        StatusRecord {
            registration_id: Uuid::now_v7(),
            at_ms,
            reason: None,
        }
    }

    #[test]
    fn a_later_registration_of_the_email_does_not_change_an_earlier_ones_status() {
        let mine = record(1);
        let theirs = StatusRecord {
            reason: Some(FailureReason::EmailTaken),
            ..record(2)
        };
        let records = StatusRecords {
            pending: None,
            completed: Some(mine.clone()),
            failed: Some(theirs.clone()),
        };
        assert_eq!(
            records.clone().of(mine.registration_id),
            Some(RegistrationStatus::Completed(mine))
        );
        assert_eq!(
            records.clone().latest(),
            Some(RegistrationStatus::Failed(theirs))
        );
        assert_eq!(records.of(Uuid::now_v7()), None);
    }

    #[test]
    fn a_status_record_serialises_in_camel_case_without_an_empty_reason() {
        let r = StatusRecord {
            registration_id: Uuid::nil(),
            at_ms: 5,
            reason: None,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"registrationId":"00000000-0000-0000-0000-000000000000","atMs":5}"#
        );
    }
}
