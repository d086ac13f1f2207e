//! `connections`: open keep-alive connections and the api's resident memory.

use super::*;

/// Resident set size of a process in MiB, from /proc.
pub(crate) fn rss_mib(pid: i32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

pub(crate) async fn connections(c: &CommonArgs, args: ConnectionsArgs) -> anyhow::Result<Report> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = c.api.trim_start_matches("http://").to_owned();
    let before = c.api_pid.and_then(rss_mib);
    let mut open = Vec::with_capacity(args.count);
    for _ in 0..args.count {
        let mut stream = tokio::net::TcpStream::connect(&authority).await?;
        stream
            .write_all(
                format!("GET /api/v1/v1/health/live HTTP/1.1\r\nHost: {authority}\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut buf = [0u8; 512];
        let _ = stream.read(&mut buf).await?;
        open.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = c.api_pid.and_then(rss_mib);
    let fmt = |v: Option<f64>| {
        v.map_or("unknown (no --api-pid)".to_owned(), |m| {
            format!("{m:.1} MiB")
        })
    };
    let mut r = Report::new(
        "memory",
        format!(
            "{} keep-alive connections held open, one request served on each",
            open.len()
        ),
    );
    r.row("api RSS before", fmt(before));
    r.row(
        format!("api RSS with {} connections", open.len()),
        fmt(during),
    );
    if let Some(pid) = c.consumer_pid {
        r.row("consumer RSS", fmt(rss_mib(pid)));
    }
    drop(open);
    Ok(r)
}
