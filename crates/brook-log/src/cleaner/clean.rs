//! One clean of one partition log (Kafka's `Cleaner.doClean` is the model).
//!
//! 1. **What may be cleaned** ([`cleanable`]): closed segments wholly below the first
//!    uncleanable offset, the least of the active segment's base, the last stable offset (so
//!    no open transaction is touched) and the first dirty segment holding a record younger
//!    than `min.compaction.lag.ms`. The dirty part starts at the cleaner checkpoint's first
//!    dirty offset; the dirty ratio is its share of those segments' bytes.
//! 2. **The map**: the keys of the dirty part, each with its latest offset, are put in the
//!    [`OffsetMap`] until it is full (then at a batch boundary: `end` is one past the last
//!    batch mapped whole). Records of aborted transactions are not mapped. Each key is hashed
//!    here only: the map marks the dirty records a later one of their key superseded.
//! 3. **The rewrite**: every segment from the log start up to `end` is rewritten, in groups
//!    that fit one segment (`segment.bytes`, the index size, 32-bit relative offsets), so
//!    small cleaned segments merge. A record stays if it is past `end`, or it is the latest of
//!    its key, unless it is a tombstone whose batch's delete horizon has passed or it belongs
//!    to an aborted transaction. Batches keep their offsets (see [`crate::batch::retain`]);
//!    control batches stay whole; the last batch of each producer stays, empty if it must.
//!    Every group's segment is written aside; then all of them are fsynced together and
//!    swapped in at once, with one swap file and one directory fsync
//!    ([`crate::PartitionLog`]'s `replace_segments`, [`super::files`]).
//! 4. The cleaner checkpoint moves to `end`.
//!
//! The clean checks between batches whether the log is closing and gives up then, removing its
//! files aside. It reads and writes at the throttle's pace.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;

use crate::batch::retain::{for_each_key, retain, RecordView, RetainOptions, Retained};
use crate::batch::{BatchHeader, HEADER_LEN};
use crate::error::{LogError, Result};
use crate::fs::{self, FileIo};
use crate::log::PartitionLog;
use crate::segment::Segment;
use crate::txn_index::AbortedTxn;

use super::files::{self, cleaned_file, CleanerCheckpoint, SEGMENT_EXTS};
use super::offset_map::OffsetMap;
use super::state::CleanReport;
use super::throttle::Throttle;

/// Bytes read from a segment at a time.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// The part of a log a clean may touch now.
pub(crate) struct Cleanable {
    /// Closed segments wholly below the first uncleanable offset, in order.
    segments: Vec<Arc<Segment>>,
    /// Base offset of the segment after each of `segments`.
    next_bases: Vec<u64>,
    first_dirty: u64,
    pub(crate) clean_bytes: u64,
    pub(crate) dirty_bytes: u64,
    /// A dirty record is older than `max.compaction.lag.ms`.
    pub(crate) overdue: bool,
}

impl std::fmt::Debug for Cleanable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cleanable")
            .field("segments", &self.next_bases.len())
            .field("first_dirty", &self.first_dirty)
            .field("clean_bytes", &self.clean_bytes)
            .field("dirty_bytes", &self.dirty_bytes)
            .field("overdue", &self.overdue)
            .finish()
    }
}

impl Cleanable {
    /// Share of the cleanable bytes that is dirty.
    pub(crate) fn ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }
}

