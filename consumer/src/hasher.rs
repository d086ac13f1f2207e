//! The hashing pool: opens sealed passwords and hashes them with argon2id on dedicated
//! threads (one per core by default), never on the async runtime's workers. The threads
//! run at a lower scheduling priority (`HASH_NICE`): when an api shares the cores, its
//! request handling wins the CPU and the backlog waits in Kafka.

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

/// Raises the calling thread's nice value to `nice` (never lowers it: a consumer started
/// under `nice` keeps at least that). On Linux the nice value belongs to the thread
/// (setpriority on its thread id), so the async runtime's threads keep theirs. Failing is
/// not fatal: the consumer then hashes at normal priority, and says so.
fn lower_priority(nice: i32) {
    #[cfg(target_os = "linux")]
    let result = {
        let tid = Some(rustix::thread::gettid());
        match rustix::process::getpriority_process(tid) {
            Ok(current) if current >= nice => return,
            _ => rustix::process::setpriority_process(tid, nice),
        }
    };
    #[cfg(not(target_os = "linux"))]
    let result: std::io::Result<()> = if nice == 0 {
        return;
    } else {
        Err(std::io::Error::other("per-thread priority needs Linux"))
    };
    if let Err(e) = result {
        tracing::warn!(event = "hash_nice_not_applied", nice, error = %e);
    }
}

pub struct HashPool {
    pool: rayon::ThreadPool,
    inner: Arc<(PasswordHasherService, OpeningKeys)>,
}

impl HashPool {
    /// `nice` (0-19) is applied to each hashing thread as it starts.
    pub fn new(
        threads: usize,
        nice: i32,
        hasher: PasswordHasherService,
        keys: OpeningKeys,
    ) -> anyhow::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("argon2-{i}"))
            .start_handler(move |_| lower_priority(nice))
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
            // argon2's working memory (19 MiB) is allocated once per thread's share of
            // the batch and reused hash after hash, instead of fresh pages every time;
            // it goes back to the allocator with the batch.
            let results: Vec<_> = jobs
                .par_iter()
                .map_init(
                    || hasher.memory(),
                    |memory, job| {
                        let password = keys.open(&job.sealed, job.registration_id, &job.email)?;
                        Ok(hasher.hash_with_memory(&password, memory)?)
                    },
                )
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
        let (private, _) = common::events::seal::generate_key_pair();
        let keys = OpeningKeys::parse(&format!("k:{}", private.as_str())).unwrap();
        let hasher = PasswordHasherService::new(common::domain::password::Argon2Config {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        HashPool::new(2, nice, hasher, keys).unwrap()
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
}
