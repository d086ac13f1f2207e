//! Bulk import through the pipeline: a mixed file (argon2id, argon2i, bcrypt and scrypt
//! hashes, a plaintext password, bad lines, duplicates) gives the right per-line results,
//! users who log in (and are re-hashed to argon2id), and a rerun persists nothing twice.

use std::time::Duration;

use argon2::password_hash::{PasswordHasher, SaltString};
use registrar_tests::TestApp;
use reqwest::Method;
use serde_json::{json, Value};

fn argon2(variant: argon2::Algorithm, password: &str) -> String {
    let salt = SaltString::encode_b64(b"import-test-salt").unwrap();
    argon2::Argon2::new(
        variant,
        argon2::Version::V0x13,
        argon2::Params::new(256, 1, 1, None).unwrap(),
    )
    .hash_password(password.as_bytes(), &salt)
    .unwrap()
    .to_string()
}

fn scrypt_hash(password: &str) -> String {
    let salt = SaltString::encode_b64(b"import-test-salt").unwrap();
    scrypt::Scrypt
        .hash_password_customized(
            password.as_bytes(),
            None,
            None,
            scrypt::Params::new(10, 8, 1, 32).unwrap(),
            &salt,
        )
        .unwrap()
        .to_string()
}

fn person(email: &str) -> Value {
    json!({ "firstName": "Imported", "lastName": "Person", "email": email, "gender": "female" })
}

fn with(mut v: Value, extra: Value) -> String {
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v.to_string()
}

async fn import(
    app: &TestApp,
    token: &str,
    body: &str,
    id: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let url = match id {
        Some(id) => app.url(&format!("/api/v1/admin/imports?id={id}")),
        None => app.url("/api/v1/admin/imports"),
    };
    let response = app
        .http
        .post(url)
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .timeout(Duration::from_secs(120))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.json().await.unwrap_or(Value::Null),
    )
}

/// An app with these api arguments, and an admin's session on it.
async fn app_and_admin(api_args: &[&str]) -> (TestApp, registrar_tests::Account) {
    let app = TestApp::spawn_with(registrar_tests::TestOptions {
        api_args: api_args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    })
    .await;
    let admin = app.account_with_role("admin").await;
    (app, admin)
}

