//! Several doors in one run (`--protocol grpc,kafka`): each door's own table beside the
//! baseline, then the doors side by side with each one's ratio to the first, so "the Kafka
//! door against the gRPC door" is read off one run on one machine state.

use super::report::{Figures, Report};

/// Every report's table; with two or more, then the side-by-side comparison.
pub(crate) fn tables(reports: &[Report]) -> String {
    let mut out = String::new();
    for (index, report) in reports.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        out.push_str(&report.table());
    }
    if let [first, _, ..] = reports {
        out.push('\n');
        out.push_str(&side_by_side(first, reports));
    }
    out
}

/// A row of the comparison: its name, the figure it shows, and its decimals.
pub(crate) type Row = (&'static str, fn(&Figures) -> f64, usize);

/// The doors' figures in columns, the shared baselines last, and each door's ratio to the first.
fn side_by_side(first: &Report, reports: &[Report]) -> String {
    let rows: [Row; 5] = [
        ("records/s", |f| f.records_per_sec, 0),
        ("MB/s", |f| f.mb_per_sec, 1),
        ("latency p50 (us)", |f| f.p50_us, 1),
        ("latency p99 (us)", |f| f.p99_us, 1),
        ("latency p99.9 (us)", |f| f.p999_us, 1),
    ];
    let mut out = format!(
        "doors side by side ({}; ratio to {}):\n  {:<18}",
        first.info.workload, first.info.protocol, ""
    );
    for report in reports {
        out.push_str(&format!(" {:>16}", report.info.protocol));
    }
    out.push_str(&format!(" {:>16}", "baseline"));
    let apart = first.baseline_apart.as_ref().map(|apart| &apart.figures);
    if apart.is_some() {
        out.push_str(&format!(" {:>16}", "baseline apart"));
    }
    out.push('\n');
    for (name, figure, decimals) in rows {
        out.push_str(&format!("  {name:<18}"));
        for report in reports {
            out.push_str(&format!(" {:>16.decimals$}", figure(&report.brook)));
        }
        out.push_str(&format!(" {:>16.decimals$}", figure(&first.baseline)));
        if let Some(apart) = apart {
            out.push_str(&format!(" {:>16.decimals$}", figure(apart)));
        }
        out.push('\n');
        out.push_str(&format!("  {:<18}", "  ratio"));
        for report in reports {
            out.push_str(&format!(
                " {:>16.3}",
                ratio(figure(&report.brook), figure(&first.brook))
            ));
        }
        out.push('\n');
    }
    out
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}
