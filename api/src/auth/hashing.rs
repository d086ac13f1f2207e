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

use crate::failure::ServiceError;

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
                // Released on every exit, also when the caller's future is dropped
                // while it waits (client gone, request timeout).
                let Some(_place) = QueuePlace::take(self) else {
                    return Err(overloaded);
                };
                let acquired =
                    tokio::time::timeout(self.max_wait, Arc::clone(&self.permits).acquire_owned())
                        .await;
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

/// A place in the wait queue: counted in `waiting` and the queue-depth gauge for as
/// long as it lives.
struct QueuePlace<'a> {
    pool: &'a HashingPool,
}

impl<'a> QueuePlace<'a> {
    /// `None` when the queue is full.
    fn take(pool: &'a HashingPool) -> Option<Self> {
        if pool.waiting.fetch_add(1, Ordering::SeqCst) >= pool.queue {
            pool.waiting.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        pool.queue_depth.inc();
        Some(Self { pool })
    }
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.pool.waiting.fetch_sub(1, Ordering::SeqCst);
        self.pool.queue_depth.dec();
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

    /// Takes the only worker with a job that runs until the returned sender is used.
    async fn occupy_the_worker(
        p: &Arc<HashingPool>,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), ServiceError>>,
    ) {
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let busy = {
            let p = Arc::clone(p);
            tokio::spawn(async move {
                p.run(move |_| {
                    let _ = release_rx.recv();
                })
                .await
            })
        };
        while p.permits.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        (release_tx, busy)
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_with_retry_after() {
        let p = pool(1, 1);
        let (release_tx, busy) = occupy_the_worker(&p).await;
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

    #[tokio::test]
    async fn cancelled_waiters_give_their_queue_places_back() {
        let p = pool(1, 3);
        let (release_tx, busy) = occupy_the_worker(&p).await;
        // Clients that give up while waiting (disconnect, timeout) drop their request.
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let p = Arc::clone(&p);
                tokio::spawn(async move { p.run(|_| 0).await })
            })
            .collect();
        while p.waiting.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        for w in &waiters {
            w.abort();
        }
        for w in waiters {
            assert!(w.await.unwrap_err().is_cancelled());
        }
        assert_eq!(p.waiting.load(Ordering::SeqCst), 0, "wait count released");
        assert_eq!(p.queue_depth.get(), 0, "queue-depth gauge released");
        // The whole queue is available again.
        let queued: Vec<_> = (1..=3)
            .map(|i| {
                let p = Arc::clone(&p);
                tokio::spawn(async move { p.run(move |_| i).await })
            })
            .collect();
        while p.waiting.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        release_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        for (i, q) in queued.into_iter().enumerate() {
            assert_eq!(q.await.unwrap().unwrap(), i + 1);
        }
    }
}
