//! Entry points for the fuzz targets in `fuzz/` (the `fuzzing` feature only; nothing in the
//! workspace builds it): a partition directory made of arbitrary files, opened and read the
//! way the broker does, on the in-memory simulated disk so an iteration touches no real file.
//!
//! What it holds, whatever the bytes: recovery, the index checks and reads never panic and
//! never allocate beyond their bounds (bytes a checkpoint vouches for are trusted by the log;
//! the broker's read checks, fuzzed by `batch_records`, refuse damage there).

use std::path::{Path, PathBuf};

use crate::batch::Batches;
use crate::config::LogConfig;
use crate::fs::sim::SimFs;
use crate::fs::{Fs, FsRef, Open};
use crate::log::PartitionLog;

/// Splits `data` into the files of one partition directory: a segment at base 0 and its
/// `.index` and `.timeindex`, a second segment at base 100 and its `.index`, and a
/// `checkpoint.0`; each file's length is the next little-endian u16 of `data` (what is left
/// when it runs out). Opens a log over them, reads every offset from its start to its end,
/// looks up a few timestamps, and checks what each read returned.
pub fn open_and_read(data: &[u8]) {
    const NAMES: [&str; 6] = [
        "00000000000000000000.log",
        "00000000000000000000.index",
        "00000000000000000000.timeindex",
        "00000000000000000100.log",
        "00000000000000000100.index",
        "checkpoint.0",
    ];
    let sim = SimFs::new();
    let fs: FsRef = sim;
    let dir = PathBuf::from("/fuzz/t-0");
    fs.create_dir_all(&dir)
        .expect("the simulated disk has room");
    let mut rest = data;
    for name in NAMES {
        let len = match rest {
            [a, b, tail @ ..] => {
                rest = tail;
                usize::from(u16::from_le_bytes([*a, *b]))
            }
            _ => rest.len(),
        }
        .min(rest.len());
        let (bytes, tail) = rest.split_at(len);
        rest = tail;
        if !bytes.is_empty() {
            write(&*fs, &dir.join(name), bytes);
        }
    }
    let mut config = LogConfig::default();
    config.segment_bytes_max = 64 << 10;
    config.index_interval_bytes = 64;
    let Ok(log) = PartitionLog::open_in(fs, dir, config) else {
        return;
    };
    let (start, end) = (log.log_start_offset(), log.high_watermark());
    let mut offset = start;
    while offset < end {
        let Ok(bytes) = log.read(offset, 4096) else {
            break;
        };
        let mut next = offset;
        // Bytes below a checkpoint's recovery point are trusted and not re-checked by the
        // log (the broker's read checks refuse damage there): walk what parses.
        for batch in Batches::new(&bytes) {
            let Ok(batch) = batch else { break };
            match u64::try_from(batch.header.last_offset()) {
                Ok(last) if last >= next => next = last + 1,
                _ => break,
            }
        }
        if next == offset {
            break;
        }
        offset = next;
    }
    for ts in [i64::MIN, 0, 1_700_000_000_000, i64::MAX] {
        let _ = log.offset_for_timestamp(ts);
    }
}

fn write(fs: &dyn Fs, path: &Path, bytes: &[u8]) {
    let file = fs
        .open(path, Open::Create)
        .expect("the simulated disk has room");
    file.write_all_at(bytes, 0)
        .expect("the simulated disk has room");
    file.sync_data().expect("the simulated disk syncs");
}
