//! `drain`: a backlog on a fresh topic, consumed by an in-process consumer; and the
//! helpers that wait for and clean up persisted users.

use super::*;

#[derive(Parser)]
#[command(args_override_self = true)]
pub(crate) struct ConsumerCli {
    #[command(flatten)]
    config: registrar_consumer::config::ConsumerConfig,
}

pub(crate) async fn drain(
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
            first_name: Some("Bench".into()),
            last_name: Some("Mark".into()),
            gender: Some("male".into()),
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
            provisioning: None,
            identity: None,
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
pub(crate) async fn wait_persisted(
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
pub(crate) struct Persisting {
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

pub(crate) async fn watch_persisted(
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
pub(crate) async fn consumer_sample(metrics_url: &str, name: &str) -> anyhow::Result<f64> {
    let text = http().get(metrics_url).send().await?.text().await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("{metrics_url} has no {name}"))
}

/// Users the consumer at `metrics_url` persisted so far (its
/// `registrar_consumer_users_persisted_total`): polling it costs PostgreSQL nothing,
/// where counting rows by email pattern scans `users` on every poll.
pub(crate) async fn persisted_counter(metrics_url: &str) -> anyhow::Result<u64> {
    Ok(consumer_sample(metrics_url, "registrar_consumer_users_persisted_total").await? as u64)
}

/// The consumer's batches so far: `(count, records, seconds spent processing)`.
pub(crate) async fn batch_totals(metrics_url: &str) -> anyhow::Result<(f64, f64, f64)> {
    Ok((
        consumer_sample(metrics_url, "registrar_consumer_batch_size_count").await?,
        consumer_sample(metrics_url, "registrar_consumer_batch_size_sum").await?,
        consumer_sample(metrics_url, "registrar_consumer_batch_duration_seconds_sum").await?,
    ))
}

/// Removes a benchmark's users and every row that refers to them. The consumer's mailer
/// may still be issuing verification tokens for them meanwhile (a token inserted between
/// the deletes makes the last one fail its foreign key): then it starts over.
pub(crate) async fn delete_bench_users(
    pg: &tokio_postgres::Client,
    pattern: &str,
) -> anyhow::Result<()> {
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

pub(crate) const BENCH_TABLES_ANALYZE: &str =
    "ANALYZE users, user_audit_log, user_event_outbox, mail_outbox";
pub(crate) const BENCH_TABLES_VACUUM: &str =
    "VACUUM (TRUNCATE false) users, user_audit_log, user_event_outbox, mail_outbox";

pub(crate) async fn delete_bench_users_once(
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
