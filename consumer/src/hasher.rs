//! The hashing pool: opens sealed passwords and hashes them with argon2id on dedicated
//! threads (one per core by default), never on the async runtime's workers.

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

pub struct HashPool {
    pool: rayon::ThreadPool,
    inner: Arc<(PasswordHasherService, OpeningKeys)>,
}

impl HashPool {
    pub fn new(
        threads: usize,
        hasher: PasswordHasherService,
        keys: OpeningKeys,
    ) -> anyhow::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("argon2-{i}"))
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
