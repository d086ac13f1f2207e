//! Benchmark reports: a Markdown table on stdout and in `target/bench/<name>.md`, and an
//! SVG latency-percentile plot beside it.

use std::fmt::Write as _;
use std::path::PathBuf;

use hdrhistogram::Histogram;

pub struct Report {
    pub name: &'static str,
    pub setup: String,
    pub rows: Vec<(String, String)>,
    pub latency: Option<Histogram<u64>>,
}

/// Latencies are recorded in microseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).unwrap_or_else(|e| panic!("{e}"))
}

pub fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

impl Report {
    pub fn new(name: &'static str, setup: String) -> Self {
        Self {
            name,
            setup,
            rows: Vec::new(),
            latency: None,
        }
    }

    pub fn row(&mut self, k: impl Into<String>, v: impl Into<String>) {
        self.rows.push((k.into(), v.into()));
    }

    pub fn latency_rows(&mut self, h: &Histogram<u64>, label: &str) {
        if h.is_empty() {
            return;
        }
        for (name, q) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)] {
            self.row(format!("{label} {name}"), ms(h.value_at_quantile(q)));
        }
        self.row(format!("{label} max"), ms(h.max()));
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### {}\n\n{}\n\n| metric | value |\n|---|---|\n",
            self.name, self.setup
        );
        for (k, v) in &self.rows {
            let _ = writeln!(out, "| {k} | {v} |");
        }
        out
    }

    /// Prints the table and writes it (and the plot) under `target/bench/`.
    pub fn publish(&self) -> anyhow::Result<()> {
        let md = self.markdown();
        println!("{md}");
        let dir =
            PathBuf::from(std::env::var("BENCH_OUT").unwrap_or_else(|_| "target/bench".into()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("{}.md", self.name)), &md)?;
        if let Some(h) = &self.latency {
            std::fs::write(dir.join(format!("{}.svg", self.name)), svg(self.name, h))?;
        }
        Ok(())
    }
}

/// Latency by percentile, x spaced as "nines" (50, 90, 99, 99.9, ...).
fn svg(title: &str, h: &Histogram<u64>) -> String {
    let qs = [
        0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999, 1.0,
    ];
    let values: Vec<f64> = qs
        .iter()
        .map(|q| h.value_at_quantile(*q) as f64 / 1000.0)
        .collect();
    let max = values.iter().cloned().fold(0.001, f64::max);
    let (w, hgt, left, bottom) = (640.0, 360.0, 60.0, 40.0);
    let plot_w = w - left - 20.0;
    let plot_h = hgt - bottom - 30.0;
    let points: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = left + plot_w * i as f64 / (qs.len() - 1) as f64;
            let y = 30.0 + plot_h * (1.0 - v / max);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    let mut labels = String::new();
    for (i, q) in qs.iter().enumerate() {
        let x = left + plot_w * i as f64 / (qs.len() - 1) as f64;
        let _ = write!(
            labels,
            r#"<text x="{x:.1}" y="{}" font-size="10" text-anchor="middle">p{}</text>"#,
            hgt - bottom + 15.0,
            q * 100.0
        );
    }
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{hgt}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="20" font-size="14">{title}: latency by percentile (max {max:.2} ms)</text>
<line x1="{left}" y1="30" x2="{left}" y2="{y0}" stroke="black"/>
<line x1="{left}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="black"/>
<text x="5" y="35" font-size="10">{max:.1} ms</text><text x="5" y="{y0}" font-size="10">0 ms</text>
<polyline fill="none" stroke="steelblue" stroke-width="2" points="{pts}"/>
{labels}
</svg>
"#,
        y0 = hgt - bottom,
        x1 = w - 20.0,
        pts = points.join(" "),
    )
}
