//! `users-list`: the console's users list at scale. Seeds `--users` accounts straight
//! into PostgreSQL (once; later runs reuse them), then times what an admin does in the
//! console: the first page, walking a thousand pages by cursor, each filter and a
//! prefix search.

use super::*;

const PAGE: usize = 25;

async fn seed(pg: &tokio_postgres::Client, users: i64) -> anyhow::Result<(i64, Duration)> {
    let have: i64 = pg
        .query_one(
            "SELECT count(*) FROM users WHERE email LIKE 'bench.list.%'",
            &[],
        )
        .await?
        .get(0);
    let started = Instant::now();
    let mut next = have;
    while next < users {
        let end = (next + 100_000).min(users);
        // One account a second back in time; a third verified; one in a thousand a
        // moderator; a password nobody can use.
        pg.execute(
            "INSERT INTO users (id, registration_id, email, first_name, last_name, gender, sex,
                                occupation, password_hash, role, created_at, updated_at,
                                email_verified_at)
             SELECT gen_random_uuid(), gen_random_uuid(), 'bench.list.' || g || '@example.com',
                    'First' || (g % 997), 'Last' || (g % 991), 'female', 'female', 'Bench',
                    '!', CASE WHEN g % 1000 = 0 THEN 'moderator' ELSE 'user' END,
                    now() - make_interval(secs => g), now() - make_interval(secs => g),
                    CASE WHEN g % 3 = 0 THEN now() END
             FROM generate_series($1::bigint, $2::bigint - 1) g",
            &[&next, &end],
        )
        .await?;
        println!("[users-list] seeded {end} of {users} accounts");
        next = end;
    }
    if have < users {
        // One in twenty with a second factor (a sealed secret nobody can open).
        pg.execute(
            "INSERT INTO user_mfa (user_id, key_id, secret_sealed, enabled_at)
             SELECT id, 'bench', '\\x00'::bytea, now() FROM users
             WHERE email LIKE 'bench.list.%' AND abs(hashtext(email)) % 20 = 0
             ON CONFLICT DO NOTHING",
            &[],
        )
        .await?;
        pg.batch_execute("ANALYZE users; ANALYZE user_mfa").await?;
    }
    Ok((users.max(have), started.elapsed()))
}

async fn page(url: &str, token: &str) -> anyhow::Result<(u64, serde_json::Value)> {
    let started = Instant::now();
    let response = http().get(url).bearer_auth(token).send().await?;
    let status = response.status();
    let body: serde_json::Value = response.json().await?;
    anyhow::ensure!(status == 200, "{url}: {status} {body}");
    Ok((started.elapsed().as_micros() as u64, body))
}

pub(crate) async fn users_list(c: &CommonArgs, args: UsersListArgs) -> anyhow::Result<Report> {
    let (pg, conn) = tokio_postgres::connect(&c.database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    let (total, seeding) = seed(&pg, args.users).await?;
    let token = admin_token(c, &pg, "users-list").await?;
    let base = format!("{}/api/v1/users?limit={PAGE}", c.api);
    let mut report = Report::new(
        "users-list",
        format!(
            "GET /api/v1/users as an admin over {total} accounts (a third verified, 5 % with a second factor, 0.1 % moderators), {PAGE} a page; {} samples a case",
            args.samples
        ),
    );
    if seeding > Duration::from_secs(1) {
        report.row("seeding", format!("{:.0} s", seeding.as_secs_f64()));
    }
    let cases: [(&str, String); 8] = [
        ("first page", String::new()),
        ("verified=true", "&verified=true".into()),
        ("verified=false", "&verified=false".into()),
        ("mfa=true", "&mfa=true".into()),
        ("role=moderator", "&role=moderator".into()),
        ("q= email prefix", "&q=bench.list.4242".into()),
        ("q= name prefix", "&q=first42".into()),
        ("status=deleted (none)", "&status=deleted".into()),
    ];
    for (label, query) in cases {
        let mut h = new_histogram();
        let mut rows = 0;
        for _ in 0..args.samples {
            let (us, body) = page(&format!("{base}{query}"), &token).await?;
            h.record(us.max(1))?;
            rows = body["count"].as_u64().unwrap_or(0);
        }
        report.row(
            label,
            format!(
                "p50 {} · p99 {} · {rows} rows",
                ms(h.value_at_quantile(0.5)),
                ms(h.value_at_quantile(0.99))
            ),
        );
    }
    // Keyset paging: each page costs the same however deep it is.
    let mut h = new_histogram();
    let mut cursor: Option<String> = None;
    let mut last = 0;
    for n in 0..args.pages {
        let url = match &cursor {
            Some(c) => format!("{base}&cursor={}", urlencode(c)),
            None => base.clone(),
        };
        let (us, body) = page(&url, &token).await?;
        h.record(us.max(1))?;
        last = us;
        cursor = body["pagination"]["nextCursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            report.row("pages walked", format!("{} (the end)", n + 1));
            break;
        }
    }
    report.row(
        format!("{} pages by cursor", args.pages),
        format!(
            "p50 {} · p99 {} · the last page {}",
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(last)
        ),
    );
    Ok(report)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
