//! The plain data the broker's API takes and returns: what a door converts from and to its
//! own messages (protobuf, Kafka structs, JSON).
//!
//! Offsets are `u64` and timestamps `i64` milliseconds since the epoch, as in brook-log; Kafka's
//! `-1`/`-2` sentinels are the Kafka door's business.

use std::fmt;
use std::sync::Arc;

use brook_log::LogConfig;
use bytes::Bytes;

/// A topic and one of its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: u32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// One record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Bytes)>,
    /// Create time in ms since the epoch; `None`: the broker's clock at produce time.
    pub timestamp: Option<i64>,
    /// Where to put it; `None`: by key (murmur2), or sticky round-robin when the key is `None`.
    pub partition: Option<u32>,
}

impl ProduceRecord {
    /// A record with just a value.
    pub fn value(value: impl Into<Bytes>) -> Self {
        Self {
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// A record with a key and a value.
    pub fn keyed(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Self {
            key: Some(key.into()),
            value: Some(value.into()),
            ..Self::default()
        }
    }
}

/// Where a produced record was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordPosition {
    pub partition: u32,
    pub offset: u64,
    /// The timestamp stored with the record.
    pub timestamp: i64,
}

/// The outcome of appending one whole batch ([`crate::Broker::produce_batch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchAppended {
    /// Offset assigned to the batch's first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
    pub record_count: u32,
    /// Greatest record timestamp in the batch.
    pub max_timestamp: i64,
    /// The partition's log start offset after the append (Kafka's produce response carries it).
    pub log_start_offset: u64,
}

/// What a fetch returns: whole stored batches, as they are on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub topic: String,
    pub partition: u32,
    /// The offset that was asked for. The first batch may start before it (a batch is never
    /// split); [`Fetched::records`] skips those records.
    pub offset: u64,
    /// Zero or more whole RecordBatch v2 batches. Empty when nothing arrived within the wait.
    pub batches: Bytes,
    /// End of what readers may see, when the fetch was answered.
    pub high_watermark: u64,
    /// End of what read_committed readers may see (the first offset of the oldest open
    /// transaction, else the high watermark), when the fetch was answered.
    pub last_stable_offset: u64,
    /// First offset still in the log.
    pub log_start_offset: u64,
    /// A read_committed fetch: the aborted transactions with records in the batches read,
    /// which [`Fetched::records`] and [`Fetched::data_batches`] drop (and a Kafka client
    /// drops itself). Empty for read_uncommitted.
    pub aborted: Vec<brook_log::AbortedTxn>,
}

impl Fetched {
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Decodes the batches into records at or after [`Fetched::offset`], for doors that send
    /// records rather than bytes (gRPC, HTTP).
    pub fn records(&self) -> crate::Result<Vec<ConsumerRecord>> {
        let topic: Arc<str> = Arc::from(self.topic.as_str());
        crate::fetch::decode_records(
            &topic,
            self.partition,
            &self.batches,
            self.offset,
            &self.aborted,
        )
    }

    /// What a door that hands raw batches to applications sends: the batches without control
    /// batches (transaction markers) and, read_committed, without aborted transactions'
    /// batches (the same bytes when nothing is dropped).
    pub fn data_batches(&self) -> Bytes {
        crate::fetch::data_batches(&self.batches, &self.aborted)
    }

    /// Where the next fetch starts: the offset after the last whole batch, or the asked
    /// offset when there is none. Taken from the batch headers, not the last decoded record,
    /// so a trailing control batch is stepped over instead of fetched again forever.
    pub fn next_offset(&self) -> u64 {
        crate::fetch::next_offset(&self.batches).map_or(self.offset, |next| next.max(self.offset))
    }
}

/// A record as a consumer receives it: where it came from, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: u64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Bytes)>,
}

/// Which offset a ListOffsets-style query asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The high watermark: the offset the next record will get.
    Latest,
    /// The last stable offset: where a read_committed reader's latest is (Kafka's ListOffsets
    /// latest with `isolation_level` read_committed).
    LastStable,
    /// The first offset whose record timestamp is at or after this (ms since the epoch).
    Timestamp(i64),
    /// The first record holding the greatest timestamp in the partition (Kafka's
    /// `MAX_TIMESTAMP`, -3); no offset when the partition shows no record.
    MaxTimestamp,
}

/// The answer to an [`OffsetSpec`] query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// `None` when no record has a timestamp at or after the one asked for.
    pub offset: Option<u64>,
    /// The timestamp of the record found (timestamp and max-timestamp queries only).
    pub timestamp: Option<i64>,
}

/// Where a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartAt {
    /// The log start offset.
    Earliest,
    /// The high watermark: only records produced from now on.
    Latest,
    /// This offset (which must be within the log).
    Offset(u64),
    /// A group's committed offset, or `reset` when the group has none for the partition.
    Committed { group: String, reset: OffsetReset },
}

/// Where a consumer starts when its group has no committed offset (or it fell out of the log),
/// as Kafka's `auto.offset.reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    Earliest,
    #[default]
    Latest,
}

/// A group's committed position in one partition, as Kafka keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset the group will consume.
    pub offset: u64,
    /// Free text the committer attached (Kafka's commit metadata).
    pub metadata: String,
    /// When it was committed, ms since the epoch.
    pub commit_timestamp: i64,
}

