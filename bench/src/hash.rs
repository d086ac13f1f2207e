//! `hash`: the raw argon2id rate of this machine.

use super::*;

pub(crate) fn hash(args: &HashArgs) -> anyhow::Result<(Report, f64)> {
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
