//! The transaction coordinator's own log, `<data>/transactions/`: one partition log (brook-log,
//! with its CRCs, group commit and crash recovery) holding a record per change of a
//! transactional id's state, keyed by the id (Kafka's `__transaction_state`). The coordinator
//! writes each change here, durably, before it acts on it, so after `kill -9` the state is
//! the last one written: a transaction that was committing is completed, one that was open is
//! aborted when its timeout passes.
//!
//! At open every record from the log start is read and the last one per id kept (a null value
//! forgets the id). To keep that bounded the log is compacted by rewriting: once it holds more
//! than [`REWRITE_BYTES_MIN`] and four times what the last rewrite wrote, every live state is
//! appended again and the log start moved to the first of them, so older segments are deleted.
//! Blocking: the broker calls it on the blocking pool, or in place on its worker
//! (`block_in_place`) when an append does not wait for the disk ([`TxnLog::appends_in_place`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use brook_log::batch::{BatchBuilder, Batches, Compression, RecordRef};
use brook_log::{Durability, LogConfig, LogError, PartitionLog};

use super::state::TxnMeta;
use crate::error::{BrokerError, Result};

/// The directory under the data directory.
pub(crate) const TXN_LOG_DIR: &str = "transactions";
/// Segment size of the coordinator's log: small, so rewrites free space soon.
const SEGMENT_BYTES: u64 = 16 << 20;
/// The log is not rewritten before it holds this much.
pub(crate) const REWRITE_BYTES_MIN: u64 = 32 << 20;
/// Bytes read at a time when loading.
const LOAD_READ_BYTES: usize = 8 << 20;
/// Records per batch when rewriting.
const REWRITE_BATCH_BYTES: usize = 1 << 20;

/// The coordinator's log.
#[derive(Debug)]
pub(crate) struct TxnLog {
    log: PartitionLog,
    /// Bytes in the log after the last rewrite (or open).
    base_size: AtomicU64,
    /// An append returns without waiting for an fsync (durability `none` or `interval`).
    in_place: bool,
}

impl TxnLog {
    /// Opens (creating) the log under `data_dir` and returns every id's last state.
    pub(crate) fn open(
        data_dir: &Path,
        durability: Durability,
    ) -> Result<(Self, HashMap<String, TxnMeta>)> {
        let dir = data_dir.join(TXN_LOG_DIR);
        let mut config = LogConfig::default();
        config.segment_bytes_max = SEGMENT_BYTES;
        config.message_bytes_max = 8 << 20;
        config.retention_ms_max = None;
        config.retention_bytes_max = None;
        config.durability = durability;
        let log = PartitionLog::open(&dir, config).map_err(BrokerError::from_admin_log)?;
        let states = load(&log)?;
        let base_size = AtomicU64::new(log.size_bytes());
        let in_place = durability != Durability::Sync;
        Ok((
            Self {
                log,
                base_size,
                in_place,
            },
            states,
        ))
    }

    /// Whether an append only copies into the page cache (no fsync to wait for), as the
    /// partitions' appenders write inline under the same durabilities: short enough to run on
    /// the caller's worker with `block_in_place` instead of a hop to the blocking pool and
    /// back, which is most of what a transaction's three coordinator records cost.
    pub(crate) fn appends_in_place(&self) -> bool {
        self.in_place
    }

    /// Appends `id`'s new state (`None`: forget it) and returns once it is durable.
    pub(crate) fn append(&self, id: &str, meta: Option<&TxnMeta>) -> Result<()> {
        let value = meta.map(TxnMeta::encode);
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push(RecordRef {
            key: Some(id.as_bytes()),
            value: value.as_deref(),
            headers: &[],
            timestamp: crate::produce::now_ms(),
        });
        self.append_built(builder)
    }

    /// Whether the log has grown enough since the last rewrite to rewrite it.
    pub(crate) fn wants_rewrite(&self) -> bool {
        let size = self.log.size_bytes();
        size > REWRITE_BYTES_MIN && size > 4 * self.base_size.load(Ordering::Relaxed)
    }

