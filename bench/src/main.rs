//! `registrar-bench`: a load harness for a running api + consumer (and an in-process
//! consumer for `drain`). Each benchmark prints a Markdown table and writes it, with an
//! SVG latency plot, under `target/bench/`. `make bench` runs them all.

mod cpu;
mod report;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use report::{ms, new_histogram, Report};
use secrecy::SecretString;
use serde_json::json;

#[derive(Parser)]
#[command(name = "registrar-bench", about = "Registrar load harness")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    bench: Bench,
}

#[derive(Args, Clone)]
struct CommonArgs {
    /// The running api.
    #[arg(
        long,
        env = "BENCH_API",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    api: String,
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/registrar",
        global = true
    )]
    database_url: String,
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        global = true
    )]
    redis_url: String,
    #[arg(
        long,
        env = "KAFKA_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    brokers: String,
    /// Named in the reports: which storage the broker runs on.
    #[arg(
        long,
        env = "BENCH_BROKER_STORAGE",
        default_value = "Apache Kafka, one KRaft node",
        global = true
    )]
    broker_storage: String,
    /// The api's process id, for its CPU time and RSS (`make bench` passes it).
    #[arg(long, env = "BENCH_API_PID", global = true)]
    api_pid: Option<i32>,
    /// The consumer's process id (CPU time, RSS; stopped and continued by `intake`).
    #[arg(long, env = "BENCH_CONSUMER_PID", global = true)]
    consumer_pid: Option<i32>,
}

impl CommonArgs {
    fn processes(&self) -> cpu::Processes {
        cpu::Processes {
            api: self.api_pid,
            consumer: self.consumer_pid,
        }
    }
}

#[derive(Subcommand)]
enum Bench {
    /// POST registrations: closed loop with N clients, or open loop at --rate.
    Intake(LoadArgs),
    /// Intake with the consumer stopped, then with it hashing the backlog on the same cores.
    IntakeShared(LoadArgs),
    /// GET /api/v1/users/{email} for completed and pending emails.
    Poll(LoadArgs),
    /// Put N registrations on a fresh topic, then start a consumer and time the drain.
    Drain(DrainArgs),
    /// Registration to `completed` on the poll endpoint, at a fixed rate.
    E2e(E2eArgs),
    /// Raw argon2id rate of this machine with the configured parameters.
    Hash(HashArgs),
    /// POST /api/v1/auth/login with correct passwords (argon2 verify on the api's pool).
    Login(LoadArgs),
    /// GET /api/v1/auth/me with a valid access token (JWT verify + revocation check + read).
    Me(LoadArgs),
    /// Hold N open keep-alive connections to the api and report its resident memory.
    Connections(ConnectionsArgs),
    /// Bulk import of N pre-hashed users with `api import` (the api's settings), timed
    /// until the running consumer persisted them all.
    Import(ImportArgs),
    /// Sign-ups at a fixed rate, alone and during a bulk import over the api: intake
    /// and completion latency (is the import starving them?).
    ImportIntake(ImportIntakeArgs),
    /// Everything, with defaults that finish in a few minutes on 2 cores.
    All,
}

