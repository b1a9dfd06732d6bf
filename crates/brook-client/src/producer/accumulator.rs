//! The producer's batching: records wait here, grouped per partition, until their batch is
//! sendable.
//!
//! Pure bookkeeping, no IO: the pipeline task feeds it records and metadata and asks it for the
//! next batch to send, so every batching rule is testable without a server.
//!
//! Rules:
//! - A record's partition is its explicit one, else Kafka's murmur2 of its key, else the
//!   topic's *sticky* partition, which moves on (round-robin) each time a batch for it fills up
//!   or is sent, so keyless records form large batches without piling on one partition.
//! - Partitions need the topic's partition count. Until it is known (the pipeline looks it up),
//!   the topic's records wait in arrival order. When the topic does not exist, they go out as
//!   one *probe* request that leaves partitioning to the server (which creates the topic when
//!   it allows automatic creation), and the count is looked up again afterwards.
//! - A partition's batch takes records until it holds `batch_bytes_max` bytes, or until the
//!   next record could take its encoding past the topic's `message_bytes_max` (Kafka's
//!   `max.message.bytes`, the largest batch the server appends, learnt with the partition
//!   count); then it is full and the next record starts a new batch. One record larger than
//!   that travels alone (and the server refuses it if it is over the topic's limit).
//! - A batch is sendable when it is full, when its first record has waited `linger`, when a
//!   flush covers it, or when the producer is closing. The oldest sendable batch goes first;
//!   a partition's batches always leave in order.
//! - A partition's batch is a Kafka RecordBatch v2 from its first record on (module
//!   `crate::batch`): each record is encoded into the batch's buffer as it is routed, so
//!   sending it is one `RawBatch` with no per-record message. A probe keeps its records as
//!   protobuf messages, since their partitions are the server's to choose.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_proto::v1;

use super::ack::{AckSender, Delivery, Reply};
use crate::batch::BatchBuilder;
use crate::partitioner::partition_for_key;
use crate::record::ProducerRecord;

/// One record waiting for its topic's partition count. Its timestamp is set (`send` stamps a
/// record that has none, as Kafka clients stamp at send).
#[derive(Debug)]
pub(crate) struct Entry {
    /// Arrival number: a flush waits for every record numbered below its mark.
    pub id: u64,
    pub record: ProducerRecord,
    pub bytes: usize,
    pub reply: Reply,
}

/// A record of a batch that is answered on its own (it waited for its topic): where in the
/// batch it is, and where its outcome goes.
#[derive(Debug)]
pub(crate) struct Forward {
    pub index: u32,
    pub timestamp_ms: i64,
    pub reply: Reply,
}

/// A batch's records: encoded, or (a probe) as protobuf messages.
#[derive(Debug)]
pub(crate) enum Content {
    Batch(BatchBuilder),
    Records(Vec<v1::ProducerRecord>),
}

/// Records of one topic bound for one partition (or, for a probe, left to the server).
#[derive(Debug)]
pub(crate) struct Batch {
    pub topic: Arc<str>,
    /// `None` for a probe: the server picks each record's partition.
    pub partition: Option<u32>,
    pub content: Content,
    /// The id of the batch's first record (`None` while it has none).
    pub first_id: Option<u64>,
    pub count: u32,
    pub bytes: usize,
    /// The answer shared by the deliveries of the records `send` put here directly.
    pub ack: AckSender,
    /// Records that waited for their topic, each answered on its own.
    pub forwarded: Vec<Forward>,
    created: Instant,
    full: bool,
}

impl Batch {
    fn new(topic: Arc<str>, partition: Option<u32>, capacity: usize, now: Instant) -> Self {
        let content = match partition {
            Some(_) => Content::Batch(BatchBuilder::new(capacity)),
            None => Content::Records(Vec::new()),
        };
        Batch {
            topic,
            partition,
            content,
            first_id: None,
            count: 0,
            bytes: 0,
            ack: AckSender::new(),
            forwarded: Vec::new(),
            created: now,
            full: false,
        }
    }