    /// Appends every live state again and drops everything before them. The caller keeps
    /// every other append out meanwhile, so no state in `live` is older than the log's.
    pub(crate) fn rewrite<'a>(
        &self,
        live: impl IntoIterator<Item = (&'a String, &'a TxnMeta)>,
    ) -> Result<()> {
        let fail = |e| BrokerError::from_log(e, TXN_LOG_DIR, 0);
        let start = self.log.log_end_offset();
        let mut builder = BatchBuilder::new(Compression::None);
        let now = crate::produce::now_ms();
        for (id, meta) in live {
            let value = meta.encode();
            builder.push(RecordRef {
                key: Some(id.as_bytes()),
                value: Some(&value),
                headers: &[],
                timestamp: now,
            });
            if builder.estimated_size() >= REWRITE_BATCH_BYTES {
                let full = std::mem::replace(&mut builder, BatchBuilder::new(Compression::None));
                self.append_built(full)?;
            }
        }
        if !builder.is_empty() {
            self.append_built(builder)?;
        }
        self.log.advance_log_start(start).map_err(fail)?;
        self.log.roll().map_err(fail)?;
        self.log.apply_retention(now).map_err(fail)?;
        self.base_size
            .store(self.log.size_bytes(), Ordering::Relaxed);
        Ok(())
    }

    fn append_built(&self, builder: BatchBuilder) -> Result<()> {
        let mut batch = builder
            .build()
            .map_err(|e| BrokerError::invalid(e.to_string()))?;
        self.log
            .append(&mut batch)
            .map(drop)
            .map_err(|e| BrokerError::from_log(e, TXN_LOG_DIR, 0))
    }

    /// Closes the log clean.
    pub(crate) fn close(&self) -> Result<()> {
        self.log.close().map_err(BrokerError::from_admin_log)
    }
}

/// Every id's last state, read from the log start.
fn load(log: &PartitionLog) -> Result<HashMap<String, TxnMeta>> {
    let fail = |e| BrokerError::from_log(e, TXN_LOG_DIR, 0);
    let corrupt = |offset: u64, reason: String| {
        BrokerError::from_admin_log(LogError::Corrupt {
            segment: log.dir().to_path_buf(),
            position: 0,
            offset,
            reason: format!("transaction log: {reason}"),
        })
    };
    let mut states = HashMap::new();
    let mut offset = log.log_start_offset();
    let end = log.high_watermark();
    while offset < end {
        let bytes = log.read(offset, LOAD_READ_BYTES).map_err(fail)?;
        let mut next = offset;
        for batch in Batches::new(&bytes) {
            let batch = batch.map_err(|e| corrupt(next, e.to_string()))?;
            next = batch.header.next_offset() as u64;
            let whole = bytes.slice(batch.position..batch.position + batch.bytes.len());
            let records =
                brook_log::batch::records(whole).map_err(|e| corrupt(offset, e.to_string()))?;
            for record in records {
                let record = record.map_err(|e| corrupt(offset, e.to_string()))?;
                if record.offset < log.log_start_offset() {
                    continue;
                }
                let key = record.key.as_deref().unwrap_or_default();
                let id = String::from_utf8(key.to_vec())
                    .map_err(|_| corrupt(record.offset, "a key that is not UTF-8".into()))?;
                match record.value {
                    None => {
                        states.remove(&id);
                    }
                    Some(value) => {
                        let meta = TxnMeta::decode(&value).map_err(|reason| {
                            corrupt(record.offset, format!("transaction {id:?}: {reason}"))
                        })?;
                        states.insert(id, meta);
                    }
                }
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::state::TxnState;

    #[test]
    fn the_last_state_of_each_id_survives_reopen_and_rewrites() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let (log, states) = TxnLog::open(dir.path(), Durability::Sync).expect("open");
            assert!(states.is_empty());
            let mut meta = TxnMeta::new(7, 1000, 1);
            log.append("a", Some(&meta)).expect("append");
            meta.state = TxnState::Ongoing;
            log.append("a", Some(&meta)).expect("append");
            log.append("b", Some(&TxnMeta::new(8, 1000, 1)))
                .expect("append");
            log.append("b", None).expect("forget");
        }
        let (log, states) = TxnLog::open(dir.path(), Durability::Sync).expect("reopen");
        assert_eq!(states.len(), 1);
        assert_eq!(states["a"].state, TxnState::Ongoing);
        let mut live = states.clone();
        live.insert("c".into(), TxnMeta::new(9, 1000, 1));
        log.append("c", Some(&live["c"])).expect("append");
        log.rewrite(live.iter()).expect("rewrite");
        log.close().expect("close");
        drop(log);
        let (_, states) = TxnLog::open(dir.path(), Durability::Sync).expect("after rewrite");
        assert_eq!(states, live);
    }
}
