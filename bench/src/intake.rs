//! `intake` and `intake-shared`: POST registrations, with the consumer stopped or hashing.

use super::*;

/// POST registrations with unique emails; the report and the accepted rate.
pub(crate) async fn intake(c: &CommonArgs, args: LoadArgs) -> anyhow::Result<(Report, f64)> {
    let client = http();
    let before = server_buckets(&client, &c.api).await;
    let url = format!("{}/api/v1/users", c.api);
    let run = unique("intake");
    let (tally, elapsed, usage) = load(c.processes(), &args, move |i| {
        let (client, url) = (client.clone(), url.clone());
        let email = format!("{run}-{i}@bench.example");
        async move { intake_outcome(client.post(&url).json(&registration(&email)).send().await) }
    })
    .await;
    let accepted = tally.ok.as_ref().map_or(0, |h| h.len()) as f64 / elapsed.as_secs_f64();
    let after = server_buckets(&http(), &c.api).await;
    let name = if args.rate == 0 {
        "intake"
    } else {
        "intake-fixed-rate"
    };
    let report = load_report(
        name,
        format!(
            "POST /api/v1/users, unique emails, {}; broker: {}",
            mode(&args),
            c.broker_storage
        ),
        tally,
        elapsed,
        "accepted",
        &usage,
    );
    let mut report = report;
    if let Some(q) = server_quantiles(&before, &after) {
        // In the api, every answer (202 and 503): what the client waits beyond this is
        // queueing on its side or in the kernel.
        report.row("api's own latency (all answers)", q);
    }
    Ok((report, accepted))
}

pub(crate) fn signal(pid: i32, signal: rustix::process::Signal) -> anyhow::Result<()> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| anyhow::anyhow!("{pid} is not a process id"))?;
    rustix::process::kill_process(pid, signal)?;
    Ok(())
}

/// Waits until the consumer uses at least half a core (it is hashing a backlog), at most
/// `within`.
pub(crate) async fn wait_until_busy(c: &CommonArgs, within: Duration) -> bool {
    let processes = cpu::Processes {
        api: None,
        consumer: c.consumer_pid,
    };
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let before = processes.sample();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let used = processes.since(&before);
        if used
            .consumer
            .is_some_and(|c| c.as_secs_f64() >= 0.5 * used.wall.as_secs_f64())
        {
            return true;
        }
    }
    false
}

/// Intake twice with the same load: with the consumer stopped (SIGSTOP: the api alone,
/// its backlog growing in Kafka), then with the consumer hashing that backlog on the same
/// cores. The ratio is what `HASH_NICE` protects.
pub(crate) async fn intake_shared(
    c: &CommonArgs,
    args: LoadArgs,
) -> anyhow::Result<([Report; 2], f64)> {
    use rustix::process::Signal;
    let consumer = c.consumer_pid.ok_or_else(|| {
        anyhow::anyhow!("needs the consumer's pid (--consumer-pid or BENCH_CONSUMER_PID)")
    })?;
    signal(consumer, Signal::Stop)?;
    let alone = intake(c, args.clone()).await;
    signal(consumer, Signal::Cont)?;
    let (mut alone, alone_rate) = alone?;
    alone.setup = format!("{}; consumer stopped (SIGSTOP): the api alone", alone.setup);
    // The consumer rejoins its group and starts on the backlog the first run left.
    let busy = wait_until_busy(c, Duration::from_secs(60)).await;
    let (mut shared, shared_rate) = intake(c, args).await?;
    shared.name = "intake-with-consumer";
    shared.setup = format!(
        "{}; the consumer hashing the backlog of the run before on the same cores",
        shared.setup
    );
    if !busy {
        shared.row("note", "the consumer was not busy before the run started");
    }
    shared.row(
        "accepted/s vs the api alone",
        format!(
            "{:.0} % (target ≥ 80 %)",
            100.0 * shared_rate / alone_rate.max(1e-9)
        ),
    );
    Ok(([alone, shared], alone_rate))
}