    /// Encodes (or keeps) `record`; returns its index in the batch and its timestamp.
    fn push(&mut self, id: u64, record: ProducerRecord, bytes: usize) -> (u32, i64) {
        let timestamp_ms = record.timestamp_ms.unwrap_or_default();
        match &mut self.content {
            Content::Batch(builder) => builder.push(&record, timestamp_ms),
            Content::Records(records) => records.push(record.into()),
        }
        let index = self.count;
        self.first_id.get_or_insert(id);
        self.count += 1;
        self.bytes += bytes;
        (index, timestamp_ms)
    }

    /// Pushes a record that waited for its topic; it is answered through its own reply.
    fn push_entry(&mut self, entry: Entry) {
        let (index, timestamp_ms) = self.push(entry.id, entry.record, entry.bytes);
        self.forward(index, timestamp_ms, entry.reply);
    }

    fn forward(&mut self, index: u32, timestamp_ms: i64, reply: Reply) {
        self.forwarded.push(Forward {
            index,
            timestamp_ms,
            reply,
        });
    }
}

/// How a known topic's records are placed.
#[derive(Debug, Clone, Copy)]
struct Layout {
    partitions: u32,
    /// Where the next keyless record without a partition goes.
    sticky: u32,
    /// The largest encoded batch the topic takes.
    message_bytes_max: usize,
}

#[derive(Debug)]
enum TopicState {
    /// Records are routed to partitions as they arrive.
    Known(Layout),
    /// The partition count is being looked up (or a probe is out); records wait in order.
    Waiting { entries: Vec<Entry> },
}

/// What [`Accumulator::append`] asks of the producer's task.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Nothing: the record joined a batch that was already known to the task.
    No,
    /// A batch was started (a new linger deadline) or filled up (sendable): look again.
    Task,
    /// The topic is new: look up its partition count and report it back.
    LookUp(Arc<str>),
}

/// Records waiting to be sent, per partition.
#[derive(Debug)]
pub(crate) struct Accumulator {
    topics: Map<Arc<str>, TopicState>,
    queues: Map<(Arc<str>, u32), VecDeque<Batch>>,
    probes: VecDeque<Batch>,
    linger: Duration,
    batch_bytes_max: usize,
    next_id: u64,
    /// Seed of each new topic's first sticky partition, so producers do not all start on 0.
    sticky_seed: u32,
    /// Bytes a new batch's buffer starts with: the size of the last batch sent (so a busy
    /// producer's buffers do not regrow as records arrive), small until one is.
    batch_capacity: usize,
}

/// The accumulator's maps, looked up twice per record by topic name: hashed with FNV-1a, which
/// costs a few instructions a byte for a short name where std's SipHash costs a fixed setup.
/// SipHash's resistance to chosen keys buys nothing here: the names are the application's own.
type Map<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A new batch buffer's first capacity before any batch has filled up.
const BATCH_CAPACITY_FIRST: usize = 16 << 10;

impl Accumulator {
    pub(super) fn new(linger: Duration, batch_bytes_max: usize, sticky_seed: u32) -> Self {
        Accumulator {
            topics: Map::default(),
            queues: Map::default(),
            probes: VecDeque::new(),
            linger,
            batch_bytes_max,
            next_id: 0,
            sticky_seed,
            batch_capacity: BATCH_CAPACITY_FIRST.min(batch_bytes_max),
        }
    }

