//! Finished registrations answered from memory for a few seconds: what a client polling
//! with its `registrationId` sees once its registration ended.

use common::domain::registration::FailureReason;
use common::domain::Email;
use uuid::Uuid;

/// Capacity of the in-process cache of finished registrations (about 150 bytes each).
const FINISHED_CACHE_ENTRIES: usize = 65_536;

/// How a registration ended, as polling answers it.
#[derive(Clone)]
pub struct Finished {
    email: Email,
    pub status: &'static str,
    pub reason: Option<FailureReason>,
    until: std::time::Instant,
}

/// Finished registrations (completed or failed) by registration id, answered from memory
/// for a short time (`POLL_CACHE_SECS`) when a client polls with its `registrationId`.
///
/// Why this is safe: a registration ends once; its id never goes back to pending nor
/// switches between completed and failed. The one answer that can be stale is
/// `completed` for an account deleted, erased or moved to another email within the last
/// `POLL_CACHE_SECS`, and only from another api replica: the replica that made the
/// change forgets its own answers about the email at once. Pending states are never
/// cached, so a client never waits longer for `completed`. Polling for an email's latest
/// state (owner, admin) is not cached.
pub struct FinishedRegistrations {
    cache: Option<quick_cache::sync::Cache<Uuid, Finished>>,
    ttl: std::time::Duration,
}

impl FinishedRegistrations {
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            cache: (!ttl.is_zero()).then(|| quick_cache::sync::Cache::new(FINISHED_CACHE_ENTRIES)),
            ttl,
        }
    }

    /// How the registration ended, if this replica saw it end within the TTL.
    pub fn get(&self, registration_id: Uuid, email: &Email) -> Option<Finished> {
        let hit = self.cache.as_ref()?.get(&registration_id)?;
        (hit.email == *email && hit.until > std::time::Instant::now()).then_some(hit)
    }

    /// Forgets this replica's answers about an email whose account was deleted, erased
    /// or moved to another email (other replicas' answers expire within the TTL).
    pub fn forget_email(&self, email: &Email) {
        if let Some(cache) = &self.cache {
            cache.retain(|_, finished| finished.email != *email);
        }
    }

    /// Remembers how a registration stands, if it ended (`completed` or `failed`).
    pub fn remember(
        &self,
        registration_id: Uuid,
        email: &Email,
        status: &'static str,
        reason: Option<FailureReason>,
    ) {
        let Some(cache) = &self.cache else { return };
        if status != "pending" {
            cache.insert(
                registration_id,
                Finished {
                    email: email.clone(),
                    status,
                    reason,
                    until: std::time::Instant::now() + self.ttl,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_registrations_are_remembered_pending_ones_are_not() {
        let cache = FinishedRegistrations::new(std::time::Duration::from_secs(60));
        let email = Email::parse("jane@example.com").unwrap();
        let (pending, completed, failed) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        cache.remember(pending, &email, "pending", None);
        cache.remember(completed, &email, "completed", None);
        cache.remember(failed, &email, "failed", Some(FailureReason::EmailTaken));
        assert!(cache.get(pending, &email).is_none());
        assert_eq!(cache.get(completed, &email).unwrap().status, "completed");
        let hit = cache.get(failed, &email).unwrap();
        assert_eq!(
            (hit.status, hit.reason),
            ("failed", Some(FailureReason::EmailTaken))
        );
    }

    #[test]
    fn a_remembered_state_answers_only_for_its_own_email_and_until_it_expires() {
        let email = Email::parse("jane@example.com").unwrap();
        let other = Email::parse("john@example.com").unwrap();
        let id = Uuid::new_v4();
        let cache = FinishedRegistrations::new(std::time::Duration::from_secs(60));
        cache.remember(id, &email, "completed", None);
        assert!(cache.get(id, &other).is_none());
        let expired = FinishedRegistrations::new(std::time::Duration::from_nanos(1));
        expired.remember(id, &email, "completed", None);
        std::thread::sleep(std::time::Duration::from_millis(1));
        assert!(expired.get(id, &email).is_none());
        cache.forget_email(&email);
        assert!(cache.get(id, &email).is_none(), "forgotten with its email");
        let off = FinishedRegistrations::new(std::time::Duration::ZERO);
        off.remember(id, &email, "completed", None);
        assert!(off.get(id, &email).is_none());
    }
}