/// What a compacted log offers a clean at `now_ms`, and (recorded in its stats) how dirty it
/// is; `None` for a log that is not compacted.
pub(crate) fn cleanable(log: &PartitionLog, now_ms: i64) -> Result<Option<Cleanable>> {
    let config = log.shared_config();
    if !config.cleanup_policy.compacts() {
        return Ok(None);
    }
    let segments = log.segments();
    let (log_start, log_end) = (log.log_start_offset(), log.log_end_offset());
    let mut first_dirty = log.cleaning().checkpoint().first_dirty;
    if first_dirty < log_start || first_dirty > log_end {
        // Retention moved the start past it, or a truncation took the log back before it.
        first_dirty = log_start;
    }
    let closed = &segments[..segments.len() - 1];
    let next_base = |i: usize| segments[i + 1].base_offset();
    let mut bound = log
        .last_stable_offset()
        .min(segments[segments.len() - 1].base_offset());
    if config.min_compaction_lag_ms > 0 {
        let cutoff =
            now_ms.saturating_sub(i64::try_from(config.min_compaction_lag_ms).unwrap_or(i64::MAX));
        if let Some(young) = closed
            .iter()
            .enumerate()
            .find(|(i, seg)| next_base(*i) > first_dirty && seg.max_timestamp() > cutoff)
        {
            bound = bound.min(young.1.base_offset());
        }
    }
    let n = (0..closed.len())
        .take_while(|&i| next_base(i) <= bound)
        .count();
    let mut cleanable = Cleanable {
        segments: closed[..n].to_vec(),
        next_bases: (0..n).map(next_base).collect(),
        first_dirty,
        clean_bytes: 0,
        dirty_bytes: 0,
        overdue: false,
    };
    let lag = i64::try_from(config.max_compaction_lag_ms).unwrap_or(i64::MAX);
    for (seg, &next) in cleanable.segments.iter().zip(&cleanable.next_bases) {
        if next <= first_dirty {
            cleanable.clean_bytes += seg.size();
            continue;
        }
        cleanable.dirty_bytes += seg.size();
        if !cleanable.overdue && lag < i64::MAX {
            let first_timestamp = seg.first_batch()?.map_or(i64::MAX, |h| h.max_timestamp);
            cleanable.overdue = first_timestamp < now_ms.saturating_sub(lag);
        }
    }
    log.cleaning().observed(
        cleanable.dirty_bytes,
        cleanable.clean_bytes + cleanable.dirty_bytes,
    );
    Ok(Some(cleanable))
}

/// Whether a clean is due: something dirty, and the ratio above the topic's minimum or a dirty
/// record older than the maximum lag.
pub(crate) fn is_due(log: &PartitionLog, cleanable: &Cleanable) -> bool {
    let min = log.shared_config().min_cleanable_dirty_ratio.get();
    cleanable.dirty_bytes > 0 && (cleanable.ratio() > min || cleanable.overdue)
}

