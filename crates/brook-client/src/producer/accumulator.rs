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

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_proto::v1;
use bytes::BytesMut;

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
    /// An empty batch; a partition's is built in `spare` (a buffer of a batch sent before)
    /// when there is one.
    fn new(
        topic: Arc<str>,
        partition: Option<u32>,
        capacity: usize,
        now: Instant,
        spare: Option<BytesMut>,
    ) -> Self {
        let content = match (partition, spare) {
            (Some(_), Some(buf)) => Content::Batch(BatchBuilder::new_in(buf, capacity)),
            (Some(_), None) => Content::Batch(BatchBuilder::new(capacity)),
            (None, _) => Content::Records(Vec::new()),
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

    /// Counts a record just added to the content; returns its index in the batch.
    fn counted(&mut self, id: u64, bytes: usize) -> u32 {
        let index = self.count;
        self.first_id.get_or_insert(id);
        self.count += 1;
        self.bytes += bytes;
        index
    }

    /// Encodes `record`, stamped `timestamp_ms`, into a partition's batch; returns its index.
    fn push_encoded(
        &mut self,
        id: u64,
        record: &ProducerRecord,
        timestamp_ms: i64,
        bytes: usize,
    ) -> u32 {
        if let Content::Batch(builder) = &mut self.content {
            builder.push(record, timestamp_ms);
        }
        self.counted(id, bytes)
    }

    /// Keeps a record that waited for its topic in a probe; it is answered through its own
    /// reply.
    fn push_probe(&mut self, entry: Entry) {
        let timestamp_ms = entry.record.timestamp_ms.unwrap_or_default();
        if let Content::Records(records) = &mut self.content {
            records.push(entry.record.into());
        }
        let index = self.counted(entry.id, entry.bytes);
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

/// A topic the producer has seen: a number of its own (its partitions' batch queues are keyed
/// by it, so placing a record hashes the name once), and what is known of it.
#[derive(Debug)]
struct Topic {
    id: u32,
    state: TopicState,
}

#[derive(Debug)]
enum TopicState {
    /// Records are routed to partitions as they arrive.
    Known(Layout),
    /// The partition count is being looked up (or a probe is out); records wait in order.
    Waiting { entries: Vec<Entry> },
    /// Nothing is known: the next record starts a lookup.
    Unknown,
}

/// What [`Accumulator::place`] asks of the producer's task.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Nothing: the record joined a batch that was already known to the task.
    No,
    /// A batch was started (a new linger deadline) or filled up (sendable): look again.
    Task,
    /// The topic is new: look up its partition count and report it back.
    LookUp(Arc<str>),
}

/// Where [`Accumulator::place`] put a record.
#[derive(Debug)]
pub(crate) enum Placed<'a> {
    /// Record `index` of a partition's batch: answered with the batch, through `ack`.
    Batched {
        ack: &'a AckSender,
        index: u32,
        partition: u32,
    },
    /// Waiting for its topic's partition count: answered on its own.
    Alone(Delivery),
}

/// A partition's batch queue: the topic's id in the high half, the partition in the low.
type QueueKey = u64;

fn queue_key(topic_id: u32, partition: u32) -> QueueKey {
    (u64::from(topic_id) << 32) | u64::from(partition)
}

/// Records waiting to be sent, per partition.
#[derive(Debug)]
pub(crate) struct Accumulator {
    topics: Map<Arc<str>, Topic>,
    queues: Map<QueueKey, VecDeque<Batch>>,
    probes: VecDeque<Batch>,
    linger: Duration,
    batch_bytes_max: usize,
    next_id: u64,
    next_topic_id: u32,
    /// Seed of each new topic's first sticky partition, so producers do not all start on 0.
    sticky_seed: u32,
    /// Bytes a new batch's buffer starts with: the size of the last batch sent (so a busy
    /// producer's buffers do not regrow as records arrive), small until one is.
    batch_capacity: usize,
    /// Buffers of answered batches, for new batches to build in (see [`Accumulator::recycle`]).
    spares: Vec<BytesMut>,
}

/// The accumulator's maps, looked up once per record: hashed with FNV-1a, which costs a few
/// instructions a byte for a short name or a number where std's SipHash costs a fixed setup.
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
/// Buffers of answered batches kept for new ones. A busy producer's batches are answered about
/// as fast as new ones start, so a few are enough; what is past them is freed.
const SPARES_MAX: usize = 4;

/// The smallest batch a flush seals ([`Accumulator::seal`]): 64 KiB, far above a lone record's
/// batch and far below a batch of a thousand 1 KiB records.
const SEAL_BYTES_MIN: usize = 64 << 10;

impl Accumulator {
    pub(super) fn new(linger: Duration, batch_bytes_max: usize, sticky_seed: u32) -> Self {
        Accumulator {
            topics: Map::default(),
            queues: Map::default(),
            probes: VecDeque::new(),
            linger,
            batch_bytes_max,
            next_id: 0,
            next_topic_id: 0,
            sticky_seed,
            batch_capacity: BATCH_CAPACITY_FIRST.min(batch_bytes_max),
            spares: Vec::new(),
        }
    }

    /// Takes back the buffer of a batch that was sent and answered (no one else holds it), so
    /// a new batch builds in its memory: a fresh buffer of a batch's size costs a page fault
    /// every 4 KiB as it fills. Kept only up to [`SPARES_MAX`] buffers, and only one no larger
    /// than twice a full batch (one record alone past the limit can be far larger).
    pub(super) fn recycle(&mut self, buf: BytesMut) {
        let largest = 2 * self.batch_bytes_max.max(BATCH_CAPACITY_FIRST) + brook_batch::HEADER_LEN;
        if self.spares.len() < SPARES_MAX && buf.capacity() <= largest {
            self.spares.push(buf);
        }
    }

    /// A flush covers every record held: the batches of at least [`SEAL_BYTES_MIN`] they are
    /// in take no more records, so what the flush waits for leaves as it is and records sent
    /// after it start new batches (a large batch that kept growing would be re-allocated past
    /// its buffer). Smaller batches stay open: records sent while they wait for the connection
    /// join them, which is what keeps a caller that flushes after every record batching under
    /// load (sealing those too made such a caller fall behind 10 000 records/s on a busy
    /// machine: one request per record).
    pub(super) fn seal(&mut self) {
        for batch in self.queues.values_mut().filter_map(VecDeque::back_mut) {
            if batch.bytes >= SEAL_BYTES_MIN {
                batch.full = true;
            }
        }
    }

    /// The id the next record will get: a flush issued now waits for every id below it.
    pub(super) fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Queues a record for `topic`, stamped `timestamp_ms`, and says where it went. The record
    /// is only read (its bytes are encoded into its batch) unless it has to wait for its
    /// topic's partition count, when it is kept (cloned if borrowed). `now` is read only when
    /// the record starts a batch (most records join one).
    pub(super) fn place(
        &mut self,
        topic: &str,
        record: Cow<'_, ProducerRecord>,
        timestamp_ms: i64,
        bytes: usize,
        now: impl Fn() -> Instant,
    ) -> (Placed<'_>, Wake) {
        let id = self.next_id;
        self.next_id += 1;
        self.place_as(id, topic, record, timestamp_ms, bytes, now)
    }

    /// [`Self::place`] for a record numbered `id`.
    fn place_as(
        &mut self,
        id: u64,
        topic: &str,
        record: Cow<'_, ProducerRecord>,
        timestamp_ms: i64,
        bytes: usize,
        now: impl Fn() -> Instant,
    ) -> (Placed<'_>, Wake) {
        let Some((name, known)) = self.topics.get_key_value(topic) else {
            let name: Arc<str> = topic.into();
            self.add_topic(Arc::clone(&name), TopicState::Unknown);
            return self.wait(name, id, record, timestamp_ms, bytes);
        };
        let (topic_id, layout) = match known.state {
            TopicState::Known(layout) => (known.id, layout),
            _ => {
                let name = Arc::clone(name);
                return self.wait(name, id, record, timestamp_ms, bytes);
            }
        };
        let partition = match (record.partition, &record.key) {
            (Some(partition), _) => partition,
            (None, Some(key)) => partition_for_key(key, layout.partitions),
            (None, None) => layout.sticky,
        };
        let queue = self
            .queues
            .entry(queue_key(topic_id, partition))
            .or_default();
        let max = self.batch_bytes_max;
        let encoded = BatchBuilder::record_len_max(&record);
        let fits = |batch: &Batch| {
            let encoded_fits = match &batch.content {
                Content::Batch(builder) => builder.len() + encoded <= layout.message_bytes_max,
                Content::Records(_) => true,
            };
            !batch.full && (batch.count == 0 || (batch.bytes + bytes <= max && encoded_fits))
        };
        let mut wake = Wake::No;
        if !queue.back().is_some_and(fits) {
            if let Some(back) = queue.back_mut() {
                back.full = true;
            }
            let capacity = self
                .batch_capacity
                .max(encoded)
                .min(layout.message_bytes_max);
            let spare = self.spares.pop();
            let batch = Batch::new(Arc::clone(name), Some(partition), capacity, now(), spare);
            queue.push_back(batch);
            wake = Wake::Task;
        }
        let last = queue.len() - 1;
        let batch = &mut queue[last];
        let index = batch.push_encoded(id, &record, timestamp_ms, bytes);
        if batch.bytes >= max {
            batch.full = true;
            wake = Wake::Task;
            if let Some(Topic {
                state: TopicState::Known(layout),
                ..
            }) = self.topics.get_mut(topic)
            {
                layout.advance_sticky(partition);
            }
        }
        // Looked up again (by number) to hand out a borrow that outlives the sticky update.
        let batch = self
            .queues
            .get(&queue_key(topic_id, partition))
            .and_then(VecDeque::back);
        match batch {
            Some(batch) => (
                Placed::Batched {
                    ack: &batch.ack,
                    index,
                    partition,
                },
                wake,
            ),
            None => unreachable!("the record was just put into this queue"),
        }
    }

    /// Keeps a record of a topic whose partition count is not known yet; the first one asks
    /// for a lookup.
    fn wait(
        &mut self,
        name: Arc<str>,
        id: u64,
        record: Cow<'_, ProducerRecord>,
        timestamp_ms: i64,
        bytes: usize,
    ) -> (Placed<'_>, Wake) {
        let (reply, delivery) = Delivery::alone();
        let mut record = record.into_owned();
        record.timestamp_ms = Some(timestamp_ms);
        let entry = Entry {
            id,
            record,
            bytes,
            reply,
        };
        let Some(topic) = self.topics.get_mut(&name) else {
            unreachable!("the topic is in the map")
        };
        let wake = match &mut topic.state {
            TopicState::Waiting { entries } => {
                entries.push(entry);
                Wake::No
            }
            state => {
                *state = TopicState::Waiting {
                    entries: vec![entry],
                };
                Wake::LookUp(name)
            }
        };
        (Placed::Alone(delivery), wake)
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
        let known = TopicState::Known(Layout {
            partitions,
            sticky: self.sticky_seed % partitions,
            message_bytes_max: message_bytes_max.unwrap_or(usize::MAX),
        });
        let previous = match self.topics.get_mut(&**topic) {
            Some(entry) => std::mem::replace(&mut entry.state, known),
            None => {
                self.add_topic(Arc::clone(topic), known);
                TopicState::Unknown
            }
        };
        if let TopicState::Waiting { entries } = previous {
            for entry in entries {
                let timestamp_ms = entry.record.timestamp_ms.unwrap_or_default();
                let record = Cow::Owned(entry.record);
                let (placed, _) =
                    self.place_as(entry.id, topic, record, timestamp_ms, entry.bytes, || now);
                let Placed::Batched {
                    index, partition, ..
                } = placed
                else {
                    unreachable!("the topic is known")
                };
                let key = self.queue_key_of(topic, partition);
                if let Some(batch) = key.and_then(|key| self.queues.get_mut(&key)?.back_mut()) {
                    batch.forward(index, timestamp_ms, entry.reply);
                }
            }
        }
    }

    /// A topic seen for the first time gets the next number.
    fn add_topic(&mut self, name: Arc<str>, state: TopicState) {
        let id = self.next_topic_id;
        self.next_topic_id = self.next_topic_id.wrapping_add(1);
        self.topics.insert(name, Topic { id, state });
    }

    fn queue_key_of(&self, topic: &str, partition: u32) -> Option<QueueKey> {
        Some(queue_key(self.topics.get(topic)?.id, partition))
    }

    /// The lookup found no such topic: the waiting records go out as one probe, and records
    /// that arrive meanwhile wait for the lookup that follows it.
    pub(super) fn on_missing_topic(&mut self, topic: &Arc<str>, now: Instant) {
        if let Some(Topic {
            state: TopicState::Waiting { entries },
            ..
        }) = self.topics.get_mut(&**topic)
        {
            let mut probe = Batch::new(Arc::clone(topic), None, 0, now, None);
            for entry in std::mem::take(entries) {
                probe.push_probe(entry);
            }
            if probe.count > 0 {
                self.probes.push_back(probe);
            }
        }
    }

    /// The lookup failed: forgets the topic and returns its waiting records, to be failed.
    pub(super) fn on_lookup_failed(&mut self, topic: &str) -> Vec<Entry> {
        let Some(Topic { state, .. }) = self.topics.get_mut(topic) else {
            return Vec::new();
        };
        if !matches!(state, TopicState::Waiting { .. }) {
            return Vec::new();
        }
        match std::mem::replace(state, TopicState::Unknown) {
            TopicState::Waiting { entries } => entries,
            _ => Vec::new(),
        }
    }

    /// A probe finished (either way). Returns whether the topic needs another lookup: yes when
    /// records arrived meanwhile; otherwise the topic is forgotten and the next record starts
    /// one.
    pub(super) fn after_probe(&mut self, topic: &str) -> bool {
        match self.topics.get_mut(topic) {
            Some(Topic { state, .. }) => match state {
                TopicState::Waiting { entries } if entries.is_empty() => {
                    *state = TopicState::Unknown;
                    false
                }
                TopicState::Waiting { .. } => true,
                _ => false,
            },
            None => false,
        }
    }

    /// The server no longer knows a partition of `topic` (deleted, or recreated with another
    /// count): the next record looks the topic up again.
    pub(super) fn forget(&mut self, topic: &str) {
        if let Some(Topic { state, .. }) = self.topics.get_mut(topic) {
            if let TopicState::Known(_) = state {
                *state = TopicState::Unknown;
            }
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
            .filter_map(|(key, queue)| Some((*key, queue.front()?)))
            .filter(|(_, batch)| {
                closing
                    || batch.full
                    || now >= batch.created + self.linger
                    || batch.first_id.is_some_and(|id| id < flush_below)
            })
            .min_by_key(|(_, batch)| batch.created)
            .map(|(key, _)| key)?;
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
        if let (
            Some(Topic {
                state: TopicState::Known(layout),
                ..
            }),
            Some(partition),
        ) = (self.topics.get_mut(&*batch.topic), batch.partition)
        {
            layout.advance_sticky(partition);
        }
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
        let waiting = self.topics.values().filter_map(|topic| match &topic.state {
            TopicState::Waiting { entries } => entries.first().map(|e| e.id),
            _ => None,
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
}

impl Layout {
    /// A batch of `partition` filled up or left: keyless records move on to the next one.
    fn advance_sticky(&mut self, partition: u32) {
        if self.sticky == partition {
            self.sticky = (partition + 1) % self.partitions;
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
        acc.place(topic, Cow::Owned(rec), 1, 10, || now).1
    }

    /// The ids of a batch's records (they are consecutive).
    fn ids(batch: &Batch) -> Vec<u64> {
        let first = batch.first_id.unwrap_or_default();
        (first..first + u64::from(batch.count)).collect()
    }

    /// Finishes a popped batch as the pipeline sends it.
    fn finish(batch: Batch) -> Bytes {
        match batch.content {
            Content::Batch(builder) => builder.finish().expect("built"),
            Content::Records(_) => panic!("a routed batch is encoded"),
        }
    }

    /// The values of a finished batch, read back through the consumer's decoder.
    fn values(sent: &Bytes) -> Vec<Bytes> {
        let mut records = crate::batch::Records::new("t".into(), 0, sent.clone(), 0);
        let mut values = Vec::new();
        while let Some(record) = records.next_record().expect("valid") {
            values.push(record.value.expect("value"));
        }
        values
    }

    fn valued(value: Vec<u8>) -> ProducerRecord {
        ProducerRecord {
            value: Some(Bytes::from(value)),
            timestamp_ms: Some(1),
            ..Default::default()
        }
    }

    #[test]
    fn a_flush_seals_the_large_batches_it_covers() {
        let now = Instant::now();
        let mut acc = Accumulator::new(Duration::from_secs(60), 4 * SEAL_BYTES_MIN, 0);
        let t: Arc<str> = "t".into();
        acc.on_partitions(&t, 1, None, now);
        let large = ProducerRecord {
            value: Some(Bytes::from(vec![b'a'; SEAL_BYTES_MIN])),
            ..record(None, "")
        };
        acc.place("t", Cow::Owned(large), 1, SEAL_BYTES_MIN, || now);
        acc.seal();
        append(&mut acc, "t", record(None, "b"), now);
        let first = acc.pop_sendable(now, 1, false).expect("flushed");
        assert_eq!(
            ids(&first),
            [0],
            "the record after the flush starts a new batch"
        );
        assert!(
            acc.pop_sendable(now, 1, false).is_none(),
            "not covered by the flush"
        );
    }

    #[test]
    fn a_small_batch_stays_open_after_a_flush() {
        let now = Instant::now();
        let mut acc = Accumulator::new(Duration::from_secs(60), 4 * SEAL_BYTES_MIN, 0);
        let t: Arc<str> = "t".into();
        acc.on_partitions(&t, 1, None, now);
        append(&mut acc, "t", record(None, "a"), now);
        acc.seal();
        append(&mut acc, "t", record(None, "b"), now);
        let batch = acc.pop_sendable(now, 1, false).expect("flushed");
        assert_eq!(
            ids(&batch),
            [0, 1],
            "a record sent before the batch left joins it"
        );
    }

    #[test]
    fn a_recycled_buffer_builds_the_next_batch_with_only_its_records() {
        let now = Instant::now();
        let mut acc = Accumulator::new(Duration::ZERO, 1 << 20, 0);
        let t: Arc<str> = "t".into();
        acc.on_partitions(&t, 1, None, now);
        let place = |acc: &mut Accumulator, value: Vec<u8>| {
            acc.place("t", Cow::Owned(valued(value)), 1, 10, || now);
        };
        // A batch of large records, sent and answered: its buffer comes back.
        for i in 0..8u8 {
            place(&mut acc, vec![i; 1000]);
        }
        let sent = finish(acc.pop_sendable(now, 0, false).expect("batch"));
        let first_buffer = sent.as_ptr();
        acc.recycle(sent.try_into_mut().expect("unique once answered"));

        // A smaller batch is built in the same memory, and holds only its own records.
        place(&mut acc, b"small".to_vec());
        let small = finish(acc.pop_sendable(now, 0, false).expect("batch"));
        assert_eq!(small.as_ptr(), first_buffer, "built in the recycled buffer");
        assert_eq!(values(&small), [Bytes::from_static(b"small")]);
        acc.recycle(small.try_into_mut().expect("unique"));

        // A batch larger than the recycled buffer grows it and is whole.
        let large: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i.wrapping_mul(7); 3000]).collect();
        for value in &large {
            place(&mut acc, value.clone());
        }
        let grown = finish(acc.pop_sendable(now, 0, false).expect("batch"));
        assert_eq!(values(&grown), large);
    }

    #[test]
    fn only_a_few_buffers_of_batch_size_are_kept() {
        let mut acc = Accumulator::new(Duration::ZERO, 1 << 20, 0);
        for _ in 0..SPARES_MAX + 2 {
            acc.recycle(BytesMut::with_capacity(1 << 20));
        }
        assert_eq!(acc.spares.len(), SPARES_MAX);
        acc.spares.clear();
        acc.recycle(BytesMut::with_capacity(16 << 20));
        assert!(
            acc.spares.is_empty(),
            "one record alone past the limit is not kept"
        );
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
