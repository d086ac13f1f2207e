//! `import` and `import-intake`: bulk imports end to end, and sign-ups during one.

use super::*;

/// Writes an NDJSON import of `users` pre-hashed, verified accounts (emails
/// `<run>-<i>@import.bench`); returns its size and the seconds it took.
pub(crate) fn write_import_file(
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
pub(crate) async fn import_intake(
    c: &CommonArgs,
    args: ImportIntakeArgs,
) -> anyhow::Result<Report> {
    let client = http();
    let (pg, conn) = tokio_postgres::connect(&c.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let token = admin_token(c, &pg, "import-admin").await?;
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
    let body = std::fs::read(&file)?;
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

/// Runs `api import` on `file` (the api binary beside this one, with this process's
/// environment) at the pipeline's capacity rather than an import's pace.
pub(crate) async fn run_import_cli(
    file: &std::path::Path,
    import_id: uuid::Uuid,
) -> anyhow::Result<()> {
    let api = std::env::current_exe()?
        .parent()
        .map(|d| d.join("api"))
        .ok_or_else(|| anyhow::anyhow!("no api binary beside the bench"))?;
    let cli = tokio::process::Command::new(&api)
        .arg("import")
        .arg(file)
        .arg("--import-id")
        .arg(import_id.to_string())
        .env("LOG_LEVEL", "warn")
        // The pipeline's capacity, not an import's pace (import-intake measures that).
        .env("IMPORT_RATE_PER_SEC", "0")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .output()
        .await?;
    anyhow::ensure!(
        cli.status.success(),
        "api import failed: {}",
        String::from_utf8_lossy(&cli.stdout)
    );
    Ok(())
}

/// Generates an NDJSON file of `users` pre-hashed, verified accounts, runs `api import`
/// on it (the api binary beside this one, with this process's environment: `make bench`
/// exports the api's settings) and waits until the consumer persisted every user.
pub(crate) async fn import(c: &CommonArgs, args: ImportArgs) -> anyhow::Result<Report> {
    let run = unique("import");
    let dir = std::path::Path::new("target/bench");
    std::fs::create_dir_all(dir)?;
    let file = dir.join(format!("{run}.ndjson"));
    let (bytes, generate_secs) = write_import_file(&file, &run, args.users)?;
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
    run_import_cli(&file, import_id).await?;
    let published = started.elapsed();
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