/// Cleans `log` as the module doc describes. `Ok(None)` when there was nothing to map.
pub(crate) fn clean(
    log: &PartitionLog,
    cleanable: Cleanable,
    map: &mut OffsetMap,
    throttle: &Throttle,
    now_ms: i64,
) -> Result<Option<CleanReport>> {
    let state = log.cleaning();
    let config = log.shared_config();
    let dirty_bytes = cleanable.dirty_bytes;
    let rewrite_bytes = cleanable.clean_bytes + cleanable.dirty_bytes;
    state.start_progress(dirty_bytes + rewrite_bytes);

    // 2. The map, sized for the dirty section's offsets.
    let Some(uncleanable) = cleanable.next_bases.last().copied() else {
        return Ok(None);
    };
    map.clear(cleanable.first_dirty, uncleanable);
    let mut report = CleanReport {
        first_dirty: cleanable.first_dirty,
        map_capacity: map.capacity(),
        map_bytes: map.memory_bytes(),
        ..CleanReport::default()
    };
    let mut txns = TxnTracker::new(log.aborted_transactions(cleanable.first_dirty, uncleanable));
    for (seg, &next) in cleanable.segments.iter().zip(&cleanable.next_bases) {
        if next <= cleanable.first_dirty {
            continue;
        }
        let start = if seg.base_offset() < cleanable.first_dirty {
            match seg.locate(cleanable.first_dirty, seg.size(), &config)? {
                Some((position, _)) => position,
                None => seg.size(),
            }
        } else {
            0
        };
        let mut walk = BatchWalk::new(seg.log_file(), seg.log_path(), start, seg.size());
        let mut full = false;
        while let Some((_, header, batch)) = walk.next()? {
            check_stopped(log)?;
            let len = batch.len() as u64;
            throttle.pace(len);
            state.add_progress(len);
            report.bytes_read += len;
            if !header.is_control() && !txns.is_aborted(&header) {
                full = !map_keys(map, batch, cleanable.first_dirty)?;
                if full {
                    break;
                }
            } else if header.is_control() {
                txns.on_control(&header);
            }
            let last = header.last_offset() as u64;
            if last >= cleanable.first_dirty {
                map.mapped_through(last);
            }
        }
        if full {
            break;
        }
        // Offsets a clean removed from this segment's end count as mapped.
        map.mapped_through(next - 1);
    }
    let Some(latest) = map.latest() else {
        return Ok(None);
    };
    let end = latest + 1;
    report.end = end;
    report.keys_mapped = map.len();

    // Segments below `end` may have gaps from now on: say so before the first swap.
    let before = state.checkpoint();
    let during = CleanerCheckpoint {
        first_dirty: before.first_dirty,
        cleaned_below: before.cleaned_below.max(end),
    };
    if during != before {
        files::write_checkpoint(&**log.fs(), log.dir(), during)?;
        state.set_checkpoint(during);
    }

    // 3. The rewrite.
    let last_of_producer: HashMap<i64, u64> = log
        .producers()
        .into_iter()
        .filter_map(|p| p.batches.back().map(|b| (p.producer_id, b.last_offset)))
        .collect();
    let log_start = log.log_start_offset();
    let mut txns = TxnTracker::new(log.aborted_transactions(log_start, end));
    let rule = KeepRule {
        map,
        first_dirty: cleanable.first_dirty,
        latest,
        now_ms,
        horizon: now_ms
            .saturating_add(i64::try_from(config.delete_retention_ms).unwrap_or(i64::MAX)),
        last_of_producer: &last_of_producer,
    };
    let to_rewrite: Vec<(Arc<Segment>, u64)> = cleanable
        .segments
        .iter()
        .cloned()
        .zip(cleanable.next_bases.iter().copied())
        .take_while(|(seg, _)| seg.base_offset() < end)
        .collect();
    state.start_progress(report.bytes_read + to_rewrite.iter().map(|(s, _)| s.size()).sum::<u64>());
    state.add_progress(report.bytes_read);
    let groups = group_segments(&to_rewrite, &config);
    rewrite(log, &groups, &rule, &mut txns, throttle, &mut report)?;

    // 4. The checkpoint.
    let after = CleanerCheckpoint {
        first_dirty: end,
        cleaned_below: during.cleaned_below,
    };
    files::write_checkpoint(&**log.fs(), log.dir(), after)?;
    state.set_checkpoint(after);
    Ok(Some(report))
}

/// Puts the keys of `batch`'s records at or after `from` in the map. `false` once the map is
/// full: every record before the one that did not fit is mapped then, and the map says so
/// ([`OffsetMap::mapped_through`]), so even a batch with more keys than the map holds is
/// cleaned over several rounds.
fn map_keys(map: &mut OffsetMap, batch: &[u8], from: u64) -> Result<bool> {
    let mut fits = true;
    let mut mapped = None;
    for_each_key(batch, |offset, key| {
        if offset >= from {
            match key {
                Some(key) if !map.put(key, offset) => fits = false,
                _ => mapped = Some(offset),
            }
        }
        fits
    })?;
    if !fits {
        if let Some(offset) = mapped {
            map.mapped_through(offset);
        }
    }
    Ok(fits)
}