/// A new topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    /// `None`: the broker's `default_partitions`.
    pub partitions: Option<u32>,
    /// Settings that differ from the broker's defaults.
    pub config: brook_log::TopicConfig,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, partitions: u32) -> Self {
        Self {
            name: name.into(),
            partitions: Some(partitions),
            config: Default::default(),
        }
    }
}

/// A topic as `describe_topic` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    /// Kafka's topic id: a UUID v4, fixed at creation.
    pub id: [u8; 16],
    /// The effective settings.
    pub config: LogConfig,
    /// The settings the topic overrides, as `(key, value)` text.
    pub overrides: Vec<(&'static str, String)>,
    pub partitions: Vec<PartitionDescription>,
}

/// Whether a partition serves (docs/reliability.md, "Storage"): a damaged partition is fenced,
/// and every other one serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PartitionStatus {
    /// Reads and appends are served.
    Online,
    /// Readable up to the damage recovery found (or the failure of an fsync); appends are
    /// refused until an operator repairs it (`brook log repair`), or after a failed fsync
    /// until a restart. [`Broker::fenced_partitions`](crate::Broker::fenced_partitions) says why.
    ReadOnly,
    /// The partition could not be opened (or its topic file is damaged): nothing is served.
    Offline,
}

impl PartitionStatus {
    /// The status of `log`, with the reason when it is not online.
    pub(crate) fn of(log: &brook_log::PartitionLog) -> (Self, Option<String>) {
        match log.status() {
            brook_log::LogStatus::ReadOnly { reason } => (Self::ReadOnly, Some(reason)),
            brook_log::LogStatus::Offline { reason } => (Self::Offline, Some(reason)),
            _ => (Self::Online, None),
        }
    }

    /// The status as doors show it: `online`, `read_only` or `offline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::ReadOnly => "read_only",
            Self::Offline => "offline",
        }
    }
}

/// One partition of a [`TopicDescription`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionDescription {
    pub partition: u32,
    pub log_start_offset: u64,
    /// Next offset to assign.
    pub log_end_offset: u64,
    /// End of what readers may see.
    pub high_watermark: u64,
    pub size_bytes: u64,
    pub segments: usize,
    /// fdatasyncs of the partition's segment files since the broker opened (group commits,
    /// rolls, flushes): with `appends`, shows how many appends each fsync covered.
    pub fsyncs: u64,
    /// Reads of the partition refused or cut short since the broker opened because stored
    /// data failed its checks (CRC-32C, lengths, offsets): not zero means damage on disk.
    pub corrupt_reads: u64,
    /// What the cleaner did to the partition, for a compacted topic.
    pub compaction: Option<Compaction>,
    /// Whether it serves: a damaged partition is fenced, read-only or offline.
    pub status: PartitionStatus,
}

/// The cleaner's figures for one partition of a compacted topic ([`PartitionDescription`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Compaction {
    /// Bytes of closed segments a clean could rewrite now, and the part of them written since
    /// the last clean: their ratio is the dirty ratio the cleaner compares with
    /// `min.cleanable.dirty.ratio`.
    pub cleanable_bytes: u64,
    pub dirty_bytes: u64,
    /// Where the next clean starts mapping keys.
    pub first_dirty_offset: u64,
    /// Cleans finished, bytes and records removed since the broker opened.
    pub cleans: u64,
    pub bytes_reclaimed: u64,
    pub records_removed: u64,
    /// The clean in progress: bytes read so far, of the bytes it reads in all.
    pub progress: Option<(u64, u64)>,
    /// Keys in the partition's key index (the table view).
    pub keys: usize,
}

impl Compaction {
    pub(crate) fn new(stats: brook_log::CleanerStats, keys: usize) -> Self {
        Self {
            cleanable_bytes: stats.cleanable_bytes,
            dirty_bytes: stats.dirty_bytes,
            first_dirty_offset: stats.first_dirty_offset,
            cleans: stats.cleans,
            bytes_reclaimed: stats.bytes_reclaimed,
            records_removed: stats.records_removed,
            progress: stats.progress,
            keys,
        }
    }

    /// `dirty_bytes / cleanable_bytes`, 0 when nothing is cleanable.
    pub fn dirty_ratio(&self) -> f64 {
        if self.cleanable_bytes == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / self.cleanable_bytes as f64
        }
    }
}

/// A group as `list_groups` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group: String,
    /// How many members are subscribed now (0: only committed offsets remain).
    pub members: usize,
}

/// A group as `describe_group` sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group: String,
    /// `"Stable"` with members, `"Empty"` without; a Kafka group's own state name while it has
    /// members (`"PreparingRebalance"`, `"CompletingRebalance"`, `"Stable"`).
    pub state: &'static str,
    /// Bumped at every rebalance.
    pub generation: u64,
    pub members: Vec<MemberDescription>,
    /// Every partition the group has a committed offset in or is assigned, sorted.
    pub offsets: Vec<PartitionLag>,
}

/// One member of a [`GroupDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub client_id: String,
    pub topics: Vec<String>,
    pub assignment: Vec<TopicPartition>,
}

/// A group's position in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic_partition: TopicPartition,
    pub committed: Option<CommittedOffset>,
    pub log_start_offset: u64,
    pub high_watermark: u64,
    /// `high_watermark - committed offset`; `None` without a commit.
    pub lag: Option<u64>,
    /// The member the partition is assigned to, if any.
    pub member_id: Option<String>,
}
