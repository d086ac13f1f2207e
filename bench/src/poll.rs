//! `poll`: GET the registration status at a fixed rate over keep-alive connections.

use super::*;

pub(crate) async fn poll(c: &CommonArgs, args: LoadArgs) -> anyhow::Result<Report> {
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