/// What decides whether a record stays, for one clean.
struct KeepRule<'a> {
    map: &'a OffsetMap,
    /// Records from here to `latest` are judged by the map's superseded marks, the ones before
    /// by looking their key up.
    first_dirty: u64,
    /// Records after this offset were not mapped: they stay.
    latest: u64,
    now_ms: i64,
    /// The delete horizon a batch keeping a tombstone gets.
    horizon: i64,
    /// The last offset of each producer's last batch: that batch stays, empty if it must.
    last_of_producer: &'a HashMap<i64, u64>,
}

impl KeepRule<'_> {
    fn keeps(&self, record: RecordView<'_>, delete_horizon: Option<i64>) -> bool {
        if record.offset > self.latest {
            return true;
        }
        let Some(key) = record.key else {
            // Written before the topic was compacted: a keyless record has no latest.
            return false;
        };
        let superseded = if record.offset >= self.first_dirty {
            // Mapped: the map marked it when a later record of its key came.
            self.map.superseded(record.offset).unwrap_or(false)
        } else {
            self.map
                .get(key)
                .is_some_and(|latest| record.offset < latest)
        };
        if superseded {
            return false;
        }
        !(record.tombstone && delete_horizon.is_some_and(|h| self.now_ms >= h))
    }

    fn is_last_of_producer(&self, header: &BatchHeader) -> bool {
        header.producer_id >= 0
            && self.last_of_producer.get(&header.producer_id)
                == Some(&(header.last_offset() as u64))
    }
}

