//! Recovery from a wedged consumer group. A broker can leave partitions that nobody
//! consumes while every live member heartbeats happily. tansu 0.6 does this in two ways
//! (README, "Known limits of the local broker"): a member `kill -9`ed beside live ones
//! keeps its partitions, because tansu only expires it when some member joins again; and
//! after a leader is lost, whoever syncs first becomes leader with an empty assignment,
//! so the successor holds nothing.
//!
//! The watch looks at every partition: one is *stuck* when it has lag and the group's
//! committed offset in it has not moved for a whole window. When a partition this
//! consumer does not hold is stuck while none of its own are, the consumer leaves the
//! group and joins again with a fresh member id; the join makes the broker expire dead
//! members and hand out every partition anew. Its own partitions being stuck too means
//! a shared cause (the database is down, say), which a rebalance would not cure, so it
//! stays. Healthy members move their offsets, so idle replicas cause no rebalances.
//! Repeated rejoins without recovery back off (the window doubles, up to 8 times).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::ops::metrics::{GroupProgress, LagMonitor};
use rdkafka::consumer::{Consumer, StreamConsumer};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::kafka::LoggingContext;
use crate::metrics::ConsumerMetrics;

/// Why the consumer rejoins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// Partitions with lag whose committed offset did not move for the window.
    pub stuck: Vec<i32>,
    /// How many partitions this consumer held.
    pub held: usize,
}

/// Decides, from periodic observations, when the group is stalled.
#[derive(Debug)]
pub struct StallWatch {
    window: Duration,
    /// Per partition: the committed offset last seen and since when it has not moved.
    still: HashMap<i32, (i64, Instant)>,
    /// Rejoins since the group last recovered (for the back-off), and when the last was.
    rejoins: u32,
    last_rejoin: Option<Instant>,
}

impl StallWatch {
    pub fn new(window: Duration) -> Self {
        Self {
            window,
            still: HashMap::new(),
            rejoins: 0,
            last_rejoin: None,
        }
    }

    fn effective_window(&self) -> Duration {
        self.window * 2u32.pow(self.rejoins.min(3))
    }

    /// One observation: the partitions this consumer holds and the group's last
    /// measured progress. `Some` when it should rejoin.
    pub fn observe(
        &mut self,
        now: Instant,
        held: &BTreeSet<i32>,
        progress: Option<&GroupProgress>,
    ) -> Option<Stall> {
        let progress = progress?;
        for (partition, p) in &progress.partitions {
            match self.still.get(partition) {
                Some((committed, _)) if *committed == p.committed => {}
                _ => {
                    self.still.insert(*partition, (p.committed, now));
                }
            }
        }
        if let Some(at) = self.last_rejoin {
            // Recovered: every partition with lag has moved since the last rejoin.
            let recovered = progress.partitions.iter().all(|(partition, p)| {
                p.lag == 0
                    || self
                        .still
                        .get(partition)
                        .is_some_and(|(_, since)| *since > at)
            });
            if recovered {
                self.rejoins = 0;
                self.last_rejoin = None;
            }
        }
        let window = self.effective_window();
        let stuck: Vec<i32> = progress
            .partitions
            .iter()
            .filter(|(partition, p)| {
                p.lag > 0
                    && self
                        .still
                        .get(partition)
                        .is_some_and(|(_, since)| now.duration_since(*since) >= window)
            })
            .map(|(partition, _)| *partition)
            .collect();
        if stuck.is_empty() {
            return None;
        }
        if stuck.iter().any(|p| held.contains(p)) {
            return None;
        }
        // Measure afresh after the rejoin, with a longer window if this repeats.
        for (_, since) in self.still.values_mut() {
            *since = now;
        }
        self.rejoins += 1;
        self.last_rejoin = Some(now);
        Some(Stall {
            stuck,
            held: held.len(),
        })
    }
}