/// The line numbers of an import's answer's refused lines.
fn refused_lines(answer: &Value) -> Vec<i64> {
    answer["rejectedLines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["line"].as_i64().unwrap())
        .collect()
}

async fn stored_hash(app: &TestApp, email: &str) -> String {
    app.pg()
        .await
        .query_one(
            "SELECT password_hash FROM users WHERE email = $1",
            &[&email],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_mixed_import_persists_what_is_valid_and_its_users_log_in_and_are_rehashed() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let existing = app.register_and_login().await;
    let tag = &app.id;
    let email = |n: &str| format!("import-{n}-{tag}@example.com");
    let pw = |n: &str| format!("imported password {n} 2024");
    let lines = [
        with(
            person(&email("a")),
            json!({ "passwordHash": argon2(argon2::Algorithm::Argon2id, &pw("a")), "role": "moderator", "createdAt": "2020-01-02T03:04:05Z", "emailVerified": true }),
        ),
        with(
            person(&email("b")),
            json!({ "passwordHash": bcrypt::hash(pw("b"), 4).unwrap() }),
        ),
        with(
            person(&email("c")),
            json!({ "passwordHash": scrypt_hash(&pw("c")) }),
        ),
        with(person(&email("d")), json!({ "password": pw("d") })),
        "{not json".to_owned(),
        json!({ "firstName": "No", "lastName": "Email", "gender": "male", "password": pw("x") })
            .to_string(),
        with(person(&email("a")), json!({ "password": pw("dup") })),
        with(person(&existing.email), json!({ "password": pw("taken") })),
        String::new(),
        with(
            person(&email("f")),
            json!({ "password": pw("f"), "passwordHash": bcrypt::hash("x", 4).unwrap() }),
        ),
        with(
            person(&email("e")),
            json!({ "passwordHash": argon2(argon2::Algorithm::Argon2i, &pw("e")) }),
        ),
    ];
    let body = lines.join("\n") + "\n";

    // Admins only.
    assert_eq!(import(&app, &existing.access, &body, None).await.0, 403);
    let (status, headers, answer) = import(&app, &admin.access, &body, None).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        (
            answer["lines"].as_i64(),
            answer["accepted"].as_i64(),
            answer["rejected"].as_i64()
        ),
        (Some(11), Some(7), Some(3)),
        "{answer}"
    );
    let refused = refused_lines(&answer);
    assert_eq!(refused, [5, 6, 10], "{answer}");
    assert_eq!(answer["rejectedLines"][1]["errors"][0]["field"], "email");
    let id = answer["importId"].as_str().unwrap().to_owned();
    let location = headers["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/admin/imports/{id}"));

    // The consumer persists five; the in-file duplicate and the existing email fail.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        let (_, _, s) = app
            .call(Method::GET, &location, Some(&admin.access), None)
            .await;
        if s["completed"] == 5 && s["failed"]["EMAIL_TAKEN"] == 2 {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (status["pending"].as_i64(), status["rejected"].as_i64()),
        (Some(0), Some(3)),
        "{status}"
    );
    // Which lines failed, and why: the in-file duplicate (7) and the existing email (8).
    assert_eq!(
        status["failedLines"],
        json!([{ "line": 7, "reason": "EMAIL_TAKEN" }, { "line": 8, "reason": "EMAIL_TAKEN" }]),
        "{status}"
    );

    // Everyone logs in with the password the old system knew; other algorithms are
    // re-hashed to argon2id at that login.
    for n in ["a", "b", "c", "d", "e"] {
        let before = stored_hash(&app, &email(n)).await;
        let (code, body) = app.login(&email(n), &pw(n)).await;
        assert_eq!(code, 200, "{n}: {body}");
        let after = stored_hash(&app, &email(n)).await;
        assert!(after.starts_with("$argon2id$"), "{n}: {after}");
        if n == "b" || n == "c" || n == "e" {
            assert_ne!(before, after, "{n} was re-hashed");
        }
    }
    assert_eq!(app.login(&email("b"), "not the password 1").await.0, 401);
    let row = app
        .pg()
        .await
        .query_one(
            "SELECT role, created_at::text, email_verified_at IS NOT NULL FROM users WHERE email = $1",
            &[&email("a")],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "moderator");
    assert!(row.get::<_, String>(1).starts_with("2020-01-02 03:04:05"));
    assert!(row.get::<_, bool>(2));

    // A rerun with the same id: the same registration ids, nothing persisted twice.
    let users = app.user_count().await;
    let (status, _, again) = import(&app, &admin.access, &body, Some(&id)).await;
    assert_eq!(
        (status, again["accepted"].as_i64()),
        (202, Some(7)),
        "{again}"
    );
    // The rerun's lines reach the consumer again: the persisted ones count once, the
    // failed ones fail again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let s = loop {
        let (_, _, s) = app
            .call(Method::GET, &location, Some(&admin.access), None)
            .await;
        if s["failed"]["EMAIL_TAKEN"] == 2 {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(app.user_count().await, users);
    assert_eq!(
        (s["completed"].as_i64(), s["pending"].as_i64()),
        (Some(5), Some(0)),
        "{s}"
    );
    let (code, _, _) = app
        .call(
            Method::GET,
            "/api/v1/admin/imports/0190a0a0-0000-7000-8000-000000000000",
            Some(&admin.access),
            None,
        )
        .await;
    assert_eq!(code, 404);
    // A body without lines is refused and leaves no import behind.
    let imports_before: i64 = app
        .pg()
        .await
        .query_one("SELECT count(*) FROM imports", &[])
        .await
        .unwrap()
        .get(0);
    let (status, _, body) = import(&app, &admin.access, "\n\n", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("VALIDATION_ERROR")),
        "{body}"
    );
    let imports_after: i64 = app
        .pg()
        .await
        .query_one("SELECT count(*) FROM imports", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(imports_before, imports_after);
}

#[tokio::test]
async fn an_import_waits_for_room_in_a_full_producer_queue_instead_of_stopping() {
    let (app, admin) = app_and_admin(&["--producer-queue-max-messages", "2"]).await;
    let body: String = (0..300)
        .map(|i| {
            with(
                person(&format!("queue-{i}-{}@example.com", app.id)),
                json!({ "passwordHash": bcrypt::hash("x", 4).unwrap(), "emailVerified": true }),
            ) + "\n"
        })
        .collect();
    let (status, _, answer) = import(&app, &admin.access, &body, None).await;
    assert_eq!(
        (status, answer["accepted"].as_i64()),
        (202, Some(300)),
        "{answer}"
    );
}

#[tokio::test]
async fn imported_hashes_are_marked_prehashed_for_the_consumer_and_plaintext_lines_are_not() {
    let app = TestApp::spawn().await;
    let admin = app.account_with_role("admin").await;
    let hashed = format!("marked-hash-{}@example.com", app.id);
    let plain = format!("marked-plain-{}@example.com", app.id);
    let body = [
        with(
            person(&hashed),
            json!({ "passwordHash": bcrypt::hash("x", 4).unwrap() }),
        ),
        with(
            person(&plain),
            json!({ "password": "a-plaintext-password-1" }),
        ),
    ]
    .join("\n");
    let (status, _, answer) = import(&app, &admin.access, &body, None).await;
    assert_eq!(
        (status, answer["accepted"].as_i64()),
        (202, Some(2)),
        "{answer}"
    );

    // The admin's own registration, then the two lines.
    let records = registrar_tests::kafka::read_all(&app.topic, 3, Duration::from_secs(20)).await;
    let mark = |email: &str| {
        records
            .iter()
            .find(|r| r.key.as_deref() == Some(email.as_bytes()))
            .unwrap_or_else(|| panic!("no record keyed {email}"))
            .header(common::events::kafka::CREDENTIAL_HEADER)
            .map(str::to_owned)
    };
    assert_eq!(
        (mark(&hashed), mark(&plain)),
        (Some("phc".to_owned()), None),
        "only the pre-hashed line skips the hashing budget of a batch"
    );
}

/// Lines are read in chunks (`IMPORT_CHUNK_LINES`, 100 here) and a chunk is published
/// while the next is read: an import of several chunks, with refused lines in several,
/// counts and records every line once and in order, and persists every accepted one.
#[tokio::test]
async fn an_import_of_several_chunks_counts_and_records_every_line_once() {
    let (app, admin) = app_and_admin(&["--import-chunk-lines", "100"]).await;
    let hash = bcrypt::hash("x", 4).unwrap();
    let bad = [3, 101, 150, 300, 450];
    let lines = 450;
    let body: String = (1..=lines)
        .map(|n| {
            if bad.contains(&n) {
                format!("{{\"email\": \"not an address {n}\"}}\n")
            } else {
                with(
                    person(&format!("chunk-{n}-{}@example.com", app.id)),
                    json!({ "passwordHash": hash, "emailVerified": true }),
                ) + "\n"
            }
        })
        .collect();
    let (status, headers, answer) = import(&app, &admin.access, &body, None).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        (
            answer["lines"].as_i64(),
            answer["accepted"].as_i64(),
            answer["rejected"].as_i64()
        ),
        (Some(lines), Some(lines - 5), Some(5)),
        "{answer}"
    );
    let refused = refused_lines(&answer);
    assert_eq!(refused, bad);
    let location = headers["location"].to_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, _, s) = app
            .call(Method::GET, &location, Some(&admin.access), None)
            .await;
        if s["completed"] == lines - 5 {
            assert_eq!(
                (s["pending"].as_i64(), s["rejected"].as_i64()),
                (Some(0), Some(5)),
                "{s}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let persisted: i64 = app
        .pg()
        .await
        .query_one("SELECT count(*) FROM users WHERE email LIKE 'chunk-%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(persisted, lines - 5);
}

/// An argon2 hash asking for 4 TiB, or bcrypt at cost 31, crashed or pinned the api at
/// the first login. Such lines are refused at import; an account that holds one anyway
/// (imported before the bounds) answers "password reset required" without hashing.
#[tokio::test]
async fn hashes_with_costs_outside_the_bounds_are_refused_at_import_and_never_computed_at_login() {
    let (app, admin) = app_and_admin(&[]).await;
    let tag = &app.id;
    let email = |n: &str| format!("bounds-{n}-{tag}@example.com");
    let cheap = bcrypt::hash("imported password", 4).unwrap();
    let lines = [
        with(
            person(&email("argon")),
            json!({ "passwordHash": "$argon2id$v=19$m=4294967295,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g" }),
        ),
        with(
            person(&email("bcrypt")),
            json!({ "passwordHash": format!("$2b$31{}", &cheap[6..]) }),
        ),
        with(person(&email("fine")), json!({ "passwordHash": cheap })),
    ]
    .join("\n");
    let (status, _, answer) = import(&app, &admin.access, &lines, None).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(refused_lines(&answer), vec![1, 2], "{answer}");
    for line in answer["rejectedLines"].as_array().unwrap() {
        assert_eq!(line["errors"][0]["field"], "passwordHash");
        assert!(line["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("outside"));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app
        .pg()
        .await
        .query_opt("SELECT 1 FROM users WHERE email = $1", &[&email("fine")])
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fine line was not imported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The account's hash is replaced behind the importer's back (an import before the
    // bounds existed): the login is refused at once, nothing is hashed.
    app.pg()
        .await
        .execute(
            "UPDATE users SET password_hash = $2, email_verified_at = now() WHERE email = $1",
            &[&email("fine"), &format!("$2b$31{}", &cheap[6..])],
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let (status, body) = app.login(&email("fine"), "imported password").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("PASSWORD_RESET_REQUIRED")),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

fn plain_lines(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| {
            with(
                person(&format!("{prefix}.{i}@example.com")),
                json!({ "password": "an imported passphrase 8" }),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn imports_beyond_the_size_or_line_limit_are_refused() {
    let (app, admin) =
        app_and_admin(&["--import-max-bytes", "4000", "--import-max-lines", "5"]).await;
    let pg = app.pg().await;
    let imports = || async {
        pg.query_one("SELECT count(*) FROM imports", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    // Announced larger than the limit: refused before anything is read or recorded.
    let big = plain_lines(&format!("big.{}", app.id), 40);
    assert!(big.len() > 4000);
    let (status, _, body) = import(&app, &admin.access, &big, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE")),
        "{body}"
    );
    assert_eq!(imports().await, 0, "a refused import leaves no record");
    // More lines than allowed (within the size): the import stops at the sixth line, and
    // with these lines all in its first chunk nothing was published.
    let id = uuid::Uuid::now_v7().to_string();
    let many = plain_lines(&format!("many.{}", app.id), 7);
    assert!(many.len() < 4000);
    let (status, _, body) = import(&app, &admin.access, &many, Some(&id)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("5 lines"),
        "{body}"
    );
    let (error, accepted): (Option<String>, i64) = pg
        .query_one(
            "SELECT error, accepted FROM imports WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert!(error.unwrap().contains("IMPORT_MAX_LINES"));
    assert_eq!(accepted, 0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let users: i64 = pg
        .query_one("SELECT count(*) FROM users WHERE email LIKE 'many.%'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(users, 0);
    // Within both limits: imported.
    let (status, _, body) = import(&app, &admin.access, &plain_lines("fits", 5), None).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn an_admin_runs_one_import_at_a_time_at_the_imports_own_pace() {
    // 20 lines a second, 10 per chunk: 60 lines take at least 2.5 s.
    let (app, admin) =
        app_and_admin(&["--import-rate-per-sec", "20", "--import-chunk-lines", "10"]).await;
    let other_admin = app.account_with_role("admin").await;
    let started = std::time::Instant::now();
    let first = {
        let request = app
            .http
            .post(app.url("/api/v1/admin/imports"))
            .bearer_auth(&admin.access)
            .header("content-type", "application/x-ndjson")
            .body(plain_lines(&format!("paced.{}", app.id), 60));
        tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!first.is_finished(), "the paced import is still running");
    // The same admin's second import waits its turn; another admin's runs.
    let (status, _, body) = import(&app, &admin.access, &plain_lines("second", 2), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("IMPORT_IN_PROGRESS")),
        "{body}"
    );
    let (status, _, body) = import(&app, &other_admin.access, &plain_lines("other", 2), None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(first.await.unwrap(), 202);
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "60 lines at 20 a second took {:?}",
        started.elapsed()
    );
    // Finished: the admin may import again.
    let (status, _, body) = import(&app, &admin.access, &plain_lines("third", 2), None).await;
    assert_eq!(status, 202, "{body}");
}