    /// The id the next record will get: a flush issued now waits for every id below it.
    pub(super) fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Queues a record for `topic` (stamped: its timestamp is set) and returns its delivery.
    /// `now` is read only when the record starts a batch (most records join one).
    pub(super) fn append(
        &mut self,
        topic: &str,
        record: ProducerRecord,
        bytes: usize,
        now: impl Fn() -> Instant,
    ) -> (Delivery, Wake) {
        let id = self.next_id;
        self.next_id += 1;
        match self.topics.get_key_value(topic) {
            Some((name, &TopicState::Known(layout))) => {
                let name = Arc::clone(name);
                let (batch, index, timestamp_ms, wake) =
                    self.route(&name, layout, id, record, bytes, now);
                let partition = batch.partition.unwrap_or_default();
                (batch.ack.delivery(index, partition, timestamp_ms), wake)
            }
            found => {
                let (reply, delivery) = Delivery::alone();
                let entry = Entry {
                    id,
                    record,
                    bytes,
                    reply,
                };
                if found.is_some() {
                    if let Some(TopicState::Waiting { entries }) = self.topics.get_mut(topic) {
                        entries.push(entry);
                    }
                    return (delivery, Wake::No);
                }
                let name: Arc<str> = topic.into();
                let waiting = TopicState::Waiting {
                    entries: vec![entry],
                };
                self.topics.insert(Arc::clone(&name), waiting);
                (delivery, Wake::LookUp(name))
            }
        }
    }

    /// The lookup found `topic` with `partitions` partitions, taking batches of up to
    /// `message_bytes_max` bytes (`None`: no limit known): its waiting records are routed.
    pub(super) fn on_partitions(
        &mut self,
        topic: &Arc<str>,
        partitions: u32,
        message_bytes_max: Option<usize>,
        now: Instant,
    ) {
        let partitions = partitions.max(1);
        let state = TopicState::Known(Layout {
            partitions,
            sticky: self.sticky_seed % partitions,
            message_bytes_max: message_bytes_max.unwrap_or(usize::MAX),
        });
        if let Some(TopicState::Waiting { entries }) = self.topics.insert(Arc::clone(topic), state)
        {
            for entry in entries {
                // Read again per record: a batch that fills moves the sticky partition on.
                let Some(&TopicState::Known(layout)) = self.topics.get(topic) else {
                    return;
                };
                let (batch, index, timestamp_ms, _) =
                    self.route(topic, layout, entry.id, entry.record, entry.bytes, || now);
                batch.forward(index, timestamp_ms, entry.reply);
            }
        }
    }

    /// The lookup found no such topic: the waiting records go out as one probe, and records
    /// that arrive meanwhile wait for the lookup that follows it.
    pub(super) fn on_missing_topic(&mut self, topic: &Arc<str>, now: Instant) {
        if let Some(TopicState::Waiting { entries }) = self.topics.get_mut(topic) {
            let mut probe = Batch::new(Arc::clone(topic), None, 0, now);
            for entry in std::mem::take(entries) {
                probe.push_entry(entry);
            }
            if probe.count > 0 {
                self.probes.push_back(probe);
            }
        }
    }

    /// The lookup failed: forgets the topic and returns its waiting records, to be failed.
    pub(super) fn on_lookup_failed(&mut self, topic: &str) -> Vec<Entry> {
        match self.topics.remove(topic) {
            Some(TopicState::Waiting { entries }) => entries,
            Some(known) => {
                self.topics.insert(topic.into(), known);
                Vec::new()
            }
            None => Vec::new(),
        }
    }

    /// A probe finished (either way). Returns whether the topic needs another lookup: yes when
    /// records arrived meanwhile; otherwise the topic is forgotten and the next record starts
    /// one.
    pub(super) fn after_probe(&mut self, topic: &str) -> bool {
        match self.topics.get(topic) {
            Some(TopicState::Waiting { entries }) if entries.is_empty() => {
                self.topics.remove(topic);
                false
            }
            Some(TopicState::Waiting { .. }) => true,
            _ => false,
        }
    }

    /// The server no longer knows a partition of `topic` (deleted, or recreated with another
    /// count): the next record looks the topic up again.
    pub(super) fn forget(&mut self, topic: &str) {
        if let Some(TopicState::Known(_)) = self.topics.get(topic) {
            self.topics.remove(topic);
        }
    }

