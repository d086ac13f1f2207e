//! Load generators (closed and open loop), their tallies and reports, and the helpers
//! every benchmark shares: HTTP clients, registrations, polling to `completed`.

use super::*;

pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

pub(crate) fn registration(email: &str) -> serde_json::Value {
    json!({
        "firstName": "Bench", "lastName": "Mark", "email": email,
        "password": "bench-password-123", "gender": "prefer-not-to-say",
        "sex": "intersex", "occupation": "Load generator"
    })
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Latencies and status mix shared by load tasks.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) ok: Option<Histogram<u64>>,
    pub(crate) other: Option<Histogram<u64>>,
    pub(crate) statuses: BTreeMap<String, u64>,
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
pub(crate) async fn load<F, Fut>(
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
pub(crate) async fn open_loop_gets(
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

pub(crate) type Http1Sender =
    hyper::client::conn::http1::SendRequest<http_body_util::Empty<hyper::body::Bytes>>;

/// One GET on the connection, opened (again) if it is not there; the status, or `None`
/// when the connection failed (it is then opened anew for the next request).
pub(crate) async fn get(
    sender: &mut Option<Http1Sender>,
    authority: &str,
    path: &str,
) -> Option<u16> {
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
pub(crate) fn outcome(
    response: reqwest::Result<reqwest::Response>,
    expected: u16,
) -> (String, bool) {
    match response {
        Ok(r) => (r.status().as_u16().to_string(), r.status() == expected),
        Err(_) => ("error".into(), false),
    }
}

pub(crate) fn mode(args: &LoadArgs) -> String {
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
pub(crate) fn load_report(
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

pub(crate) fn add_tally(r: &mut Report, tally: &Tally, elapsed: Duration, ok_label: &str) {
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
pub(crate) fn intake_outcome(response: reqwest::Result<reqwest::Response>) -> (String, bool) {
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
pub(crate) async fn server_buckets(client: &reqwest::Client, api: &str) -> Vec<(f64, u64)> {
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
pub(crate) fn server_quantiles(before: &[(f64, u64)], after: &[(f64, u64)]) -> Option<String> {
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

/// The `Location` of a 202: where its registration is polled.
pub(crate) fn location_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Polls the `Location` of a 202 (the email and the registration id) until completed.
pub(crate) async fn wait_completed(
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

/// Registers `n` users and waits until they are persisted; returns their emails.
pub(crate) async fn completed_users(
    c: &CommonArgs,
    prefix: &str,
    n: usize,
) -> anyhow::Result<Vec<String>> {
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

/// An admin's access token: registered through the pipeline, promoted in the database,
/// logged in.
pub(crate) async fn admin_token(
    c: &CommonArgs,
    pg: &tokio_postgres::Client,
    prefix: &str,
) -> anyhow::Result<String> {
    let admin = completed_users(c, prefix, 1).await?.remove(0);
    pg.execute(
        "UPDATE users SET role = 'admin' WHERE email = $1",
        &[&admin],
    )
    .await?;
    let login: serde_json::Value = http()
        .post(format!("{}/api/v1/auth/login", c.api))
        .json(&json!({ "email": admin, "password": "bench-password-123" }))
        .send()
        .await?
        .json()
        .await?;
    Ok(login["accessToken"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("admin login failed: {login}"))?
        .to_owned())
}
