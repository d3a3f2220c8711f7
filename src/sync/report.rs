//! The summary a person reads after a run: a table per stream, the traffic per
//! system, and what needs their attention.

use std::fmt::Write as _;

use super::RunReport;
use crate::store::StreamCounts;
use crate::words::count;

const COLUMNS: [&str; 10] = [
    "stream",
    "read",
    "created",
    "updated",
    "unchanged",
    "linked",
    "deleted",
    "dead-lettered",
    "waiting",
    "duration",
];

/// The run summary as text.
pub fn summary(report: &RunReport, pipeline_file: &str) -> String {
    let rows: Vec<[String; 10]> = report.run.streams.iter().map(row).collect();
    let mut widths = COLUMNS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String; 10], out: &mut String| {
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i == 0 {
                let _ = write!(out, "{cell:<width$}");
            } else {
                let _ = write!(out, "  {cell:>width$}");
            }
        }
        out.push('\n');
    };
    line(&COLUMNS.map(String::from), &mut out);
    for row in &rows {
        line(row, &mut out);
    }
    for (system, requests, retries, rate_limited, tokens) in &report.traffic {
        let tokens = if *tokens > 0 {
            format!(", {}", count(*tokens, "token request", "token requests"))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{system}: {}, {}, {rate_limited} rate-limited (429){tokens}",
            count(*requests, "request", "requests"),
            count(*retries, "retry", "retries"),
        );
    }
    for stream in &report.run.streams {
        if let Some(error) = &stream.error {
            let _ = writeln!(out, "{}: {error}", stream.stream);
        }
    }
    let dead: u64 = report.run.streams.iter().map(|s| s.dead_lettered).sum();
    if dead > 0 {
        let _ = writeln!(
            out,
            "{dead} records dead-lettered: see `runner dead-letters {pipeline_file} list`"
        );
    }
    let waiting: u64 = report.run.streams.iter().map(|s| s.deferred).sum();
    if waiting > 0 {
        let _ = writeln!(
            out,
            "{} for a reference to another stream: the next run retries them",
            count(waiting, "record waits", "records wait")
        );
    }
    let conflicts: u64 = report.run.streams.iter().map(|s| s.conflicts).sum();
    let rejected: u64 = report.run.streams.iter().map(|s| s.rejected).sum();
    if conflicts + rejected > 0 {
        let _ = writeln!(
            out,
            "{} settled, {} rejected (the other side owns the field): see `runner conflicts {pipeline_file}`",
            count(conflicts, "conflict", "conflicts"),
            count(rejected, "change", "changes")
        );
    }
    let _ = writeln!(out, "run {} {}", report.run.id, report.run.status.as_str());
    out
}

fn row(counts: &StreamCounts) -> [String; 10] {
    [
        counts.stream.clone(),
        counts.read.to_string(),
        counts.created.to_string(),
        counts.updated.to_string(),
        counts.unchanged.to_string(),
        counts.linked.to_string(),
        counts.deleted.to_string(),
        counts.dead_lettered.to_string(),
        counts.deferred.to_string(),
        format!("{:.1}s", counts.duration_ms as f64 / 1000.0),
    ]
}
