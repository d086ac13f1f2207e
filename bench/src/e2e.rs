//! `e2e`: registration to `completed` at a fixed rate.

use super::*;

pub(crate) async fn e2e(c: &CommonArgs, args: E2eArgs) -> anyhow::Result<Report> {
    let client = http();
    let run = unique("e2e");
    let api = c.api.clone();
    let load_args = LoadArgs {
        concurrency: 0,
        rate: args.rate,
        seconds: args.seconds,
    };
    let (tally, elapsed, usage) = load(c.processes(), &load_args, move |i| {
        let (client, api) = (client.clone(), api.clone());
        let email = format!("{run}-{i}@bench.example");
        async move {
            match client
                .post(format!("{api}/api/v1/users"))
                .json(&registration(&email))
                .send()
                .await
            {
                Ok(r) if r.status() == 202 => {
                    let location = location_of(&r).unwrap_or_default();
                    if wait_completed(&client, &api, &location, Duration::from_secs(60)).await {
                        ("completed".into(), true)
                    } else {
                        ("not completed in 60 s".into(), false)
                    }
                }
                Ok(r) => (r.status().as_u16().to_string(), false),
                Err(_) => ("error".into(), false),
            }
        }
    })
    .await;
    Ok(load_report(
        "e2e", format!("POST then poll every 5 ms until completed, open loop at {} registrations/s for {} s; broker: {}", args.rate, args.seconds, c.broker_storage),
        tally,
        elapsed,
        "completed",
        &usage,
    ))
}
