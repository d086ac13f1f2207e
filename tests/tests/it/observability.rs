//! Observability against a real Prometheus (Debian's `prometheus`, installed by
//! scripts/services.sh): it scrapes both binaries and every dashboard query and every
//! metric the alerting rules read returns data; the rules load and evaluate cleanly.
//! Process, pool and dependency metrics are checked on the scrape text.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use registrar_tests::{registration_body, TestApp};
use reqwest::Method;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A Prometheus server on a free port with its own storage; killed and removed on drop.
struct Prometheus {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

impl Prometheus {
    fn start(api: SocketAddr, consumer: SocketAddr) -> Self {
        let binary = which("prometheus").unwrap_or_else(|| {
            panic!("prometheus is not installed: run scripts/services.sh (make test does)")
        });
        let dir = std::env::temp_dir().join(format!("registrar-prom-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let rules = root().join("deploy/prometheus/alerts.yml");
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [{rules}]\n\
             scrape_configs:\n\
             \x20 - job_name: registrar-api\n\
             \x20   static_configs: [{{targets: ['{api}']}}]\n\
             \x20 - job_name: registrar-consumer\n\
             \x20   static_configs: [{{targets: ['{consumer}']}}]\n",
            rules = rules.display()
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            dir,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn query(&self, http: &reqwest::Client, expr: &str) -> Vec<Value> {
        let answer: Value = match http
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", expr)])
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        assert_ne!(answer["status"], "error", "{expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what} within {within:?}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Every `expr` of the Grafana dashboard.
fn dashboard_queries() -> Vec<String> {
    let text =
        std::fs::read_to_string(root().join("deploy/grafana/dashboards/registrar.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect()
}

/// The metric names the alerting rules read (`up` aside).
fn metrics_read_by_alerts() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("deploy/prometheus/alerts.yml")).unwrap();
    let mut names: Vec<String> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter(|l| !l.contains("summary:") && !l.contains("description:"))
        .flat_map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|w| w.starts_with("registrar_"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_both_binaries_and_every_dashboard_and_alert_query_has_data() {
    let app = TestApp::spawn_with(registrar_tests::TestOptions {
        webhooks: true,
        ..Default::default()
    })
    .await;
    // A webhook endpoint, so the per-endpoint lag has a series.
    let admin = app.account_with_role("admin").await;
    let (status, _, body) = app
        .call(
            Method::POST,
            "/api/v1/admin/webhooks",
            Some(&admin.access),
            Some(&serde_json::json!({"url": "http://127.0.0.1:9/hooks"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let probe = app.consumer_probe_address().unwrap();
    let prometheus = Prometheus::start(app.address, probe);

    // Traffic that touches every panel: registrations persisted and polled, a login and
    // a failed one, a 4xx, the probes that set the dependency gauges.
    let account = app.register_and_login().await;
    let (status, _) = app.login(&account.email, "not the password at all").await;
    assert_eq!(status, 401);
    let (email, _, body) = registration_body();
    assert_eq!(app.post_registration(&body).await.status(), 202);
    app.wait_for_status(&email, "completed", Duration::from_secs(30))
        .await;
    let (status, _, _) = app
        .call(Method::GET, "/api/v1/users/not-an-email", None, None)
        .await;
    assert_eq!(status, 400);
    for path in ["/health", "/health/ready"] {
        let url = format!("http://{probe}{path}");
        assert_eq!(app.http.get(url).send().await.unwrap().status(), 200);
        assert_eq!(
            app.http.get(app.url(path)).send().await.unwrap().status(),
            200
        );
    }

    let http = app.http.clone();
    eventually("both targets up", Duration::from_secs(60), || {
        let (http, prometheus) = (&http, &prometheus);
        async move {
            let up = prometheus.query(http, "up == 1").await;
            (up.len() == 2)
                .then_some(())
                .ok_or(format!("{up:?} {}", prometheus.log()))
        }
    })
    .await;

    let mut queries = dashboard_queries();
    assert!(queries.len() >= 15, "{queries:?}");
    for metric in metrics_read_by_alerts() {
        queries.push(format!("count({metric})"));
    }
    for extra in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_threads",
        "registrar_pool_connections{pool=\"postgres\",state=\"max\"}",
        "registrar_pool_connections{pool=\"redis\",state=\"open\"}",
        "registrar_producer_queue_messages",
        "registrar_dependency_up{dependency=\"kafka\"} == 1",
    ] {
        queries.push(extra.to_owned());
    }
    for expr in &queries {
        eventually(expr, Duration::from_secs(60), || {
            let (http, prometheus) = (&http, &prometheus);
            async move {
                let result = prometheus.query(http, expr).await;
                (!result.is_empty())
                    .then_some(())
                    .ok_or_else(|| "no data".to_owned())
            }
        })
        .await;
    }

    // The rules loaded and every one evaluates without error on the real series.
    eventually("every rule evaluated", Duration::from_secs(30), || {
        let (http, prometheus) = (&http, &prometheus);
        async move {
            let rules: Value = http
                .get(format!("{}/api/v1/rules", prometheus.base))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            let rules = rules["data"]["groups"][0]["rules"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if rules.len() < 6 {
                return Err(format!("{} rules loaded", rules.len()));
            }
            for rule in &rules {
                if rule["health"] != "ok" {
                    return Err(format!(
                        "{}: {} {}",
                        rule["name"], rule["health"], rule["lastError"]
                    ));
                }
            }
            Ok(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_api_request_through_kafka_to_the_database_write() {
    let app = TestApp::spawn().await;
    let trace_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    let client_span = "00f067aa0ba902b7";
    let (email, _, body) = registration_body();
    let response = app
        .http
        .post(app.url("/api/v1/users"))
        .header("traceparent", format!("00-{trace_id}-{client_span}-01"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    app.remember_location(&response);
    app.wait_for_status(&email, "completed", Duration::from_secs(30))
        .await;

    let mut names = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let spans: Vec<_> = registrar_tests::logs::finished_spans()
            .into_iter()
            .filter(|s| s.span_context.trace_id().to_string() == trace_id)
            .collect();
        names = spans.iter().map(|s| s.name.to_string()).collect();
        let by_name = |n: &str| spans.iter().find(|s| s.name == n);
        if let (Some(request), Some(produce), Some(batch), Some(insert)) = (
            by_name("request"),
            by_name("kafka.produce"),
            by_name("consumer.batch"),
            by_name("db.insert_users"),
        ) {
            assert_eq!(
                request.parent_span_id.to_string(),
                client_span,
                "the client's span is the parent"
            );
            assert_eq!(produce.parent_span_id, request.span_context.span_id());
            assert_eq!(
                batch.parent_span_id,
                produce.span_context.span_id(),
                "the consumer continues the trace from the record's traceparent header"
            );
            assert_eq!(insert.parent_span_id, batch.span_context.span_id());
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("spans of the trace: {names:?}");
}
