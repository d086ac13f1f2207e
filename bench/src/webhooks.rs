//! `webhooks`: Standard Webhooks deliveries to a local receiver. How long after a
//! registration's 202 its `user.registered` webhook arrives, and how many deliveries per
//! second the consumer's dispatcher sends, with its CPU per delivery.

use std::collections::HashMap;

use super::*;

/// What the receiver saw: when each email's `user.registered` arrived, and how many
/// deliveries came in all.
#[derive(Default)]
struct Received {
    registered: HashMap<String, Instant>,
    deliveries: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

type Shared = Arc<Mutex<Received>>;

/// An HTTP receiver on a free loopback port that answers 204 at once and records
/// arrivals. Returns its URL.
async fn start_receiver(received: Shared) -> anyhow::Result<String> {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/hook",
        post(
            |axum::extract::State(received): axum::extract::State<Shared>,
             body: axum::body::Bytes| async move {
                let now = Instant::now();
                let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if let Ok(mut r) = received.lock() {
                    r.deliveries += 1;
                    r.first.get_or_insert(now);
                    r.last = Some(now);
                    if event["type"] == "user.registered" {
                        if let Some(email) = event["data"]["email"].as_str() {
                            r.registered.entry(email.to_owned()).or_insert(now);
                        }
                    }
                }
                axum::http::StatusCode::NO_CONTENT
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app.with_state(received)).await });
    Ok(url)
}

