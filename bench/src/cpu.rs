//! CPU time of the api, the consumer and the load generator around a run, read from
//! `/proc/<pid>/stat` (user + system). CPU per request is the figure that stays
//! comparable across runs on a shared machine, where throughput moves with whatever
//! else runs.

use std::time::{Duration, Instant};

use crate::report::Report;

/// The processes whose CPU a run reports (the api's and consumer's pids come from
/// `make bench`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Processes {
    pub api: Option<i32>,
    pub consumer: Option<i32>,
}

/// CPU consumed so far by each process, at one instant.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    api: Option<Duration>,
    consumer: Option<Duration>,
    harness: Option<Duration>,
    at: Instant,
}

/// CPU used between two samples.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub api: Option<Duration>,
    pub consumer: Option<Duration>,
    pub harness: Option<Duration>,
    pub wall: Duration,
}

fn cpu_of(process: procfs::ProcResult<procfs::process::Process>) -> Option<Duration> {
    let stat = process.ok()?.stat().ok()?;
    let ticks = stat.utime + stat.stime;
    Some(Duration::from_secs_f64(
        ticks as f64 / procfs::ticks_per_second() as f64,
    ))
}

fn cpu(pid: Option<i32>) -> Option<Duration> {
    cpu_of(procfs::process::Process::new(pid?))
}

impl Processes {
    pub fn sample(&self) -> Sample {
        Sample {
            api: cpu(self.api),
            consumer: cpu(self.consumer),
            harness: cpu_of(procfs::process::Process::myself()),
            at: Instant::now(),
        }
    }

    pub fn since(&self, before: &Sample) -> Usage {
        let after = self.sample();
        let delta = |a: Option<Duration>, b: Option<Duration>| Some(a?.saturating_sub(b?));
        Usage {
            api: delta(after.api, before.api),
            consumer: delta(after.consumer, before.consumer),
            harness: delta(after.harness, before.harness),
            wall: after.at - before.at,
        }
    }
}

impl Usage {
    fn share(&self, cpu: Option<Duration>) -> String {
        cpu.map_or("unknown (no pid)".into(), |c| {
            format!(
                "{:.0} % of one core",
                100.0 * c.as_secs_f64() / self.wall.as_secs_f64()
            )
        })
    }

    /// Rows: api and consumer CPU per `label` (the successful requests), and the share
    /// of a core each process (and the load generator) used.
    pub fn rows(&self, r: &mut Report, count: u64, label: &str) {
        let per = |cpu: Option<Duration>| match cpu {
            Some(c) if count > 0 => format!("{:.0} µs", c.as_secs_f64() * 1e6 / count as f64),
            Some(_) => "no successful requests".into(),
            None => "unknown (no pid)".into(),
        };
        r.row(format!("api CPU per {label}"), per(self.api));
        r.row(format!("consumer CPU per {label}"), per(self.consumer));
        r.row("api CPU", self.share(self.api));
        r.row("consumer CPU", self.share(self.consumer));
        r.row("load generator CPU", self.share(self.harness));
    }
}

/// CPU the whole machine spent (user, nice, system, interrupts, steal) so far, from
/// `/proc/stat`: what a pipeline of several processes costs in all.
pub fn machine_busy() -> Option<Duration> {
    use procfs::CurrentSI as _;
    let t = procfs::KernelStats::current().ok()?.total;
    let ticks = t.user
        + t.nice
        + t.system
        + t.irq.unwrap_or(0)
        + t.softirq.unwrap_or(0)
        + t.steal.unwrap_or(0);
    Some(Duration::from_secs_f64(
        ticks as f64 / procfs::ticks_per_second() as f64,
    ))
}

/// CPU spent so far by each process named `comm` (all PostgreSQL backends, say) alive
/// now, by pid.
#[derive(Clone, Debug, Default)]
pub struct CommandSample(std::collections::HashMap<i32, Duration>);

impl CommandSample {
    pub fn now(comm: &str) -> Self {
        Self(
            procfs::process::all_processes()
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter_map(|p| p.stat().ok())
                .filter(|s| s.comm == comm)
                .map(|s| {
                    let cpu = (s.utime + s.stime) as f64 / procfs::ticks_per_second() as f64;
                    (s.pid, Duration::from_secs_f64(cpu))
                })
                .collect(),
        )
    }

    /// CPU the processes alive at `self` spent since `before`, process by process: one
    /// that started meanwhile counts whole; one that exited meanwhile (a broker left
    /// over from the last run, a closed connection's backend) is not in `self` and takes
    /// its time with it, instead of hiding the others' behind its own.
    pub fn since(&self, before: &CommandSample) -> Duration {
        self.0
            .iter()
            .map(|(pid, now)| now.saturating_sub(before.0.get(pid).copied().unwrap_or_default()))
            .sum()
    }
}

#[cfg(test)]
mod command_sample_tests {
    use super::*;

    fn sample(cpu: &[(i32, u64)]) -> CommandSample {
        CommandSample(
            cpu.iter()
                .map(|&(pid, ms)| (pid, Duration::from_millis(ms)))
                .collect(),
        )
    }

    #[test]
    fn a_process_that_exits_between_samples_does_not_hide_the_others_time() {
        // A leftover broker (pid 1, 9 s) exits; the run's broker (pid 2) works 0.7 s.
        let before = sample(&[(1, 9_000), (2, 100)]);
        let after = sample(&[(2, 800)]);
        assert_eq!(after.since(&before), Duration::from_millis(700));
    }

    #[test]
    fn a_process_started_between_samples_counts_whole() {
        let before = sample(&[(1, 500)]);
        let after = sample(&[(1, 600), (3, 250)]);
        assert_eq!(after.since(&before), Duration::from_millis(350));
    }
}