/// Rewrites every group of `groups` into one cleaned segment written aside, fsyncs them all,
/// then swaps them in at once. Groups whose segments changed under the clean stay as they were.
fn rewrite(
    log: &PartitionLog,
    groups: &[&[(Arc<Segment>, u64)]],
    rule: &KeepRule<'_>,
    txns: &mut TxnTracker,
    throttle: &Throttle,
    report: &mut CleanReport,
) -> Result<()> {
    let (fs, dir) = (log.fs(), log.dir());
    let new_bases = || groups.iter().map(|group| group[0].0.base_offset());
    let mut sizes = Vec::with_capacity(groups.len());
    let written = (|| -> Result<()> {
        let mut cleaned = Vec::with_capacity(groups.len());
        for group in groups {
            let segment = write_group(log, group, rule, txns, throttle, report)?;
            sizes.push(segment.size());
            cleaned.push(segment);
        }
        // Once every group is written, one after the other: the disk had the whole rewrite
        // to write back meanwhile.
        for segment in &cleaned {
            check_stopped(log)?;
            segment.sync_data()?;
            segment.seal()?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        discard_cleaned(&**fs, dir, new_bases())?;
        return Err(e);
    }
    let old: Vec<Vec<Arc<Segment>>> = groups
        .iter()
        .map(|group| group.iter().map(|(seg, _)| Arc::clone(seg)).collect())
        .collect();
    let swapped = match log.replace_segments(&old) {
        Ok(swapped) => swapped,
        Err(e) => {
            // Failed before the commit point: the files aside go. Past it, the next open
            // finishes the swap and needs them.
            discard_cleaned(&**fs, dir, new_bases())?;
            return Err(e);
        }
    };
    let unswapped = new_bases()
        .zip(&swapped)
        .filter(|(_, swapped)| !**swapped)
        .map(|(base, _)| base);
    discard_cleaned(&**fs, dir, unswapped)?;
    for ((group, swapped), size) in groups.iter().zip(swapped).zip(sizes) {
        report.segments_in += group.len();
        if swapped {
            report.size_before += group.iter().map(|(seg, _)| seg.size()).sum::<u64>();
            report.size_after += size;
            report.segments_out += 1;
        } else {
            report.segments_out += group.len();
        }
    }
    Ok(())
}

/// Writes the segments of `group`, cleaned, into one segment aside (not fsynced yet).
fn write_group(
    log: &PartitionLog,
    group: &[(Arc<Segment>, u64)],
    rule: &KeepRule<'_>,
    txns: &mut TxnTracker,
    throttle: &Throttle,
    report: &mut CleanReport,
) -> Result<Segment> {
    let config = log.shared_config();
    let (fs, dir) = (log.fs(), log.dir());
    let new_base = group[0].0.base_offset();
    remove_cleaned(&**fs, dir, new_base)?;
    let cleaned = Segment::create_cleaned(fs, dir, new_base, &config)?;
    for (seg, _) in group {
        let mut walk = BatchWalk::new(seg.log_file(), seg.log_path(), 0, seg.size());
        while let Some((_, header, batch)) = walk.next()? {
            check_stopped(log)?;
            let len = batch.len() as u64;
            throttle.pace(len);
            log.cleaning().add_progress(len);
            report.bytes_read += len;
            let retained = if header.is_control() {
                txns.on_control(&header);
                Retained::Unchanged
            } else {
                let aborted = txns.is_aborted(&header);
                let options = RetainOptions {
                    keep_empty: rule.is_last_of_producer(&header),
                    delete_horizon: Some(rule.horizon),
                };
                let horizon = header.delete_horizon();
                let (retained, counts) = retain(batch, options, |record| {
                    !aborted && rule.keeps(record, horizon)
                })?;
                report.records_read += counts.records_read;
                report.records_kept += counts.records_kept;
                retained
            };
            let out = match &retained {
                Retained::Unchanged => batch,
                Retained::Rewritten(bytes) => bytes.as_slice(),
                Retained::Dropped => continue,
            };
            let out_header = BatchHeader::parse(out)?;
            cleaned
                .append(out, &out_header, &config)
                .map_err(|failed| failed.error)?;
            throttle.pace(out.len() as u64);
            report.bytes_written += out.len() as u64;
        }
    }
    Ok(cleaned)
}

/// Removes the files aside of the groups based at `bases`, unless a swap is committed on disk
/// (a failure past the commit point: the next open finishes that swap with them).
fn discard_cleaned(
    fs: &dyn crate::fs::Fs,
    dir: &Path,
    bases: impl Iterator<Item = u64>,
) -> Result<()> {
    if fs.metadata(&dir.join(files::SWAP_FILE)).is_ok() {
        return Ok(());
    }
    for base in bases {
        remove_cleaned(fs, dir, base)?;
    }
    Ok(())
}

/// Removes the files a clean writes aside for the segment at `base`, if any.
fn remove_cleaned(fs: &dyn crate::fs::Fs, dir: &Path, base: u64) -> Result<()> {
    for ext in SEGMENT_EXTS {
        let path = cleaned_file(dir, base, ext);
        fs::remove_if_present(fs, &path).map_err(|e| LogError::io(&path, e))?;
    }
    Ok(())
}

/// `Err(Closed)` once the log is closing: the clean gives up.
fn check_stopped(log: &PartitionLog) -> Result<()> {
    if log.cleaning().is_stopped() {
        return Err(LogError::Closed);
    }
    Ok(())
}

/// Splits consecutive segments into groups that each fit one segment: their bytes within
/// `segment.bytes`, their index entries within one index, their offsets within 32 bits of the
/// group's base. A segment too big for any group is a group of its own.
fn group_segments<'a>(
    segments: &'a [(Arc<Segment>, u64)],
    config: &crate::LogConfig,
) -> Vec<&'a [(Arc<Segment>, u64)]> {
    // The time index is the one that fills first (12-byte entries against 8).
    let entries_max = (config.index_bytes_max / 12) as usize;
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let base = segments[start].0.base_offset();
        let mut size = segments[start].0.size();
        let mut entries = segments[start].0.index_entries();
        let mut end = start + 1;
        while let Some((seg, next)) = segments.get(end) {
            let fits = size + seg.size() <= config.segment_bytes_max
                && entries + seg.index_entries() <= entries_max
                && next - 1 - base <= u64::from(u32::MAX);
            if !fits {
                break;
            }
            size += seg.size();
            entries += seg.index_entries();
            end += 1;
        }
        groups.push(&segments[start..end]);
        start = end;
    }
    groups
}

