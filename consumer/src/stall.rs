//! Recovery from a wedged consumer group. A broker can leave a member holding no
//! partitions while the group has lag and nobody consumes it: tansu 0.6 does this after
//! a member is `kill -9`ed under load (its successor is assigned 0 partitions and, as
//! heartbeats succeed, no rebalance ever follows). When this consumer holds nothing, the
//! topic has lag and the group's committed offsets have not moved for a whole window,
//! it leaves the group and joins again with a fresh member id, which starts a new
//! generation. With healthy members consuming, committed offsets move and nothing
//! happens, so extra idle replicas do not cause rebalances.

use std::sync::Arc;
use std::time::Duration;

use common::ops::metrics::{GroupProgress, LagMonitor};
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::kafka::LoggingContext;
use crate::metrics::ConsumerMetrics;

/// Decides, from periodic observations, when the group is stalled.
#[derive(Debug)]
pub struct StallWatch {
    window: Duration,
    idle_since: Option<(Instant, i64)>,
}

impl StallWatch {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            idle_since: None,
        }
    }

    /// One observation: how many partitions this consumer holds and the group's last
    /// measured progress. True when it should rejoin.
    pub fn observe(
        &mut self,
        now: Instant,
        assigned: usize,
        progress: Option<GroupProgress>,
    ) -> bool {
        let Some(progress) = progress else {
            return false;
        };
        if assigned > 0 {
            self.idle_since = None;
            return false;
        }
        match self.idle_since {
            Some((since, committed)) if committed == progress.committed => {
                if progress.lag > 0 && now.duration_since(since) >= self.window {
                    self.idle_since = Some((now, progress.committed));
                    return true;
                }
                false
            }
            // First idle observation, or the group moved on: measure from here.
            _ => {
                self.idle_since = Some((now, progress.committed));
                false
            }
        }
    }
}

/// Checks every `session / 2`; rejoins after `3 × session` of a stalled group.
pub fn spawn(
    consumer: Arc<StreamConsumer<LoggingContext>>,
    lag: Arc<LagMonitor>,
    metrics: Arc<ConsumerMetrics>,
    topic: String,
    session: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut watch = StallWatch::new(session * 3);
        // Every second: the assignment gauge stays current for dashboards and the
        // scale-out run; the stall decision is by elapsed time, not by tick count.
        let mut ticker = tokio::time::interval(Duration::from_secs(1).min(session / 2));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
            metrics
                .assigned_partitions
                .set(i64::try_from(assigned).unwrap_or(i64::MAX));
            if watch.observe(Instant::now(), assigned, lag.latest()) {
                let progress = lag.latest();
                tracing::warn!(
                    event = "consumer_group_stalled_rejoining",
                    lag = progress.map(|p| p.lag).unwrap_or_default(),
                    window_secs = (session * 3).as_secs(),
                );
                metrics.group_rejoins.inc();
                consumer.unsubscribe();
                if let Err(e) = consumer.subscribe(&[&topic]) {
                    tracing::error!(event = "consumer_resubscribe_failed", error = %e);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(30);

    fn progress(lag: i64, committed: i64) -> Option<GroupProgress> {
        Some(GroupProgress { lag, committed })
    }

    #[test]
    fn holding_nothing_while_the_group_does_not_move_and_has_lag_rejoins_after_the_window() {
        let mut watch = StallWatch::new(WINDOW);
        let t0 = Instant::now();
        assert!(!watch.observe(t0, 0, progress(100, 50)));
        assert!(!watch.observe(t0 + Duration::from_secs(29), 0, progress(120, 50)));
        assert!(watch.observe(t0 + Duration::from_secs(30), 0, progress(130, 50)));
        // Measured afresh after a rejoin: not again at once.
        assert!(!watch.observe(t0 + Duration::from_secs(31), 0, progress(130, 50)));
        assert!(watch.observe(t0 + Duration::from_secs(60), 0, progress(130, 50)));
    }

    #[test]
    fn an_idle_replica_beside_members_that_make_progress_stays_put() {
        let mut watch = StallWatch::new(WINDOW);
        let t0 = Instant::now();
        for (i, committed) in [50, 80, 110, 140, 170].into_iter().enumerate() {
            let at = t0 + Duration::from_secs(20 * i as u64);
            assert!(!watch.observe(at, 0, progress(500, committed)));
        }
    }

    #[test]
    fn no_lag_or_an_assignment_or_no_measurement_never_rejoins() {
        let mut watch = StallWatch::new(WINDOW);
        let t0 = Instant::now();
        assert!(!watch.observe(t0, 0, progress(0, 50)));
        assert!(!watch.observe(t0 + Duration::from_secs(60), 0, progress(0, 50)));
        assert!(!watch.observe(t0 + Duration::from_secs(90), 2, progress(10, 50)));
        assert!(!watch.observe(t0 + Duration::from_secs(200), 0, None));
    }
}