/// Watches the group every second and rejoins it when it is stalled (see the module
/// documentation). Keeps `registrar_consumer_assigned_partitions` current.
pub fn spawn(
    consumer: Arc<StreamConsumer<LoggingContext>>,
    lag: Arc<LagMonitor>,
    metrics: Arc<ConsumerMetrics>,
    topic: String,
    session: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // Two session timeouts: the broker has expired a dead member by then, and a
        // live holder commits after every batch, seconds apart. A restarted consumer
        // left with nothing thus resumes within about 25 s of its start (10 s session).
        let window = session * 2;
        let mut watch = StallWatch::new(window);
        // Every second: the assignment gauge stays current for dashboards and the
        // scale-out run; the stall decision is by elapsed time, not by tick count.
        let mut ticker = tokio::time::interval(Duration::from_secs(1).min(session / 2));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let held: BTreeSet<i32> = consumer
                .assignment()
                .map(|a| a.elements().iter().map(|e| e.partition()).collect())
                .unwrap_or_default();
            metrics
                .assigned_partitions
                .set(i64::try_from(held.len()).unwrap_or(i64::MAX));
            let progress = lag.latest();
            if let Some(stall) = watch.observe(Instant::now(), &held, progress.as_ref()) {
                tracing::warn!(
                    event = "consumer_group_stalled_rejoining",
                    stuck_partitions = ?stall.stuck,
                    held_partitions = stall.held,
                    lag = progress.map(|p| p.lag()).unwrap_or_default(),
                    window_secs = window.as_secs(),
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
    use common::ops::metrics::PartitionProgress;

    const WINDOW: Duration = Duration::from_secs(30);

    /// Progress of partitions 0..n as (lag, committed).
    fn progress(parts: &[(i64, i64)]) -> GroupProgress {
        GroupProgress {
            partitions: parts
                .iter()
                .enumerate()
                .map(|(i, &(lag, committed))| {
                    (
                        i32::try_from(i).unwrap(),
                        PartitionProgress { lag, committed },
                    )
                })
                .collect(),
        }
    }

    fn held(partitions: &[i32]) -> BTreeSet<i32> {
        partitions.iter().copied().collect()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn holding_nothing_while_the_group_does_not_move_and_has_lag_rejoins_after_the_window() {
        let mut watch = StallWatch::new(WINDOW);
        let t0 = Instant::now();
        let none = held(&[]);
        assert_eq!(
            watch.observe(t0, &none, Some(&progress(&[(100, 50)]))),
            None
        );
        assert_eq!(
            watch.observe(t0 + secs(29), &none, Some(&progress(&[(120, 50)]))),
            None
        );
        let stall = watch.observe(t0 + secs(30), &none, Some(&progress(&[(130, 50)])));
        assert_eq!(
            stall,
            Some(Stall {
                stuck: vec![0],
                held: 0
            })
        );
        // Measured afresh after a rejoin, and the next window is twice as long.
        assert_eq!(
            watch.observe(t0 + secs(31), &none, Some(&progress(&[(130, 50)]))),
            None
        );
        assert_eq!(
            watch.observe(t0 + secs(60), &none, Some(&progress(&[(130, 50)]))),
            None
        );
        assert!(watch
            .observe(t0 + secs(90), &none, Some(&progress(&[(130, 50)])))
            .is_some());
    }

    #[test]
    fn a_partition_left_behind_by_a_killed_member_makes_a_healthy_member_rejoin() {
        // This member holds partitions 0 and 1 and moves them; partition 2 (a killed
        // member's) has lag and stands still.
        let mut watch = StallWatch::new(WINDOW);
        let t0 = Instant::now();
        let mine = held(&[0, 1]);
        for step in 0..3u64 {
            let moved = i64::try_from(step).unwrap() * 10;
            let seen = progress(&[(5, 100 + moved), (5, 200 + moved), (40, 300)]);
            assert_eq!(
                watch.observe(t0 + secs(step * 14), &mine, Some(&seen)),
                None
            );
        }
        let seen = progress(&[(5, 140), (5, 240), (60, 300)]);
        assert_eq!(
            watch.observe(t0 + secs(42), &mine, Some(&seen)),
            Some(Stall {
                stuck: vec![2],
                held: 2
            })
        );
    }

    #[test]
    fn a_stall_of_its_own_partitions_too_is_a_shared_cause_and_no_reason_to_rejoin() {
        // The database is down: no partition moves, this member's included.
        let mut watch = StallWatch::new(WINDOW);
        let t0 = Instant::now();
        let mine = held(&[0]);
        let seen = progress(&[(10, 100), (10, 200)]);
        assert_eq!(watch.observe(t0, &mine, Some(&seen)), None);
        assert_eq!(watch.observe(t0 + secs(120), &mine, Some(&seen)), None);
    }

    #[test]
    fn an_idle_replica_beside_members_that_make_progress_stays_put() {
        let mut watch = StallWatch::new(WINDOW);
        let t0 = Instant::now();
        let none = held(&[]);
        for (i, committed) in [50, 80, 110, 140, 170].into_iter().enumerate() {
            let at = t0 + secs(20 * u64::try_from(i).unwrap());
            let seen = progress(&[(500, committed), (0, 10)]);
            assert_eq!(watch.observe(at, &none, Some(&seen)), None);
        }
    }

    #[test]
    fn no_lag_or_no_measurement_never_rejoins() {
        let mut watch = StallWatch::new(WINDOW);
        let t0 = Instant::now();
        let none = held(&[]);
        let idle = progress(&[(0, 50), (0, 60)]);
        assert_eq!(watch.observe(t0, &none, Some(&idle)), None);
        assert_eq!(watch.observe(t0 + secs(600), &none, Some(&idle)), None);
        assert_eq!(watch.observe(t0 + secs(900), &none, None), None);
    }
}
