//! The api's password work (login verification, re-hashing, password changes) runs on
//! a bounded pool: at most `workers` argon2 computations at once on blocking threads,
//! at most `queue` requests waiting for one. A full queue, or a wait longer than
//! `max_wait`, answers 503 with Retry-After at once instead of piling up requests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::domain::password::PasswordHasherService;
use prometheus::{Histogram, IntGauge};
use tokio::sync::Semaphore;

use crate::service::ServiceError;

pub struct HashingPool {
    hasher: PasswordHasherService,
    permits: Arc<Semaphore>,
    queue: usize,
    waiting: AtomicUsize,
    max_wait: Duration,
    queue_depth: IntGauge,
    wait_seconds: Histogram,
}

impl HashingPool {
    pub fn new(
        hasher: PasswordHasherService,
        workers: usize,
        queue: usize,
        max_wait: Duration,
        queue_depth: IntGauge,
        wait_seconds: Histogram,
    ) -> Self {
        Self {
            hasher,
            permits: Arc::new(Semaphore::new(workers.max(1))),
            queue,
            waiting: AtomicUsize::new(0),
            max_wait,
            queue_depth,
            wait_seconds,
        }
    }

    pub fn hasher(&self) -> &PasswordHasherService {
        &self.hasher
    }

    /// Runs `work` on a blocking thread once a worker is free.
    pub async fn run<T, F>(&self, work: F) -> Result<T, ServiceError>
    where
        F: FnOnce(&PasswordHasherService) -> T + Send + 'static,
        T: Send + 'static,
    {
        let overloaded = ServiceError::Overloaded {
            retry_after_secs: 1,
        };
        let started = Instant::now();
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(overloaded);
                }
                self.queue_depth.inc();
                let acquired =
                    tokio::time::timeout(self.max_wait, Arc::clone(&self.permits).acquire_owned())
                        .await;
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                self.queue_depth.dec();
                match acquired {
                    Ok(Ok(p)) => p,
                    _ => return Err(overloaded),
                }
            }
        };
        self.wait_seconds.observe(started.elapsed().as_secs_f64());
        let hasher = self.hasher.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&hasher)
        })
        .await
        .map_err(|e| ServiceError::Internal(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::domain::password::Argon2Config;

    fn pool(workers: usize, queue: usize) -> Arc<HashingPool> {
        let hasher = PasswordHasherService::new(Argon2Config::default()).unwrap();
        Arc::new(HashingPool::new(
            hasher,
            workers,
            queue,
            Duration::from_secs(5),
            IntGauge::new("q", "q").unwrap(),
            Histogram::with_opts(prometheus::HistogramOpts::new("w", "w")).unwrap(),
        ))
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_with_retry_after() {
        let p = pool(1, 1);
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let p = Arc::clone(&p);
            tokio::spawn(async move {
                p.run(move |_| {
                    let _ = release_rx.recv();
                })
                .await
            })
        };
        // Wait until the worker is taken.
        while p.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let queued = {
            let p = Arc::clone(&p);
            tokio::spawn(async move { p.run(|_| 1).await })
        };
        while p.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let refused = p.run(|_| 2).await;
        assert!(matches!(refused, Err(ServiceError::Overloaded { .. })));
        release_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert_eq!(queued.await.unwrap().unwrap(), 1);
    }
}
