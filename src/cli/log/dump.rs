//! `brook log dump`: one line per batch, and a line for each damaged place.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use brook_log::batch::{records, BatchHeader, Record};
use brook_log::inspect::{self, BatchReader, LogScanner, ScannedBatch, SegmentEvent};

use super::describe_damage;
use crate::cli::EXIT_PROBLEM_FOUND;

#[derive(Debug, clap::Args)]
pub(crate) struct DumpArgs {
    /// A partition directory (`<data>/<topic>-<partition>`) or one segment's `.log` file.
    path: PathBuf,
    /// Also print each record: offset, timestamp, key, value and headers (text in quotes,
    /// other bytes as 0x-hex, `null` for a null key or value).
    #[arg(long)]
    records: bool,
}

impl DumpArgs {
    pub(crate) fn run(self) -> anyhow::Result<ExitCode> {
        let meta = std::fs::metadata(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        let segments = if meta.is_dir() {
            inspect::segment_files(&self.path)?
                .into_iter()
                .map(|segment| (Some(segment.base_offset), segment.log))
                .collect()
        } else {
            vec![(inspect::segment_base_offset(&self.path), self.path.clone())]
        };
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        if segments.is_empty() {
            writeln!(out, "no segment files in {}", self.path.display())?;
        }
        let mut damaged = false;
        for (base, path) in segments {
            damaged |= dump_segment(&mut out, &path, base, self.records)?;
        }
        out.flush()?;
        Ok(if damaged {
            ExitCode::from(EXIT_PROBLEM_FOUND)
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// Prints one segment; returns whether it is damaged.
fn dump_segment(
    out: &mut impl Write,
    path: &Path,
    base: Option<u64>,
    with_records: bool,
) -> anyhow::Result<bool> {
    // A segment a clean rewrote may skip offsets (the partition's cleaner checkpoint says).
    let cleaned = match (base, path.parent()) {
        (Some(base), Some(dir)) => base < inspect::cleaned_below(dir),
        _ => false,
    };
    let mut scanner = LogScanner::open(path, base)?.with_gaps(cleaned);
    let reader = BatchReader::open(path)?;
    writeln!(
        out,
        "segment {} ({} bytes){}",
        path.display(),
        scanner.file_len(),
        if cleaned {
            " cleaned: offsets may skip"
        } else {
            ""
        }
    )?;
    let mut damaged = false;
    scanner.walk(|event| -> anyhow::Result<()> {
        match event {
            SegmentEvent::Batch(batch) => {
                writeln!(out, "{}", batch_line(batch.position, &batch.header))?;
                if with_records {
                    dump_records(out, &reader, batch)?;
                }
            }
            SegmentEvent::Damage(end) => {
                damaged = true;
                writeln!(out, "DAMAGE: {}", describe_damage(end))?;
            }
        }
        Ok(())
    })?;
    Ok(damaged)
}

/// Prints the records of a batch the scan has checked (so its length is real and its bytes
/// are whole); a batch whose records do not decode gets a line saying why.
fn dump_records(
    out: &mut impl Write,
    reader: &BatchReader,
    batch: &ScannedBatch,
) -> anyhow::Result<()> {
    let decoded = records(reader.read(batch)?).and_then(|records| {
        records
            .map(|record| record.map(|r| record_line(&r)))
            .collect::<Result<Vec<_>, _>>()
    });
    match decoded {
        Ok(lines) => lines
            .iter()
            .try_for_each(|line| writeln!(out, "  {line}"))?,
        Err(e) => writeln!(out, "  DAMAGE: records do not decode: {e}")?,
    }
    Ok(())
}

fn record_line(r: &Record) -> String {
    let headers: Vec<String> = r
        .headers
        .iter()
        .map(|(k, v)| format!("{k:?}={}", show_bytes(Some(v))))
        .collect();
    format!(
        "offset {} ts {} key {} value {} headers [{}]",
        r.offset,
        r.timestamp,
        show_bytes(r.key.as_deref()),
        show_bytes(r.value.as_deref()),
        headers.join(", ")
    )
}

/// Text in quotes (escaped), other bytes as hex, `null` for none.
fn show_bytes(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "null".to_owned(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) if !text.chars().any(char::is_control) => format!("{text:?}"),
            _ => format!(
                "0x{}",
                b.iter().map(|x| format!("{x:02x}")).collect::<String>()
            ),
        },
    }
}

fn batch_line(position: u64, h: &BatchHeader) -> String {
    let compression = h
        .compression()
        .map_or_else(|e| e.to_string(), |c| c.name().to_owned());
    let mut line = format!(
        "offset {}..={} records {} position {position} size {} first_ts {} max_ts {} compression {compression} crc ok",
        h.base_offset,
        h.last_offset(),
        h.records_count,
        h.total_len(),
        h.base_timestamp,
        h.max_timestamp,
    );
    if h.producer_id >= 0 {
        line.push_str(&format!(
            " producer {} epoch {} sequence {}",
            h.producer_id, h.producer_epoch, h.base_sequence
        ));
    }
    if h.is_transactional() {
        line.push_str(" transactional");
    }
    if h.is_control() {
        line.push_str(" control");
    }
    if let Some(horizon) = h.delete_horizon() {
        line.push_str(&format!(" delete_horizon {horizon}"));
    }
    line
}
