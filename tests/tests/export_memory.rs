//! Export memory, in a test binary of its own so that no other test shares the process
//! whose peak RSS it reads. An account at its data quota with a long audit trail is
//! exported; the api's (and this client's) peak resident memory may grow by at most
//! `BOUND_MIB` while doing so.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use registrar_tests::TestApp;

/// The stated bound: an export is about 1 MiB of data items plus 1000 audit entries,
/// whatever the account's history.
const BOUND_MIB: u64 = 32;

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exporting_an_account_at_its_quota_with_a_long_history_keeps_memory_bounded() {
    let app = TestApp::spawn().await;
    let user = app.register_and_login().await;
    let pg = app.pg().await;
    // At the default quota (1 MiB): 16 values of 60 000 bytes.
    pg.execute(
        "INSERT INTO data_store (user_id, key, value)
         SELECT $1, 'k' || i, to_jsonb(repeat('v', 60000)) FROM generate_series(1, 16) i",
        &[&user.id],
    )
    .await
    .unwrap();
    // Years of activity: 50 000 audit entries.
    pg.execute(
        "INSERT INTO user_audit_log (user_id, action, actor_id, user_agent, details)
         SELECT $1, 'test.filler', $1, repeat('agent', 20), jsonb_build_object('n', i)
         FROM generate_series(1, 50000) i",
        &[&user.id],
    )
    .await
    .unwrap();
    let path = format!("/api/users/{}/export", user.id);
    let warm = app
        .call(reqwest::Method::GET, &path, Some(&user.access), None)
        .await;
    assert_eq!(warm.0, 200);

    // Resets the peak (VmHWM) to the current resident size.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_kib("VmRSS:");
    for _ in 0..3 {
        let (status, _, export) = app
            .call(reqwest::Method::GET, &path, Some(&user.access), None)
            .await;
        assert_eq!(status, 200);
        assert_eq!(export["data"]["data"].as_array().unwrap().len(), 16);
    }
    let peak = status_kib("VmHWM:");
    let growth_mib = peak.saturating_sub(before) / 1024;
    println!("export: resident {before} KiB before, peak {peak} KiB (+{growth_mib} MiB)");
    assert!(
        growth_mib <= BOUND_MIB,
        "exports grew the peak by {growth_mib} MiB (bound {BOUND_MIB} MiB)"
    );
}