#[derive(Args, Clone)]
struct ImportIntakeArgs {
    #[arg(long, default_value_t = 100_000)]
    users: usize,
    /// Sign-ups per second (open loop).
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// How long sign-ups run, alone and during the import.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

#[derive(Args, Clone)]
struct ImportArgs {
    #[arg(long, default_value_t = 100_000)]
    users: usize,
}

#[derive(Args, Clone)]
struct LoadArgs {
    /// Clients of a closed loop; connections of the open-loop poll generator.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Requests per second (open loop); 0 = closed loop with `concurrency` clients.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[derive(Args, Clone)]
struct DrainArgs {
    #[arg(long, default_value_t = 600)]
    count: usize,
    #[arg(long, default_value_t = 4)]
    partitions: i32,
}

#[derive(Args, Clone)]
struct E2eArgs {
    #[arg(long, default_value_t = 20)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[derive(Args, Clone)]
struct ConnectionsArgs {
    #[arg(long, default_value_t = 1000)]
    count: usize,
}

#[derive(Args, Clone)]
struct HashArgs {
    #[command(flatten)]
    argon2: common::domain::password::Argon2Config,
    /// 0 = one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long, default_value_t = 64)]
    count: usize,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn registration(email: &str) -> serde_json::Value {
    json!({
        "firstName": "Bench", "lastName": "Mark", "email": email,
        "password": "bench-password-123", "gender": "prefer-not-to-say",
        "sex": "intersex", "occupation": "Load generator"
    })
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Latencies and status mix shared by load tasks.
#[derive(Default)]
struct Tally {
    ok: Option<Histogram<u64>>,
    other: Option<Histogram<u64>>,
    statuses: BTreeMap<String, u64>,
}

impl Tally {
    fn record(&mut self, status: String, success: bool, us: u64) {
        let h = if success {
            &mut self.ok
        } else {
            &mut self.other
        };
        let _ = h.get_or_insert_with(new_histogram).record(us.max(1));
        *self.statuses.entry(status).or_default() += 1;
    }
}

/// Runs `op` in a closed loop (N clients) or an open loop (fixed rate, latency measured
/// from the scheduled start so a stall is not hidden).
async fn load<F, Fut>(
    processes: cpu::Processes,
    args: &LoadArgs,
    op: F,
) -> (Tally, Duration, cpu::Usage)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (String, bool)> + Send,
{
    let tally = Arc::new(Mutex::new(Tally::default()));
    let op = Arc::new(op);
    let cpu_before = processes.sample();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    if let Some(nanos) = 1_000_000_000u64.checked_div(args.rate) {
        let interval = Duration::from_nanos(nanos);
        let limit = Arc::new(tokio::sync::Semaphore::new(8192));
        let mut tasks = Vec::new();
        let mut next = Instant::now();
        let mut i = 0u64;
        while next < deadline {
            tokio::time::sleep_until(next.into()).await;
            let scheduled = next;
            let (tally, op, limit) = (tally.clone(), op.clone(), limit.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                let (status, ok) = op(i).await;
                let us = scheduled.elapsed().as_micros() as u64;
                if let Ok(mut t) = tally.lock() {
                    t.record(status, ok, us);
                }
            }));
            i += 1;
            next += interval;
        }
        futures::future::join_all(tasks).await;
    } else {
        let mut tasks = Vec::new();
        for c in 0..args.concurrency {
            let (tally, op) = (tally.clone(), op.clone());
            tasks.push(tokio::spawn(async move {
                let mut i = c as u64 * 1_000_000_000;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let (status, ok) = op(i).await;
                    let us = t.elapsed().as_micros() as u64;
                    if let Ok(mut t) = tally.lock() {
                        t.record(status, ok, us);
                    }
                    i += 1;
                }
            }));
        }
        futures::future::join_all(tasks).await;
    }
    let elapsed = started.elapsed();
    let usage = processes.since(&cpu_before);
    let tally = Arc::try_unwrap(tally)
        .ok()
        .and_then(|m| m.into_inner().ok())
        .unwrap_or_default();
    (tally, elapsed, usage)
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        for (mine, theirs) in [(&mut self.ok, other.ok), (&mut self.other, other.other)] {
            if let Some(theirs) = theirs {
                let h = mine.get_or_insert_with(new_histogram);
                let _ = h.add(&theirs);
            }
        }
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
    }
}

/// GETs at a fixed rate, sent the way wrk2 sends them: `connections` keep-alive
/// HTTP/1.1 connections, each with its own share of the schedule (request `j` of
/// connection `k` is due at `start + (j·connections + k)·interval`). A late answer delays
/// the next request of its connection and both are measured from their due time, so a
/// stall is not hidden. No task, lock or client pool per request: at 20 000 req/s the
/// generic generator above (a task per request through reqwest) took most of a core
/// that the api needs on this two-core machine.
async fn open_loop_gets(
    processes: cpu::Processes,
    api: &str,
    paths: Arc<Vec<String>>,
    rate: u64,
    seconds: u64,
    connections: usize,
) -> anyhow::Result<(Tally, Duration, cpu::Usage)> {
    let url = reqwest::Url::parse(api)?;
    anyhow::ensure!(
        url.scheme() == "http",
        "the open-loop generator speaks plain HTTP"
    );
    let authority = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port_or_known_default().unwrap_or(80)
    );
    let connections = connections.max(1) as u64;
    let interval_ns = 1_000_000_000 / rate.max(1);
    let total = rate * seconds;
    let cpu_before = processes.sample();
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::new();
    for k in 0..connections {
        let (authority, paths) = (authority.clone(), paths.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut sender = None;
            let mut j = 0u64;
            loop {
                let n = j * connections + k;
                if n >= total {
                    break;
                }
                let due = start + Duration::from_nanos(n * interval_ns);
                tokio::time::sleep_until(due.into()).await;
                let path = &paths[(n % paths.len() as u64) as usize];
                let status = get(&mut sender, &authority, path).await;
                let us = due.elapsed().as_micros() as u64;
                match status {
                    Some(200) => tally.record("200".into(), true, us),
                    Some(code) => tally.record(code.to_string(), false, us),
                    None => tally.record("error".into(), false, us),
                }
                j += 1;
            }
            tally
        }));
    }
    let mut tally = Tally::default();
    for t in futures::future::join_all(tasks).await {
        tally.merge(t?);
    }
    let elapsed = start.elapsed();
    Ok((tally, elapsed, processes.since(&cpu_before)))
}

type Http1Sender =
    hyper::client::conn::http1::SendRequest<http_body_util::Empty<hyper::body::Bytes>>;

/// One GET on the connection, opened (again) if it is not there; the status, or `None`
/// when the connection failed (it is then opened anew for the next request).
async fn get(sender: &mut Option<Http1Sender>, authority: &str, path: &str) -> Option<u16> {
    use http_body_util::BodyExt;
    if sender.as_ref().is_none_or(|s| s.is_closed()) {
        let stream = tokio::net::TcpStream::connect(authority).await.ok()?;
        stream.set_nodelay(true).ok()?;
        let (s, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(conn);
        *sender = Some(s);
    }
    let s = sender.as_mut()?;
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .body(http_body_util::Empty::new())
        .ok()?;
    let result = async {
        s.ready().await?;
        let response = s.send_request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok::<_, hyper::Error>(status)
    }
    .await;
    match result {
        Ok(status) => Some(status),
        Err(_) => {
            *sender = None;
            None
        }
    }
}

/// A response's status as a label, and whether it is the one expected.
fn outcome(response: reqwest::Result<reqwest::Response>, expected: u16) -> (String, bool) {
    match response {
        Ok(r) => (r.status().as_u16().to_string(), r.status() == expected),
        Err(_) => ("error".into(), false),
    }
}

fn mode(args: &LoadArgs) -> String {
    if args.rate == 0 {
        format!(
            "{} concurrent clients for {} s",
            args.concurrency, args.seconds
        )
    } else {
        format!("open loop at {} req/s for {} s", args.rate, args.seconds)
    }
}

/// The report of a load run: throughput and latencies of the successes, status mix.
fn load_report(
    name: &'static str,
    setup: String,
    tally: Tally,
    elapsed: Duration,
    ok_label: &str,
    usage: &cpu::Usage,
) -> Report {
    let mut r = Report::new(name, setup);
    add_tally(&mut r, &tally, elapsed, ok_label);
    let ok = tally.ok.as_ref().map_or(0, |h| h.len());
    let unit = match ok_label {
        "accepted" => "accepted registration",
        "completed" => "completed registration",
        other => other.strip_suffix('s').unwrap_or(other),
    };
    usage.rows(&mut r, ok, unit);
    r.latency = tally.ok;
    r
}

fn add_tally(r: &mut Report, tally: &Tally, elapsed: Duration, ok_label: &str) {
    let ok = tally.ok.as_ref().map_or(0, |h| h.len());
    r.row(
        format!("{ok_label}/s"),
        format!("{:.0}", ok as f64 / elapsed.as_secs_f64()),
    );
    let mix: Vec<String> = tally
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    r.row("status mix", mix.join(", "));
    if let Some(h) = &tally.ok {
        r.latency_rows(h, ok_label);
    }
    if let Some(h) = &tally.other {
        r.latency_rows(h, "non-success");
    }
}

/// An intake answer: 202 is the success; a 503 says whether it told the client when to
/// come back.
fn intake_outcome(response: reqwest::Result<reqwest::Response>) -> (String, bool) {
    match response {
        Ok(r) if r.status() == 503 => {
            let label = if r.headers().contains_key(reqwest::header::RETRY_AFTER) {
                "503 with Retry-After"
            } else {
                "503 without Retry-After"
            };
            (label.into(), false)
        }
        other => outcome(other, 202),
    }
}

/// The api's own latency histogram of `POST /api/v1/users` (cumulative bucket counts by
/// upper bound), from its `/metrics`.
async fn server_buckets(client: &reqwest::Client, api: &str) -> Vec<(f64, u64)> {
    let Ok(response) = client.get(format!("{api}/metrics")).send().await else {
        return Vec::new();
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.starts_with("registrar_http_request_duration_seconds_bucket{")
                && l.contains(r#"method="POST""#)
                && l.contains(r#"route="/api/v1/users""#)
        })
        .filter_map(|l| {
            let le = l.split(r#"le=""#).nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let count = l.rsplit(' ').next()?.parse().ok()?;
            Some((le, count))
        })
        .collect()
}

/// Server-side quantiles of the requests between two histogram snapshots, as the
/// bucket bounds they fall under.
fn server_quantiles(before: &[(f64, u64)], after: &[(f64, u64)]) -> Option<String> {
    let deltas: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, n)| {
            let old = before.iter().find(|(l, _)| l == le).map_or(0, |(_, n)| *n);
            (*le, n.saturating_sub(old))
        })
        .collect();
    let total = deltas.iter().map(|(_, n)| *n).max()?;
    let at = |q: f64| {
        deltas
            .iter()
            .find(|(_, n)| *n as f64 >= q * total as f64)
            .map_or("?".to_owned(), |(le, _)| format!("≤ {:.1} ms", le * 1000.0))
    };
    (total > 0).then(|| format!("p50 {}, p99 {} ({total} requests)", at(0.5), at(0.99)))
}

/// POST registrations with unique emails; the report and the accepted rate.
async fn intake(c: &CommonArgs, args: LoadArgs) -> anyhow::Result<(Report, f64)> {
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

fn signal(pid: i32, signal: rustix::process::Signal) -> anyhow::Result<()> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| anyhow::anyhow!("{pid} is not a process id"))?;
    rustix::process::kill_process(pid, signal)?;
    Ok(())
}

