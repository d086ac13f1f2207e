//! The hashing pool: opens sealed passwords and hashes them with argon2id on dedicated
//! threads (one per core by default), never on the async runtime's workers. The threads
//! run at a lower scheduling priority (`HASH_NICE`, or Linux's idle policy with
//! `HASH_SCHED_IDLE`): when an api shares the cores, its request handling wins the CPU
//! and the backlog waits in Kafka.

use std::sync::Arc;

use common::domain::email::Email;
use common::domain::password::PasswordHasherService;
use common::events::seal::{OpenError, OpeningKeys, SealedPassword};
use rayon::prelude::*;
use uuid::Uuid;

pub struct HashJob {
    pub registration_id: Uuid,
    pub email: Email,
    pub sealed: SealedPassword,
}

#[derive(Debug, thiserror::Error)]
pub enum HashJobError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Hash(#[from] common::domain::password::HashError),
    #[error("the hashing worker stopped before answering")]
    WorkerLost,
}

/// How the hashing threads are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashPriority {
    /// Nice value (0-19) of each hashing thread; never lowers an inherited one.
    pub nice: i32,
    /// Linux's `SCHED_IDLE` policy: the threads run only on a core nothing else wants
    /// (weight 3 against a normal thread's 1024), and a waking request handler takes the
    /// core from them at once instead of after their time slice.
    pub idle: bool,
}

/// Lowers the calling thread's scheduling priority. On Linux the nice value and the
/// policy belong to the thread (setpriority / sched_setscheduler on its thread id), so
/// the async runtime's threads keep theirs. Failing is not fatal: the consumer then
/// hashes at normal priority, and says so.
fn lower_priority(priority: HashPriority) {
    // The policy first: setting it also resets the nice value, which comes next.
    if priority.idle {
        if let Err(e) = idle_policy() {
            tracing::warn!(event = "hash_sched_idle_not_applied", error = %e);
        }
    }
    if let Err(e) = raise_nice(priority.nice) {
        tracing::warn!(event = "hash_nice_not_applied", nice = priority.nice, error = %e);
    }
}

/// Raises the calling thread's nice value to `nice` (a consumer started under `nice`
/// keeps at least its own).
fn raise_nice(nice: i32) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let tid = Some(rustix::thread::gettid());
        match rustix::process::getpriority_process(tid) {
            Ok(current) if current >= nice => Ok(()),
            _ => Ok(rustix::process::setpriority_process(tid, nice)?),
        }
    }
    #[cfg(not(target_os = "linux"))]
    if nice == 0 {
        Ok(())
    } else {
        Err(std::io::Error::other("per-thread priority needs Linux"))
    }
}

/// Puts the calling thread under `SCHED_IDLE` (lowering a policy needs no privilege).
fn idle_policy() -> Result<(), String> {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, thread_schedule_policy,
            NormalThreadSchedulePolicy, ThreadSchedulePolicy,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        // After the policy the crate also sets the nice value to the policy's only
        // "priority", 0, which an unprivileged thread at nice 10 may not do: what
        // counts is whether the policy took.
        let set = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            idle,
        );
        match (thread_schedule_policy(), set) {
            (Ok(policy), _) if policy == idle => Ok(()),
            (_, Err(e)) => Err(format!("{e:?}")),
            (policy, Ok(())) => Err(format!("the policy is {policy:?} after setting it")),
        }
    }
    #[cfg(not(target_os = "linux"))]
    Err("SCHED_IDLE needs Linux".into())
}

pub struct HashPool {
    pool: rayon::ThreadPool,
    inner: Arc<(PasswordHasherService, OpeningKeys)>,
}

impl HashPool {
    /// `priority` is applied to each hashing thread as it starts.
    pub fn new(
        threads: usize,
        priority: HashPriority,
        hasher: PasswordHasherService,
        keys: OpeningKeys,
    ) -> anyhow::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("argon2-{i}"))
            .start_handler(move |_| lower_priority(priority))
            .build()?;
        Ok(Self {
            pool,
            inner: Arc::new((hasher, keys)),
        })
    }

    /// Opens and hashes every job in parallel; results come back in job order. The
    /// plaintext lives only inside the worker closure and is zeroed when dropped.
    pub async fn open_and_hash(&self, jobs: Vec<HashJob>) -> Vec<Result<String, HashJobError>> {
        if jobs.is_empty() {
            return Vec::new();
        }
        let count = jobs.len();
        let inner = Arc::clone(&self.inner);
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.pool.spawn(move || {
            let (hasher, keys) = &*inner;
            let results: Vec<_> = jobs
                .par_iter()
                .map(|job| {
                    let password = keys.open(&job.sealed, job.registration_id, &job.email)?;
                    Ok(hasher.hash(&password)?)
                })
                .collect();
            let _ = tx.send(results);
        });
        // Only a panic inside the pool drops the sender; the batch then fails those
        // registrations into the DLQ instead of taking the consumer down.
        rx.await
            .unwrap_or_else(|_| (0..count).map(|_| Err(HashJobError::WorkerLost)).collect())
    }
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use super::*;

    fn pool(nice: i32) -> HashPool {
        pool_with(HashPriority { nice, idle: false })
    }

    fn pool_with(priority: HashPriority) -> HashPool {
        let (private, _) = common::events::seal::generate_key_pair();
        let keys = OpeningKeys::parse(&format!("k:{}", private.as_str())).unwrap();
        let hasher = PasswordHasherService::new(common::domain::password::Argon2Config {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        HashPool::new(2, priority, hasher, keys).unwrap()
    }

    /// The nice value of the thread running the closure, as the kernel reports it.
    fn nice_inside(pool: &HashPool) -> i32 {
        pool.pool
            .install(|| rustix::process::getpriority_process(None).unwrap())
    }

    #[test]
    fn hashing_threads_run_at_the_configured_nice_value() {
        let before = rustix::process::getpriority_process(None).unwrap();
        assert_eq!(nice_inside(&pool(10)), before.max(10));
        // The caller's own thread is untouched.
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), before);
    }

    #[test]
    fn nice_zero_leaves_the_hashing_threads_alone() {
        let before = rustix::process::getpriority_process(None).unwrap();
        assert_eq!(nice_inside(&pool(0)), before);
    }

    #[test]
    fn sched_idle_puts_only_the_hashing_threads_under_the_idle_policy() {
        use thread_priority::unix::{
            thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
        };
        let caller = thread_schedule_policy().unwrap();
        let before = rustix::process::getpriority_process(None).unwrap();
        let idle = pool_with(HashPriority {
            nice: 10,
            idle: true,
        });
        let (policy, nice) = idle.pool.install(|| {
            (
                thread_schedule_policy().unwrap(),
                rustix::process::getpriority_process(None).unwrap(),
            )
        });
        assert_eq!(
            policy,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle)
        );
        // The nice value still applies should the policy ever be changed back.
        assert_eq!(nice, before.max(10));
        let normal = pool(10).pool.install(|| thread_schedule_policy().unwrap());
        assert_eq!(normal, caller);
        assert_eq!(thread_schedule_policy().unwrap(), caller);
    }
}