/// Registers an endpoint for `user.registered` through the admin API; returns its id.
async fn register_endpoint(
    c: &CommonArgs,
    token: &str,
    url: &str,
    enabled: bool,
) -> anyhow::Result<String> {
    let answer: serde_json::Value = http()
        .post(format!("{}/api/v1/admin/webhooks", c.api))
        .bearer_auth(token)
        .json(
            &json!({ "url": url, "eventTypes": ["user.registered"], "enabled": enabled,
                       "description": "registrar-bench" }),
        )
        .send()
        .await?
        .json()
        .await?;
    Ok(answer["data"]["id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("registering the endpoint failed: {answer}"))?
        .to_owned())
}

/// Waits until `done` holds of what the receiver saw, or `limit` passes.
async fn wait_received(received: &Shared, limit: Duration, done: impl Fn(&Received) -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if received.lock().map(|r| done(&r)).unwrap_or(false) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn webhooks(c: &CommonArgs, args: WebhookArgs) -> anyhow::Result<Report> {
    let (pg, conn) = tokio_postgres::connect(&c.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let token = admin_token(c, &pg, "webhook-admin").await?;
    let received = Shared::default();
    let url = start_receiver(received.clone()).await?;

    // Latency: registrations at a fixed rate; from each 202 to its webhook. One
    // registration first, until its webhook arrives: the consumer's webhook group has
    // joined its partitions and every stage is warm.
    let live = register_endpoint(c, &token, &url, true).await?;
    let warm = format!("{}@bench.example", unique("webhook-warm-up"));
    http()
        .post(format!("{}/api/v1/users", c.api))
        .json(&registration(&warm))
        .send()
        .await?;
    wait_received(&received, Duration::from_secs(120), |r| {
        r.registered.contains_key(&warm)
    })
    .await;
    anyhow::ensure!(
        received
            .lock()
            .is_ok_and(|r| r.registered.contains_key(&warm)),
        "the warm-up registration's webhook did not arrive in 120 s"
    );
    let accepted: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let run = unique("webhook");
    let (client, api, recorded) = (http(), c.api.clone(), accepted.clone());
    let load_args = LoadArgs {
        concurrency: 0,
        rate: args.rate,
        seconds: args.seconds,
    };
    let run_for_load = run.clone();
    let (tally, _, _) = load(c.processes(), &load_args, move |i| {
        let (client, api, recorded) = (client.clone(), api.clone(), recorded.clone());
        let email = format!("{run_for_load}-{i}@bench.example");
        async move {
            let response = client
                .post(format!("{api}/api/v1/users"))
                .json(&registration(&email))
                .send()
                .await;
            let at = Instant::now();
            let outcome = intake_outcome(response);
            if outcome.1 {
                if let Ok(mut m) = recorded.lock() {
                    m.insert(email, at);
                }
            }
            outcome
        }
    })
    .await;
    let accepted = accepted.lock().map(|m| m.clone()).unwrap_or_default();
    wait_received(&received, Duration::from_secs(120), |r| {
        accepted.keys().all(|e| r.registered.contains_key(e))
    })
    .await;
    let mut latency = new_histogram();
    let mut missing = 0;
    if let Ok(r) = received.lock() {
        for (email, at) in &accepted {
            match r.registered.get(email) {
                Some(got) => {
                    let _ = latency.record(got.duration_since(*at).as_micros().max(1) as u64);
                }
                None => missing += 1,
            }
        }
    }
    pg.execute(
        "DELETE FROM webhook_endpoints WHERE id = $1::text::uuid",
        &[&live],
    )
    .await?;
    delete_bench_users(&pg, &format!("{run}-%")).await?;
    delete_bench_users(&pg, &warm).await?;

    // Throughput: import users while a disabled endpoint holds their deliveries, then
    // enable it and time the dispatcher sending them all.
    let held = register_endpoint(c, &token, &url, false).await?;
    let import_run = unique("webhook-import");
    let file = std::path::Path::new("target/bench").join(format!("{import_run}.ndjson"));
    std::fs::create_dir_all("target/bench")?;
    write_import_file(&file, &import_run, args.deliveries)?;
    let import_id = uuid::Uuid::now_v7();
    run_import_cli(&file, import_id).await?;
    let _ = std::fs::remove_file(&file);
    let queued_by = Instant::now() + Duration::from_secs(600);
    let count_queued = "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1::text::uuid";
    loop {
        let queued: i64 = pg.query_one(count_queued, &[&held]).await?.get(0);
        anyhow::ensure!(
            Instant::now() < queued_by,
            "only {queued} of {} deliveries were queued in 600 s",
            args.deliveries
        );
        if queued >= args.deliveries as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = received.lock().map(|r| r.deliveries).unwrap_or(0);
    if let Ok(mut r) = received.lock() {
        r.first = None;
    }
    let processes = cpu::Processes {
        api: None,
        consumer: c.consumer_pid,
    };
    let cpu_before = processes.sample();
    let enabled = Instant::now();
    let status = http()
        .patch(format!("{}/api/v1/admin/webhooks/{held}", c.api))
        .bearer_auth(&token)
        .json(&json!({ "enabled": true }))
        .send()
        .await?
        .status();
    anyhow::ensure!(status == 200, "enabling the endpoint answered {status}");
    let target = before + args.deliveries as u64;
    wait_received(&received, Duration::from_secs(600), |r| {
        r.deliveries >= target
    })
    .await;
    let usage = processes.since(&cpu_before);
    let (sent, first, last) = received
        .lock()
        .map(|r| (r.deliveries - before, r.first, r.last))
        .unwrap_or((0, None, None));
    let all_sent = last.map_or(Duration::ZERO, |l| l.duration_since(enabled));
    pg.execute(
        "DELETE FROM webhook_endpoints WHERE id = $1::text::uuid",
        &[&held],
    )
    .await?;
    delete_bench_users(&pg, &format!("{import_run}-%")).await?;
    pg.execute("DELETE FROM imports WHERE id = $1", &[&import_id])
        .await?;

    let mut r = Report::new(
        "webhooks",
        format!(
            "an endpoint for `user.registered` on a local receiver (answers 204 at once); \
             {} registrations/s for {} s, then {} deliveries held by a disabled endpoint \
             and sent when it is enabled (WEBHOOK_CONCURRENCY={}); broker: {}",
            args.rate,
            args.seconds,
            args.deliveries,
            std::env::var("WEBHOOK_CONCURRENCY").unwrap_or_else(|_| "32 (default)".into()),
            c.broker_storage
        ),
    );
    r.row(
        "registrations accepted (202)",
        format!(
            "{} of {}",
            accepted.len(),
            tally.statuses.values().sum::<u64>()
        ),
    );
    r.latency_rows(&latency, "202 → user.registered webhook");
    r.row("webhooks not received in 120 s", missing.to_string());
    r.row(
        "held deliveries sent",
        format!("{sent} of {}", args.deliveries),
    );
    r.row(
        "deliveries/s",
        format!(
            "{:.0} (enable → last {:.2} s; first arrived after {:.0} ms)",
            sent as f64 / all_sent.as_secs_f64().max(1e-3),
            all_sent.as_secs_f64(),
            first.map_or(0.0, |f| f.duration_since(enabled).as_secs_f64() * 1e3)
        ),
    );
    r.row(
        "consumer CPU per delivery",
        usage.consumer.map_or("unknown (no pid)".into(), |cpu| {
            format!("{:.0} µs", cpu.as_secs_f64() * 1e6 / sent.max(1) as f64)
        }),
    );
    Ok(r)
}