/// Waits until the consumer uses at least half a core (it is hashing a backlog), at most
/// `within`.
async fn wait_until_busy(c: &CommonArgs, within: Duration) -> bool {
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
async fn intake_shared(c: &CommonArgs, args: LoadArgs) -> anyhow::Result<([Report; 2], f64)> {
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

/// The `Location` of a 202: where its registration is polled.
fn location_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Polls the `Location` of a 202 (the email and the registration id) until completed.
async fn wait_completed(
    client: &reqwest::Client,
    api: &str,
    location: &str,
    within: Duration,
) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{api}{location}")).send().await {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                if v["data"]["status"] == "completed" {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

async fn poll(c: &CommonArgs, args: LoadArgs) -> anyhow::Result<Report> {
    let client = http();
    let run = unique("poll");
    // Polled as a frontend does: the `Location` of each 202 (email and registration id).
    let mut locations = Vec::new();
    for i in 0..20 {
        let email = format!("{run}-{i}@bench.example");
        let accepted = client
            .post(format!("{}/api/v1/users", c.api))
            .json(&registration(&email))
            .send()
            .await?;
        let location = location_of(&accepted)
            .ok_or_else(|| anyhow::anyhow!("registration of {email} was not accepted"))?;
        locations.push(location);
    }
    // Half of them completed, half possibly still pending: both kinds are polled.
    for l in &locations[..10] {
        wait_completed(&client, &c.api, l, Duration::from_secs(10)).await;
    }
    let locations = Arc::new(locations);
    let (tally, elapsed, usage) = if args.rate > 0 {
        open_loop_gets(
            c.processes(),
            &c.api,
            locations,
            args.rate,
            args.seconds,
            args.concurrency,
        )
        .await?
    } else {
        let api = c.api.clone();
        load(c.processes(), &args, move |i| {
            let client = client.clone();
            let url = format!("{api}{}", locations[(i % locations.len() as u64) as usize]);
            async move { outcome(client.get(&url).send().await, 200) }
        })
        .await
    };
    let name = if args.rate == 0 {
        "poll"
    } else {
        "poll-fixed-rate"
    };
    Ok(load_report(
        name,
        format!(
            "GET /api/v1/users/{{email}}?registrationId= over 20 registrations (completed and pending), {}{}",
            mode(&args),
            if args.rate > 0 {
                format!(" over {} keep-alive connections (wrk2-style schedule)", args.concurrency)
            } else {
                String::new()
            }
        ),
        tally,
        elapsed,
        "requests",
        &usage,
    ))
}

/// Registers `n` users and waits until they are persisted; returns their emails.
async fn completed_users(c: &CommonArgs, prefix: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let client = http();
    let run = unique(prefix);
    let mut emails = Vec::new();
    let mut locations = Vec::new();
    for i in 0..n {
        let email = format!("{run}-{i}@bench.example");
        let response = client
            .post(format!("{}/api/v1/users", c.api))
            .json(&registration(&email))
            .send()
            .await?;
        let status = response.status();
        let Some(location) = location_of(&response).filter(|_| status == 202) else {
            anyhow::bail!("registration answered {status} (rate limits must be off: AUTH_RATE_LIMIT_PER_MINUTE=0)");
        };
        emails.push(email);
        locations.push(location);
    }
    for (e, l) in emails.iter().zip(&locations) {
        if !wait_completed(&client, &c.api, l, Duration::from_secs(60)).await {
            anyhow::bail!("{e} was not persisted within 60 s");
        }
    }
    Ok(emails)
}

async fn login(c: &CommonArgs, args: LoadArgs) -> anyhow::Result<Report> {
    let emails = Arc::new(completed_users(c, "login", 32).await?);
    let client = http();
    let url = format!("{}/api/v1/auth/login", c.api);
    let (tally, elapsed, usage) = load(c.processes(), &args, move |i| {
        let (client, url) = (client.clone(), url.clone());
        // Clients start at i = client * 10^9: spread them over the users so no account
        // sees more than a couple of logins at once (more would trip its lockout).
        let n = emails.len() as u64;
        let email = emails[((i / 1_000_000_000 + i) % n) as usize].clone();
        async move {
            let body = json!({ "email": email, "password": "bench-password-123" });
            outcome(client.post(&url).json(&body).send().await, 200)
        }
    })
    .await;
    Ok(load_report(
        "login",
        format!(
            "POST /api/v1/auth/login over 32 users with their passwords (argon2id verify with the api's ARGON2_* parameters), {}",
            mode(&args)
        ),
        tally,
        elapsed,
        "logins",
        &usage,
    ))
}

async fn me(c: &CommonArgs, args: LoadArgs) -> anyhow::Result<Report> {
    let email = completed_users(c, "me", 1).await?.remove(0);
    let client = http();
    let tokens: serde_json::Value = client
        .post(format!("{}/api/v1/auth/login", c.api))
        .json(&json!({ "email": email, "password": "bench-password-123" }))
        .send()
        .await?
        .json()
        .await?;
    let token = tokens["accessToken"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("login failed: {tokens}"))?
        .to_owned();
    let url = format!("{}/api/v1/auth/me", c.api);
    let (tally, elapsed, usage) = load(c.processes(), &args, move |_| {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move { outcome(client.get(&url).bearer_auth(token).send().await, 200) }
    })
    .await;
    Ok(load_report(
        "me",
        format!(
            "GET /api/v1/auth/me with an access token (EdDSA verify, Redis revocation check, PostgreSQL read), {}",
            mode(&args)
        ),
        tally,
        elapsed,
        "requests",
        &usage,
    ))
}

async fn e2e(c: &CommonArgs, args: E2eArgs) -> anyhow::Result<Report> {
    let client = http();
    let run = unique("e2e");
    let api = c.api.clone();
    let load_args = LoadArgs {
        concurrency: 0,
        rate: args.rate,
        seconds: args.seconds,
    };
    let (tally, elapsed, usage) = load(c.processes(), &load_args, move |i| {
        let (client, api) = (client.clone(), api.clone());
        let email = format!("{run}-{i}@bench.example");
        async move {
            match client
                .post(format!("{api}/api/v1/users"))
                .json(&registration(&email))
                .send()
                .await
            {
                Ok(r) if r.status() == 202 => {
                    let location = location_of(&r).unwrap_or_default();
                    if wait_completed(&client, &api, &location, Duration::from_secs(60)).await {
                        ("completed".into(), true)
                    } else {
                        ("not completed in 60 s".into(), false)
                    }
                }
                Ok(r) => (r.status().as_u16().to_string(), false),
                Err(_) => ("error".into(), false),
            }
        }
    })
    .await;
    Ok(load_report(
        "e2e", format!("POST then poll every 5 ms until completed, open loop at {} registrations/s for {} s; broker: {}", args.rate, args.seconds, c.broker_storage),
        tally,
        elapsed,
        "completed",
        &usage,
    ))
}

fn hash(args: &HashArgs) -> anyhow::Result<(Report, f64)> {
    use rayon::prelude::*;
    let hasher = common::domain::password::PasswordHasherService::new(args.argon2)?;
    let threads = if args.threads == 0 {
        cores()
    } else {
        args.threads
    };
    let pw = SecretString::from("bench-password-123".to_owned());
    let mut single = new_histogram();
    let mut memory = hasher.memory();
    for _ in 0..5 {
        let t = Instant::now();
        hasher.hash_with_memory(&pw, &mut memory)?;
        single.record(t.elapsed().as_micros() as u64)?;
    }
    drop(memory);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    // As the consumer hashes: working memory kept by each thread from hash to hash.
    let started = Instant::now();
    pool.install(|| {
        (0..args.count).into_par_iter().try_for_each_init(
            || hasher.memory(),
            |memory, _| hasher.hash_with_memory(&pw, memory).map(|_| ()),
        )
    })?;
    let rate = args.count as f64 / started.elapsed().as_secs_f64();
    // And with fresh memory for every hash (what the consumer did before).
    let started = Instant::now();
    pool.install(|| {
        (0..args.count)
            .into_par_iter()
            .try_for_each(|_| hasher.hash(&pw).map(|_| ()))
    })?;
    let fresh_rate = args.count as f64 / started.elapsed().as_secs_f64();
    let a = args.argon2;
    let mut r = Report::new(
        "hash",
        format!(
            "argon2id m={} KiB, t={}, p={}; {} hashes on {threads} threads",
            a.memory_kib, a.iterations, a.parallelism, args.count
        ),
    );
    r.row(
        "hashes/s (all threads, working memory reused)",
        format!("{rate:.1}"),
    );
    r.row(
        "hashes/s (all threads, fresh memory per hash)",
        format!("{fresh_rate:.1}"),
    );
    r.row(
        "hashes/s per thread",
        format!("{:.1}", rate / threads as f64),
    );
    r.row(
        "one hash p50 (single thread)",
        ms(single.value_at_quantile(0.5)),
    );
    r.latency = Some(single);
    Ok((r, rate))
}

/// Resident set size of a process in MiB, from /proc.
fn rss_mib(pid: i32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

async fn connections(c: &CommonArgs, args: ConnectionsArgs) -> anyhow::Result<Report> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = c.api.trim_start_matches("http://").to_owned();
    let before = c.api_pid.and_then(rss_mib);
    let mut open = Vec::with_capacity(args.count);
    for _ in 0..args.count {
        let mut stream = tokio::net::TcpStream::connect(&authority).await?;
        stream
            .write_all(
                format!("GET /api/v1/v1/health/live HTTP/1.1\r\nHost: {authority}\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut buf = [0u8; 512];
        let _ = stream.read(&mut buf).await?;
        open.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = c.api_pid.and_then(rss_mib);
    let fmt = |v: Option<f64>| {
        v.map_or("unknown (no --api-pid)".to_owned(), |m| {
            format!("{m:.1} MiB")
        })
    };
    let mut r = Report::new(
        "memory",
        format!(
            "{} keep-alive connections held open, one request served on each",
            open.len()
        ),
    );
    r.row("api RSS before", fmt(before));
    r.row(
        format!("api RSS with {} connections", open.len()),
        fmt(during),
    );
    if let Some(pid) = c.consumer_pid {
        r.row("consumer RSS", fmt(rss_mib(pid)));
    }
    drop(open);
    Ok(r)
}

#[derive(Parser)]
#[command(args_override_self = true)]
struct ConsumerCli {
    #[command(flatten)]
    config: registrar_consumer::config::ConsumerConfig,
}

async fn drain(
    c: &CommonArgs,
    args: DrainArgs,
    hash_rate: Option<f64>,
) -> anyhow::Result<(Report, f64)> {
    let run = unique("drain");
    let topic = format!("bench-{run}");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &c.brokers)
        .create()?;
    let dlq = format!("{topic}.dlq");
    let topics = [
        NewTopic::new(&topic, args.partitions, TopicReplication::Fixed(1)),
        NewTopic::new(&dlq, 1, TopicReplication::Fixed(1)),
    ];
    admin.create_topics(&topics, &AdminOptions::new()).await?;
    let (private, public) = common::events::seal::generate_key_pair();
    let key = common::events::seal::SealingKey::from_base64("bench", &public)?;
    // Signed as the api signs a sign-up: the consumer verifies every record first.
    use common::events::signature::{generate, Purpose, RecordSigner, SIGNATURE_HEADER};
    let (signing, verifying) = generate(Purpose::Registration, "bench");
    let signer = RecordSigner::parse(Purpose::Registration, &signing)?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &c.brokers)
        .set("linger.ms", "5")
        .create()?;
    let pw = SecretString::from("bench-password-123".to_owned());
    let mut sends = Vec::new();
    for i in 0..args.count {
        let email = common::domain::Email::parse(&format!("{run}-{i}@bench.example"))?;
        let id = common::domain::registration::new_registration_id();
        let event = common::events::registration::RegistrationEvent {
            registration_id: id,
            email: email.as_str().to_owned(),
            first_name: "Bench".into(),
            last_name: "Mark".into(),
            gender: "male".into(),
            sex: Some("male".into()),
            occupation: Some("Load generator".into()),
            credential: common::events::registration::Credential::Sealed(key.seal(id, &email, &pw)),
            submitted_at_ms: 0,
            request_id: None,
            username: None,
            date_of_birth: None,
            role: None,
            created_at_ms: None,
            email_verified: false,
            import: None,
        };
        let payload = event.encode()?;
        let signature = signer.sign(email.as_str().as_bytes(), &payload);
        let producer = producer.clone();
        let (topic, email) = (topic.clone(), email.as_str().to_owned());
        sends.push(async move {
            producer
                .send(
                    FutureRecord::to(&topic)
                        .key(&email)
                        .payload(&payload)
                        .headers(rdkafka::message::OwnedHeaders::new().insert(
                            rdkafka::message::Header {
                                key: SIGNATURE_HEADER,
                                value: Some(signature.as_str()),
                            },
                        )),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
        });
    }
    for s in futures::future::join_all(sends).await {
        s?;
    }
    let args_vec: Vec<String> = [
        "consumer",
        "--consumer-port",
        "0",
        "--host",
        "127.0.0.1",
        "--database-url",
        &c.database_url,
        "--redis-url",
        &c.redis_url,
        "--redis-key-prefix",
        &format!("{run}:"),
        "--kafka-brokers",
        &c.brokers,
        "--kafka-topic",
        &topic,
        "--kafka-group-id",
        &format!("{run}-group"),
        "--seal-private-keys",
        &format!("bench:{}", private.as_str()),
        "--record-verifying-keys",
        &verifying,
        "--log-level",
        "warn",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let config = ConsumerCli::parse_from(args_vec).config;
    let token = tokio_util::sync::CancellationToken::new();
    let consumer = registrar_consumer::Consumer::build(&config, token.clone())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let (pg, conn) = tokio_postgres::connect(&c.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let pattern = format!("{run}-%");
    let started = Instant::now();
    let task = tokio::spawn(consumer.run(listener));
    let seen = watch_persisted(&pg, &pattern, args.count, started).await?;
    let end = Instant::now();
    let elapsed = end.duration_since(started);
    let persisted = seen.persisted;
    let steady = seen.steady_rate(end);
    token.cancel();
    let _ = task.await;
    delete_bench_users(&pg, &pattern).await?;
    let rate = persisted as f64 / elapsed.as_secs_f64();
    let mut r = Report::new("drain", format!("{} sealed registrations on a fresh {}-partition topic, consumer started afterwards (batch {}, {} hash threads, argon2 OWASP defaults); broker: {}", args.count, args.partitions, config.batch_size, config.hash_threads(), c.broker_storage));
    r.row("persisted", format!("{persisted} of {}", args.count));
    r.row("persisted/s", format!("{rate:.1}"));
    r.row("time to drain", format!("{:.2} s", elapsed.as_secs_f64()));
    if let Some((at, _)) = seen.first {
        r.row(
            "consumer start to its first users",
            format!("{:.2} s", at.duration_since(started).as_secs_f64()),
        );
    }
    if let Some(steady) = steady {
        r.row(
            "persisted/s once started (first users to last)",
            format!("{steady:.1}"),
        );
    }
    if let Some(h) = hash_rate {
        r.row(
            "share of the raw hash rate",
            format!(
                "{:.0} % in all, {} once started",
                100.0 * rate / h,
                steady.map_or("–".into(), |s| format!("{:.0} %", 100.0 * s / h))
            ),
        );
    }
    Ok((r, rate))
}

/// Polls until `count` users whose email matches `pattern` exist (or 10 minutes
/// passed); returns how many there are.
async fn wait_persisted(
    pg: &tokio_postgres::Client,
    pattern: &str,
    count: usize,
    started: Instant,
) -> anyhow::Result<i64> {
    Ok(watch_persisted(pg, pattern, count, started)
        .await?
        .persisted)
}

/// What [`watch_persisted`] saw.
struct Persisting {
    persisted: i64,
    /// When the first users were seen, and how many there were then.
    first: Option<(Instant, i64)>,
}

impl Persisting {
    /// Users per second from the first seen to the last, the consumer's start (group
    /// join, first fetch) left out.
    fn steady_rate(&self, end: Instant) -> Option<f64> {
        let (at, n) = self.first?;
        let secs = end.duration_since(at).as_secs_f64();
        (secs > 0.0 && self.persisted > n).then(|| (self.persisted - n) as f64 / secs)
    }
}

async fn watch_persisted(
    pg: &tokio_postgres::Client,
    pattern: &str,
    count: usize,
    started: Instant,
) -> anyhow::Result<Persisting> {
    let mut seen = Persisting {
        persisted: 0,
        first: None,
    };
    while started.elapsed() < Duration::from_secs(600) {
        seen.persisted = pg
            .query_one(
                "SELECT count(*) FROM users WHERE email LIKE $1",
                &[&pattern],
            )
            .await?
            .get(0);
        if seen.persisted > 0 && seen.first.is_none() {
            seen.first = Some((Instant::now(), seen.persisted));
        }
        if seen.persisted as usize >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(seen)
}

/// One sample (a line without labels) of the consumer's metrics at `metrics_url`.
async fn consumer_sample(metrics_url: &str, name: &str) -> anyhow::Result<f64> {
    let text = http().get(metrics_url).send().await?.text().await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("{metrics_url} has no {name}"))
}

/// Users the consumer at `metrics_url` persisted so far (its
/// `registrar_consumer_users_persisted_total`): polling it costs PostgreSQL nothing,
/// where counting rows by email pattern scans `users` on every poll.
async fn persisted_counter(metrics_url: &str) -> anyhow::Result<u64> {
    Ok(consumer_sample(metrics_url, "registrar_consumer_users_persisted_total").await? as u64)
}

/// The consumer's batches so far: `(count, records, seconds spent processing)`.
async fn batch_totals(metrics_url: &str) -> anyhow::Result<(f64, f64, f64)> {
    Ok((
        consumer_sample(metrics_url, "registrar_consumer_batch_size_count").await?,
        consumer_sample(metrics_url, "registrar_consumer_batch_size_sum").await?,
        consumer_sample(metrics_url, "registrar_consumer_batch_duration_seconds_sum").await?,
    ))
}

/// Removes a benchmark's users and every row that refers to them. The consumer's mailer
/// may still be issuing verification tokens for them meanwhile (a token inserted between
/// the deletes makes the last one fail its foreign key): then it starts over.
async fn delete_bench_users(pg: &tokio_postgres::Client, pattern: &str) -> anyhow::Result<()> {
    // Statistics that know the rows about to go: on a server without autovacuum the
    // planner may still think these tables empty and join them by scanning each in full
    // for every row of the other.
    pg.batch_execute(BENCH_TABLES_ANALYZE).await?;
    let mut attempt = 1;
    loop {
        match delete_bench_users_once(pg, pattern).await {
            Err(e)
                if attempt < 10
                    && e.code()
                        == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) =>
            {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => {
                other?;
                break;
            }
        }
    }
    // What autovacuum would do before the next run: without it (some servers run with
    // it off) every run inserts into indexes full of the last run's dead entries and
    // gets slower than the one before. Pages stay (no truncation), so the planner does
    // not take the emptied tables for empty ones.
    pg.batch_execute(BENCH_TABLES_VACUUM).await?;
    Ok(())
}

const BENCH_TABLES_ANALYZE: &str = "ANALYZE users, user_audit_log, user_event_outbox, mail_outbox";
const BENCH_TABLES_VACUUM: &str =
    "VACUUM (TRUNCATE false) users, user_audit_log, user_event_outbox, mail_outbox";

async fn delete_bench_users_once(
    pg: &tokio_postgres::Client,
    pattern: &str,
) -> Result<(), tokio_postgres::Error> {
    for sql in [
        "DELETE FROM user_audit_log WHERE user_id IN (SELECT id FROM users WHERE email LIKE $1)",
        "DELETE FROM user_event_outbox WHERE user_id IN (SELECT id FROM users WHERE email LIKE $1)",
        "DELETE FROM mail_outbox WHERE user_id IN (SELECT id FROM users WHERE email LIKE $1)",
        "DELETE FROM account_tokens WHERE user_id IN (SELECT id FROM users WHERE email LIKE $1)",
        "DELETE FROM refresh_tokens WHERE user_id IN (SELECT id FROM users WHERE email LIKE $1)",
        "DELETE FROM data_store WHERE user_id IN (SELECT id FROM users WHERE email LIKE $1)",
        "DELETE FROM users WHERE email LIKE $1",
    ] {
        pg.execute(sql, &[&pattern]).await?;
    }
    Ok(())
}

/// Writes an NDJSON import of `users` pre-hashed, verified accounts (emails
/// `<run>-<i>@import.bench`); returns its size and the seconds it took.
fn write_import_file(
    file: &std::path::Path,
    run: &str,
    users: usize,
) -> anyhow::Result<(u64, f64)> {
    use std::io::Write as _;
    // One argon2id hash (production parameters) for everyone: import stores hashes as
    // they come, so the file's cost does not depend on them.
    let hasher = common::domain::password::PasswordHasherService::new(Default::default())?;
    let phc = hasher.hash(&SecretString::from("imported-password-123".to_owned()))?;
    let generated = Instant::now();
    let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
    for i in 0..users {
        serde_json::to_writer(
            &mut out,
            &serde_json::json!({
                "firstName": "Bulk", "lastName": "Import", "email": format!("{run}-{i}@import.bench"),
                "gender": "female", "passwordHash": phc, "emailVerified": true,
                "createdAt": "2021-06-01T12:00:00Z",
            }),
        )?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok((
        std::fs::metadata(file)?.len(),
        generated.elapsed().as_secs_f64(),
    ))
}

/// Sign-ups at a fixed rate, alone and then while an admin imports `users` lines over
/// the api (same process, same producer, same topic, same consumer): intake latency
/// (the POST's 202) and completion latency (until the poll says completed).
async fn import_intake(c: &CommonArgs, args: ImportIntakeArgs) -> anyhow::Result<Report> {
    let client = http();
    let (pg, conn) = tokio_postgres::connect(&c.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    // An admin: registered through the pipeline, promoted in the database, logged in.
    let admin = completed_users(c, "import-admin", 1).await?.remove(0);
    pg.execute(
        "UPDATE users SET role = 'admin' WHERE email = $1",
        &[&admin],
    )
    .await?;
    let login: serde_json::Value = client
        .post(format!("{}/api/v1/auth/login", c.api))
        .json(&json!({ "email": admin, "password": "bench-password-123" }))
        .send()
        .await?
        .json()
        .await?;
    let token = login["accessToken"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("admin login failed: {login}"))?
        .to_owned();
    let run = unique("import-intake");
    let file = std::path::Path::new("target/bench").join(format!("{run}.ndjson"));
    std::fs::create_dir_all("target/bench")?;
    let (bytes, _) = write_import_file(&file, &run, args.users)?;

    let signups = |label: &'static str| {
        let (client, api, run) = (client.clone(), c.api.clone(), unique(label));
        let intake = Arc::new(Mutex::new(new_histogram()));
        let load_args = LoadArgs {
            concurrency: 0,
            rate: args.rate,
            seconds: args.seconds,
        };
        let recorded = intake.clone();
        let processes = c.processes();
        async move {
            let (tally, _, _) = load(processes, &load_args, move |i| {
                let (client, api, intake) = (client.clone(), api.clone(), recorded.clone());
                let email = format!("{run}-{i}@bench.example");
                async move {
                    let sent = Instant::now();
                    let response = client
                        .post(format!("{api}/api/v1/users"))
                        .json(&registration(&email))
                        .send()
                        .await;
                    if let Ok(mut h) = intake.lock() {
                        let _ = h.record(sent.elapsed().as_micros().max(1) as u64);
                    }
                    match response {
                        Ok(r) if r.status() == 202 => {
                            let location = location_of(&r).unwrap_or_default();
                            if wait_completed(&client, &api, &location, Duration::from_secs(120))
                                .await
                            {
                                ("completed".into(), true)
                            } else {
                                ("not completed in 120 s".into(), false)
                            }
                        }
                        Ok(r) => (r.status().as_u16().to_string(), false),
                        Err(_) => ("error".into(), false),
                    }
                }
            })
            .await;
            let intake = Arc::try_unwrap(intake)
                .ok()
                .and_then(|m| m.into_inner().ok())
                .unwrap_or_else(new_histogram);
            (intake, tally)
        }
    };
    let quantiles = |h: &Histogram<u64>| {
        format!(
            "p50 {} · p99 {} · max {} ({} requests)",
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max()),
            h.len()
        )
    };
    let completion = |t: &Tally| {
        let failed: u64 = t
            .statuses
            .iter()
            .filter(|(s, _)| s.as_str() != "completed")
            .map(|(_, n)| n)
            .sum();
        match &t.ok {
            Some(h) => format!("{}; {failed} not completed", quantiles(h)),
            None => format!("none completed; {failed} not"),
        }
    };

    let (alone_intake, alone) = signups("signup-alone").await;
    let started = Instant::now();
    let body = tokio::fs::read(&file).await?;
    let import = {
        let request = client
            .post(format!("{}/api/v1/admin/imports", c.api))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .timeout(Duration::from_secs(1800))
            .body(body);
        tokio::spawn(async move {
            let response = request.send().await?;
            let status = response.status();
            let answer: serde_json::Value = response.json().await.unwrap_or_default();
            anyhow::Ok((status, answer, started.elapsed()))
        })
    };
    let (during_intake, during) = signups("signup-during-import").await;
    let (status, answer, published) = import.await??;
    anyhow::ensure!(status == 202, "the import answered {status}: {answer}");
    let pattern = format!("{run}-%");
    let persisted = wait_persisted(&pg, &pattern, args.users, started).await?;
    let persisted_after = started.elapsed();
    delete_bench_users(&pg, &pattern).await?;
    if let Some(id) = answer["importId"].as_str() {
        pg.execute("DELETE FROM imports WHERE id = $1::text::uuid", &[&id])
            .await?;
    }
    let _ = std::fs::remove_file(&file);
    let rate = std::env::var("IMPORT_RATE_PER_SEC").unwrap_or_else(|_| "5000 (default)".into());
    let mut r = Report::new(
        "import-intake",
        format!(
            "sign-ups at {} /s for {} s, alone, then while an admin imports {} pre-hashed users ({:.1} MiB) over the api with IMPORT_RATE_PER_SEC={rate}; broker: {}",
            args.rate,
            args.seconds,
            args.users,
            bytes as f64 / 1_048_576.0,
            c.broker_storage
        ),
    );
    r.row("sign-ups alone: intake (202)", quantiles(&alone_intake));
    r.row("sign-ups alone: until completed", completion(&alone));
    r.row("during the import: intake (202)", quantiles(&during_intake));
    r.row("during the import: until completed", completion(&during));
    r.row(
        "the import",
        format!(
            "published in {:.1} s ({:.0} lines/s); {persisted} of {} persisted after {:.1} s",
            published.as_secs_f64(),
            args.users as f64 / published.as_secs_f64(),
            args.users,
            persisted_after.as_secs_f64()
        ),
    );
    Ok(r)
}

/// Generates an NDJSON file of `users` pre-hashed, verified accounts, runs `api import`
/// on it (the api binary beside this one, with this process's environment: `make bench`
/// exports the api's settings) and waits until the consumer persisted every user.
async fn import(c: &CommonArgs, args: ImportArgs) -> anyhow::Result<Report> {
    let run = unique("import");
    let dir = std::path::Path::new("target/bench");
    std::fs::create_dir_all(dir)?;
    let file = dir.join(format!("{run}.ndjson"));
    let (bytes, generate_secs) = write_import_file(&file, &run, args.users)?;
    let api = std::env::current_exe()?
        .parent()
        .map(|d| d.join("api"))
        .ok_or_else(|| anyhow::anyhow!("no api binary beside the bench"))?;
    let (pg, conn) = tokio_postgres::connect(&c.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let pattern = format!("{run}-%");
    let metrics_url = format!(
        "http://127.0.0.1:{}/metrics",
        std::env::var("CONSUMER_PORT").unwrap_or_else(|_| "18001".to_owned())
    );
    let baseline = persisted_counter(&metrics_url).await?;
    let batches_before = batch_totals(&metrics_url).await?;
    let processes = cpu::Processes {
        api: None,
        consumer: c.consumer_pid,
    };
    let cpu_before = (
        cpu::machine_busy(),
        cpu::CommandSample::now("postgres"),
        cpu::CommandSample::now("redis-server"),
        cpu::CommandSample::now("java"),
        processes.sample(),
    );
    let import_id = uuid::Uuid::now_v7();
    let started = Instant::now();
    let cli = tokio::process::Command::new(&api)
        .arg("import")
        .arg(&file)
        .arg("--import-id")
        .arg(import_id.to_string())
        .env("LOG_LEVEL", "warn")
        // The pipeline's capacity, not an import's pace (import-intake measures that).
        .env("IMPORT_RATE_PER_SEC", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .output()
        .await?;
    let published = started.elapsed();
    anyhow::ensure!(
        cli.status.success(),
        "api import failed: {}",
        String::from_utf8_lossy(&cli.stdout)
    );
    while started.elapsed() < Duration::from_secs(600)
        && persisted_counter(&metrics_url).await? < baseline + args.users as u64
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let batches_after = batch_totals(&metrics_url).await?;
    let per_user = |d: Duration| d.as_secs_f64() * 1e6 / args.users as f64;
    let usage = processes.since(&cpu_before.4);
    let cpu_row = format!(
        "{} µs in all (machine); PostgreSQL {:.0}, consumer {}, Kafka {:.0}, Redis {:.0}; the rest is `api import` and the system",
        match (cpu::machine_busy(), cpu_before.0) {
            (Some(a), Some(b)) => format!("{:.0}", per_user(a.saturating_sub(b))),
            _ => "unknown".to_owned(),
        },
        per_user(cpu::CommandSample::now("postgres").since(&cpu_before.1)),
        usage
            .consumer
            .map_or("unknown".to_owned(), |c| format!("{:.0}", per_user(c))),
        per_user(cpu::CommandSample::now("java").since(&cpu_before.3)),
        per_user(cpu::CommandSample::now("redis-server").since(&cpu_before.2)),
    );
    let persisted = wait_persisted(&pg, &pattern, args.users, started).await?;
    delete_bench_users(&pg, &pattern).await?;
    pg.execute("DELETE FROM imports WHERE id = $1", &[&import_id])
        .await?;
    let _ = std::fs::remove_file(&file);
    let mut r = Report::new(
        "import",
        format!(
            "`api import` of {} pre-hashed (argon2id), verified users ({:.1} MiB of NDJSON, generated in {:.1} s), through the pipeline to the running consumer; broker: {}",
            args.users,
            bytes as f64 / 1_048_576.0,
            generate_secs,
            c.broker_storage
        ),
    );
    r.row("persisted", format!("{persisted} of {}", args.users));
    r.row(
        "published by api import",
        format!(
            "{:.2} s ({:.0} lines/s)",
            published.as_secs_f64(),
            args.users as f64 / published.as_secs_f64()
        ),
    );
    r.row(
        "persisted end to end",
        format!("{:.2} s", elapsed.as_secs_f64()),
    );
    r.row(
        "users/s end to end",
        format!("{:.0}", persisted as f64 / elapsed.as_secs_f64()),
    );
    r.row("CPU per user", cpu_row);
    let batches = batches_after.0 - batches_before.0;
    let busy = batches_after.2 - batches_before.2;
    r.row(
        "consumer batches",
        format!(
            "{batches:.0}, {:.0} records each, {:.1} ms each; processing {:.0} % of the run",
            (batches_after.1 - batches_before.1) / batches.max(1.0),
            busy * 1000.0 / batches.max(1.0),
            100.0 * busy / elapsed.as_secs_f64()
        ),
    );
    Ok(r)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let c = cli.common;
    match cli.bench {
        Bench::Intake(a) => intake(&c, a).await?.0.publish()?,
        Bench::IntakeShared(a) => {
            for r in intake_shared(&c, a).await?.0 {
                r.publish()?;
            }
        }
        Bench::Poll(a) => poll(&c, a).await?.publish()?,
        Bench::Drain(a) => drain(&c, a, None).await?.0.publish()?,
        Bench::E2e(a) => e2e(&c, a).await?.publish()?,
        Bench::Hash(a) => hash(&a)?.0.publish()?,
        Bench::Connections(a) => connections(&c, a).await?.publish()?,
        Bench::Login(a) => login(&c, a).await?.publish()?,
        Bench::Me(a) => me(&c, a).await?.publish()?,
        Bench::Import(a) => import(&c, a).await?.publish()?,
        Bench::ImportIntake(a) => import_intake(&c, a).await?.publish()?,
        Bench::All => {
            let (h, hash_rate) = hash(&HashArgs {
                argon2: Default::default(),
                threads: 0,
                count: 64,
            })?;
            h.publish()?;
            let (d, d_rate) = drain(
                &c,
                DrainArgs {
                    count: 600,
                    partitions: 4,
                },
                Some(hash_rate),
            )
            .await?;
            d.publish()?;
            // e2e and poll before intake: intake leaves a backlog the consumer works
            // through for minutes, which would be measured as e2e latency.
            let e2e_rate = (d_rate / 2.0).max(1.0) as u64;
            e2e(
                &c,
                E2eArgs {
                    rate: e2e_rate,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            poll(
                &c,
                LoadArgs {
                    concurrency: 64,
                    rate: 0,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            poll(
                &c,
                LoadArgs {
                    concurrency: 64,
                    rate: 5000,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            poll(
                &c,
                LoadArgs {
                    concurrency: 64,
                    rate: 20_000,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            login(
                &c,
                LoadArgs {
                    concurrency: 16,
                    rate: 0,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            me(
                &c,
                LoadArgs {
                    concurrency: 64,
                    rate: 0,
                    seconds: 10,
                },
            )
            .await?
            .publish()?;
            let (reports, capacity) = intake_shared(
                &c,
                LoadArgs {
                    concurrency: 64,
                    rate: 0,
                    seconds: 10,
                },
            )
            .await?;
            for r in reports {
                r.publish()?;
            }
            intake(
                &c,
                LoadArgs {
                    concurrency: 0,
                    rate: 300,
                    seconds: 10,
                },
            )
            .await?
            .0
            .publish()?;
            connections(&c, ConnectionsArgs { count: 1000 })
                .await?
                .publish()?;
            // Twice what the api accepted alone: the producer queue fills and the rest
            // must be refused at once.
            let (mut overload, _) = intake(
                &c,
                LoadArgs {
                    concurrency: 0,
                    rate: (2.0 * capacity).max(3000.0) as u64,
                    seconds: 5,
                },
            )
            .await?;
            overload.name = "intake-overload";
            overload.publish()?;
        }
    }
    Ok(())
}