    /// Takes the oldest sendable batch: probes first, then any partition's first batch that is
    /// full, has lingered long enough, has a record numbered below `flush_below`, or any batch
    /// at all when `closing`.
    pub(super) fn pop_sendable(
        &mut self,
        now: Instant,
        flush_below: u64,
        closing: bool,
    ) -> Option<Batch> {
        if let Some(probe) = self.probes.pop_front() {
            return Some(probe);
        }
        let key = self
            .queues
            .iter()
            .filter_map(|(key, queue)| Some((key, queue.front()?)))
            .filter(|(_, batch)| {
                closing
                    || batch.full
                    || now >= batch.created + self.linger
                    || batch.first_id.is_some_and(|id| id < flush_below)
            })
            .min_by_key(|(_, batch)| batch.created)
            .map(|(key, _)| key.clone())?;
        let queue = self.queues.get_mut(&key)?;
        let batch = queue.pop_front()?;
        if queue.is_empty() {
            self.queues.remove(&key);
        }
        if let Content::Batch(builder) = &batch.content {
            // Estimated sizes undercount the encoding a little: a quarter more keeps a batch
            // of the same records from growing its buffer at the end.
            let max = self.batch_bytes_max + self.batch_bytes_max / 4;
            self.batch_capacity = builder.len().clamp(BATCH_CAPACITY_FIRST.min(max), max);
        }
        Self::advance_sticky(&mut self.topics, &key.0, key.1);
        Some(batch)
    }

