//! What the brook-log benches share: where they write, the batches they append, and how a
//! figure is printed next to its baseline from the same run.
// Each bench binary compiles this module on its own and uses a different subset of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use brook_log::batch::{BatchBuilder, Compression, RecordRef};
use parking_lot::Mutex;
use tempfile::TempDir;

/// A fresh directory on the same file system as the build (not /tmp, which may be memory):
/// `BROOK_BENCH_DIR` if set, else cargo's per-target scratch directory.
pub(crate) fn bench_dir() -> TempDir {
    let parent = std::env::var_os("BROOK_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&parent).expect("bench parent dir");
    tempfile::tempdir_in(parent).expect("bench dir")
}

/// Whether the long runs were asked for (`BROOK_BENCH_BIG=1`): GiB-sized logs.
pub(crate) fn big() -> bool {
    std::env::var("BROOK_BENCH_BIG").is_ok_and(|v| v == "1")
}

/// One uncompressed batch of `count` records with `value_len`-byte values, base offset 0.
pub(crate) fn batch(count: usize, value_len: usize) -> Vec<u8> {
    let value = vec![0xA5u8; value_len];
    let mut builder = BatchBuilder::new(Compression::None);
    for i in 0..count {
        builder.push(RecordRef {
            key: None,
            value: Some(&value),
            headers: &[],
            timestamp: 1_700_000_000_000 + i as i64,
        });
    }
    builder.build().expect("bench batch").to_vec()
}

/// Rates observed by one side of a comparison, one per timed run that criterion asked for.
#[derive(Default)]
pub(crate) struct Rates(Mutex<Vec<f64>>);

impl Rates {
    /// Records that `units` (bytes, appends, reads) took `elapsed`.
    pub(crate) fn record(&self, units: u64, elapsed: Duration) {
        self.0.lock().push(units as f64 / elapsed.as_secs_f64());
    }

    /// The median rate, robust to the odd run the machine disturbed; `None` when criterion
    /// ran nothing (a filter on the command line left the benchmark out).
    pub(crate) fn median(&self) -> Option<f64> {
        let mut rates = self.0.lock().clone();
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).copied()
    }
}

/// Prints `label: X unit vs baseline Y unit (Rx)`, the ratio being X / Y, with both rates
/// scaled by `scale` (e.g. 1e-6 for MB/s from bytes/s). Prints nothing if either side did not
/// run.
pub(crate) fn print_ratio(
    label: &str,
    value: &Rates,
    baseline_label: &str,
    baseline: &Rates,
    scale: f64,
    unit: &str,
) {
    let (Some(value), Some(baseline)) = (value.median(), baseline.median()) else {
        return;
    };
    println!(
        "{label}: {} {unit} vs {baseline_label} {} {unit} ({:.2}x)",
        human(value * scale),
        human(baseline * scale),
        value / baseline
    );
}

/// A number with three significant figures and no exponent.
pub(crate) fn human(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}