/// Which transactional batches belong to aborted transactions, walking batches in offset order
/// (Kafka's `CleanedTransactionMetadata`): a producer's transaction is aborted from its first
/// offset in the aborted transaction index to its marker.
struct TxnTracker {
    /// Aborted transactions not reached yet, by first offset.
    pending: VecDeque<AbortedTxn>,
    /// Producers inside an aborted transaction.
    ongoing: HashSet<i64>,
}

impl TxnTracker {
    fn new(mut aborted: Vec<AbortedTxn>) -> Self {
        aborted.sort_by_key(|a| a.first_offset);
        Self {
            pending: aborted.into(),
            ongoing: HashSet::new(),
        }
    }

    fn reach(&mut self, offset: u64) {
        while self
            .pending
            .front()
            .is_some_and(|a| a.first_offset <= offset)
        {
            if let Some(aborted) = self.pending.pop_front() {
                self.ongoing.insert(aborted.producer_id);
            }
        }
    }

    /// Whether the data batch `header` belongs to an aborted transaction.
    fn is_aborted(&mut self, header: &BatchHeader) -> bool {
        if !header.is_transactional() {
            return false;
        }
        self.reach(header.base_offset as u64);
        self.ongoing.contains(&header.producer_id)
    }

    /// A control batch ends its producer's transaction.
    fn on_control(&mut self, header: &BatchHeader) {
        self.reach(header.base_offset as u64);
        self.ongoing.remove(&header.producer_id);
    }
}

/// Reads a segment's batches in order through a large buffer, checking each header's shape
/// against the bytes left (the CRC was checked when the batch was written or recovered).
struct BatchWalk<'a> {
    file: &'a dyn FileIo,
    path: &'a Path,
    position: u64,
    limit: u64,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_at: u64,
}

impl<'a> BatchWalk<'a> {
    fn new(file: &'a dyn FileIo, path: &'a Path, position: u64, limit: u64) -> Self {
        Self {
            file,
            path,
            position,
            limit,
            buf: Vec::new(),
            buf_at: position,
        }
    }

    /// Makes `buf` hold `[position, position + len)`, reading at least a chunk.
    fn fill(&mut self, len: usize) -> Result<()> {
        let end = self.position + len as u64;
        if self.position >= self.buf_at && end <= self.buf_at + self.buf.len() as u64 {
            return Ok(());
        }
        let want = (self.limit - self.position).min(len.max(READ_CHUNK_BYTES) as u64) as usize;
        self.buf.resize(want, 0);
        self.file
            .read_exact_at(&mut self.buf, self.position)
            .map_err(|e| LogError::io(self.path, e))?;
        self.buf_at = self.position;
        Ok(())
    }

    /// The next batch: its position, header and bytes.
    fn next(&mut self) -> Result<Option<(u64, BatchHeader, &[u8])>> {
        let left = self.limit.saturating_sub(self.position);
        if left == 0 {
            return Ok(None);
        }
        let (path, position) = (self.path, self.position);
        let corrupt = move |reason: String| LogError::Corrupt {
            segment: path.to_path_buf(),
            position,
            offset: 0,
            reason,
        };
        if left < HEADER_LEN as u64 {
            return Err(corrupt(format!(
                "{left} bytes left, less than a batch header"
            )));
        }
        self.fill(HEADER_LEN)?;
        let at = (self.position - self.buf_at) as usize;
        let header = BatchHeader::parse(&self.buf[at..])?;
        header
            .check_shape(usize::try_from(left).unwrap_or(usize::MAX))
            .map_err(|e| corrupt(e.to_string()))?;
        let total = header.total_len();
        self.fill(total)?;
        let at = (self.position - self.buf_at) as usize;
        let position = self.position;
        self.position += total as u64;
        Ok(Some((position, header, &self.buf[at..at + total])))
    }
}