    /// When the oldest batch that is not yet sendable will be, by linger.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.queues
            .values()
            .filter_map(VecDeque::front)
            .map(|batch| batch.created + self.linger)
            .min()
    }

    /// The lowest id of any record still held here (batches and waiting topics).
    pub(super) fn min_id(&self) -> Option<u64> {
        let batched = self
            .queues
            .values()
            .flatten()
            .chain(&self.probes)
            .filter_map(|batch| batch.first_id);
        let waiting = self.topics.values().filter_map(|state| match state {
            TopicState::Waiting { entries } => entries.first().map(|e| e.id),
            TopicState::Known(_) => None,
        });
        batched.chain(waiting).min()
    }

    /// Drops every record held here: their deliveries resolve as closed.
    pub(super) fn clear(&mut self) {
        self.topics.clear();
        self.queues.clear();
        self.probes.clear();
    }

    /// Whether no record is held here.
    pub(super) fn is_empty(&self) -> bool {
        self.min_id().is_none()
    }

    /// Puts a record of a known topic into its partition's open batch (starting one when the
    /// record does not fit); returns the batch, the record's index in it and its timestamp.
    fn route(
        &mut self,
        topic: &Arc<str>,
        layout: Layout,
        id: u64,
        mut record: ProducerRecord,
        bytes: usize,
        now: impl Fn() -> Instant,
    ) -> (&mut Batch, u32, i64, Wake) {
        let Layout {
            partitions,
            sticky,
            message_bytes_max,
        } = layout;
        let partition = match (record.partition, &record.key) {
            (Some(partition), _) => partition,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => sticky,
        };
        // The server then puts the record exactly where the client batched it.
        record.partition = Some(partition);
        let queue = self
            .queues
            .entry((Arc::clone(topic), partition))
            .or_default();
        let max = self.batch_bytes_max;
        let encoded = BatchBuilder::record_len_max(&record);
        let fits = |batch: &Batch| {
            let encoded_fits = match &batch.content {
                Content::Batch(builder) => builder.len() + encoded <= message_bytes_max,
                Content::Records(_) => true,
            };
            !batch.full && (batch.count == 0 || (batch.bytes + bytes <= max && encoded_fits))
        };
        let mut wake = Wake::No;
        if !queue.back().is_some_and(fits) {
            if let Some(back) = queue.back_mut() {
                back.full = true;
            }
            let capacity = self.batch_capacity.max(encoded).min(message_bytes_max);
            queue.push_back(Batch::new(
                Arc::clone(topic),
                Some(partition),
                capacity,
                now(),
            ));
            wake = Wake::Task;
        }
        let last = queue.len() - 1;
        let batch = &mut queue[last];
        let (index, timestamp_ms) = batch.push(id, record, bytes);
        if batch.bytes >= max {
            batch.full = true;
            wake = Wake::Task;
            Self::advance_sticky(&mut self.topics, topic, partition);
        }
        (batch, index, timestamp_ms, wake)
    }

    fn advance_sticky(topics: &mut Map<Arc<str>, TopicState>, topic: &str, partition: u32) {
        if let Some(TopicState::Known(Layout {
            partitions, sticky, ..
        })) = topics.get_mut(topic)
        {
            if *sticky == partition {
                *sticky = (partition + 1) % *partitions;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn record(key: Option<&'static str>, value: &'static str) -> ProducerRecord {
        ProducerRecord {
            key: key.map(|k| Bytes::from_static(k.as_bytes())),
            value: Some(Bytes::from_static(value.as_bytes())),
            timestamp_ms: Some(1),
            ..Default::default()
        }
    }

    fn append(acc: &mut Accumulator, topic: &str, rec: ProducerRecord, now: Instant) -> Wake {
        acc.append(topic, rec, 10, || now).1
    }

    /// The ids of a batch's records (they are consecutive).
    fn ids(batch: &Batch) -> Vec<u64> {
        let first = batch.first_id.unwrap_or_default();
        (first..first + u64::from(batch.count)).collect()
    }

    #[test]
    fn records_wait_for_the_partition_count_then_route_by_key_in_order() {
        let now = Instant::now();
        let mut acc = Accumulator::new(Duration::ZERO, 1000, 0);
        let t = match append(&mut acc, "t", record(Some("a"), "1"), now) {
            Wake::LookUp(t) => t,
            other => panic!("expected a lookup, got {other:?}"),
        };
        assert_eq!(append(&mut acc, "t", record(Some("a"), "2"), now), Wake::No);
        assert!(
            acc.pop_sendable(now, 0, true).is_none(),
            "nothing routable yet"
        );
        assert_eq!(acc.min_id(), Some(0));

        acc.on_partitions(&t, 4, None, now);
        let batch = acc.pop_sendable(now, 0, false).expect("a batch");
        let expected = partition_for_key(b"a", 4);
        assert_eq!(batch.partition, Some(expected));
        assert_eq!(ids(&batch), [0, 1]);
        let Content::Batch(encoded) = &batch.content else {
            panic!("a routed batch is encoded");
        };
        assert_eq!(encoded.count(), 2);
        assert!(acc.is_empty());
    }

    #[test]
    fn a_batch_closes_at_batch_bytes_max_and_lingers_otherwise() {
        let start = Instant::now();
        let linger = Duration::from_millis(5);
        let mut acc = Accumulator::new(linger, 25, 0);
        let t: Arc<str> = "t".into();
        acc.on_partitions(&t, 1, None, start);
        for _ in 0..3 {
            append(&mut acc, "t", record(None, "v"), start);
        }
        // 10 + 10 fit in 25, the third starts a new batch: the first is full and sendable.
        let first = acc.pop_sendable(start, 0, false).expect("full batch");
        assert_eq!(ids(&first), [0, 1]);
        assert!(
            acc.pop_sendable(start, 0, false).is_none(),
            "still lingering"
        );
        assert_eq!(acc.next_deadline(), Some(start + linger));
        let second = acc
            .pop_sendable(start + linger, 0, false)
            .expect("lingered");
        assert_eq!(ids(&second), [2]);
    }

    #[test]
    fn a_batch_closes_before_its_encoding_passes_the_topics_message_bytes_max() {
        let now = Instant::now();
        let mut acc = Accumulator::new(Duration::from_secs(60), 1 << 20, 0);
        let t: Arc<str> = "t".into();
        acc.on_partitions(&t, 1, Some(1000), now);
        let value: &'static str = Box::leak("v".repeat(300).into_boxed_str());
        for _ in 0..4 {
            append(&mut acc, "t", record(None, value), now);
        }
        let first = acc
            .pop_sendable(now, 0, false)
            .expect("full by the topic's limit");
        let Content::Batch(builder) = &first.content else {
            panic!("encoded");
        };
        assert_eq!(ids(&first), [0, 1], "a third record could pass 1000 bytes");
        assert!(builder.len() <= 1000, "{} bytes", builder.len());
    }

    #[test]
    fn a_flush_makes_older_records_sendable_at_once() {
        let now = Instant::now();
        let mut acc = Accumulator::new(Duration::from_secs(60), 1000, 0);
        let t: Arc<str> = "t".into();
        acc.on_partitions(&t, 1, None, now);
        append(&mut acc, "t", record(None, "v"), now);
        assert!(acc.pop_sendable(now, 0, false).is_none());
        assert!(acc.pop_sendable(now, acc.next_id(), false).is_some());
    }

    #[test]
    fn keyless_records_stick_to_one_partition_until_its_batch_leaves() {
        let now = Instant::now();
        let mut acc = Accumulator::new(Duration::ZERO, 1000, 0);
        let t: Arc<str> = "t".into();
        acc.on_partitions(&t, 3, None, now);
        append(&mut acc, "t", record(None, "a"), now);
        append(&mut acc, "t", record(None, "b"), now);
        let first = acc.pop_sendable(now, 0, false).expect("batch");
        assert_eq!((first.partition, first.count), (Some(0), 2));
        append(&mut acc, "t", record(None, "c"), now);
        let second = acc.pop_sendable(now, 0, false).expect("batch");
        assert_eq!(second.partition, Some(1));
    }

    #[test]
    fn explicit_partitions_win_over_keys() {
        let now = Instant::now();
        let mut acc = Accumulator::new(Duration::ZERO, 1000, 0);
        let t: Arc<str> = "t".into();
        acc.on_partitions(&t, 8, None, now);
        let mut rec = record(Some("a"), "v");
        rec.partition = Some(7);
        append(&mut acc, "t", rec, now);
        assert_eq!(
            acc.pop_sendable(now, 0, false).expect("batch").partition,
            Some(7)
        );
    }

    #[test]
    fn a_missing_topic_is_probed_and_looked_up_again() {
        let now = Instant::now();
        let mut acc = Accumulator::new(Duration::ZERO, 1000, 0);
        let Wake::LookUp(t) = append(&mut acc, "new", record(Some("k"), "1"), now) else {
            panic!("expected a lookup");
        };
        acc.on_missing_topic(&t, now);
        let probe = acc.pop_sendable(now, 0, false).expect("probe");
        assert_eq!((probe.partition, ids(&probe)), (None, vec![0]));
        let Content::Records(records) = &probe.content else {
            panic!("a probe sends protobuf records");
        };
        assert_eq!(records[0].partition, None, "left to the server");

        append(&mut acc, "new", record(Some("k"), "2"), now);
        assert!(acc.after_probe("new"), "a record arrived during the probe");
        acc.on_partitions(&t, 2, None, now);
        assert_eq!(ids(&acc.pop_sendable(now, 0, false).expect("batch")), [1]);
    }

    #[test]
    fn a_failed_lookup_hands_back_the_waiting_records() {
        let now = Instant::now();
        let mut acc = Accumulator::new(Duration::ZERO, 1000, 0);
        append(&mut acc, "bad name", record(None, "1"), now);
        append(&mut acc, "bad name", record(None, "2"), now);
        assert_eq!(acc.on_lookup_failed("bad name").len(), 2);
        assert!(acc.is_empty());
        assert!(matches!(
            append(&mut acc, "bad name", record(None, "3"), now),
            Wake::LookUp(_)
        ));
    }
}
