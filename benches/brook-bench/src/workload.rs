//! The three workloads, over any [`Protocol`]:
//!
//! - **produce**: each producer sends `--batch` records at a time to the partitions in turn,
//!   with up to `--in-flight` batches awaiting their ack; latency is send-to-ack of each batch,
//!   counted once per record in it.
//! - **consume**: the topic is first filled through the same door (not timed), then consumers
//!   read it back from where the fill started; latency is the time of each receive (one
//!   stream read or poll, however many records it brings).
//! - **e2e**: consumers subscribe first; producers then send at `--rate` records/s in total,
//!   each record stamped with its send time; latency is send-to-receipt of each record, and
//!   send-to-ack of the same records is reported beside it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use tokio::sync::{mpsc, watch};

use super::protocol::{Ack, BenchConsumer, BenchProducer, ProducerShape, Protocol};
use super::report::{histogram, record, Measured};

/// A consumer that receives nothing for this long has stalled: the run fails rather than hang.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of the send-time stamp at the front of every e2e record.
pub(crate) const STAMP_BYTES: usize = 8;

/// What a run does: the bench's flags, checked.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub topic: String,
    pub records: u64,
    pub record_bytes: usize,
    pub batch: usize,
    pub producers: usize,
    pub consumers: usize,
    pub partitions: u32,
    pub in_flight: usize,
    /// e2e: records per second, over all producers.
    pub rate: u64,
}

impl Plan {
    /// How producer `index` (of `--producers`) sends.
    pub(crate) fn shape(&self, index: usize) -> ProducerShape {
        ProducerShape {
            batch: self.batch,
            record_bytes: self.record_bytes,
            in_flight: self.in_flight,
            records: self.share(index, self.producers),
        }
    }

    /// All of the plan's records moved in `elapsed`.
    pub(crate) fn measured(&self, elapsed: Duration, latency: Histogram<u64>) -> Measured {
        Measured {
            records: self.records,
            bytes: self.records * self.record_bytes as u64,
            elapsed,
            latency,
        }
    }

    /// Records of producer (or consumer) `index` of `of`: an even split, the remainder to the
    /// first ones.
    pub(crate) fn share(&self, index: usize, of: usize) -> u64 {
        let of = of as u64;
        self.records / of + u64::from((index as u64) < self.records % of)
    }

    /// Records the producers write to each partition: each sends `batch`-record batches to
    /// partition after partition, from its first (as [`ProducerRun`] does). A consumer expects
    /// these, not the offsets they took: a transactional producer's markers take offsets too.
    pub(crate) fn records_per_partition(&self) -> Vec<u64> {
        let mut written = vec![0; self.partitions as usize];
        for index in 0..self.producers {
            let mut left = self.share(index, self.producers);
            let mut partition = (index as u32) % self.partitions;
            while left > 0 {
                let count = (self.batch as u64).min(left);
                written[partition as usize] += count;
                left -= count;
                partition = (partition + 1) % self.partitions;
            }
        }
        written
    }

    /// Partitions consumer `index` reads: every `consumers`-th, starting at `index`.
    pub(crate) fn partitions_of(&self, index: usize) -> Vec<u32> {
        (0..self.partitions)
            .filter(|p| *p as usize % self.consumers == index)
            .collect()
    }
}

/// A value of `len` bytes that does not compress: the bench measures moving bytes, not
/// squeezing them.
pub(crate) fn payload(len: usize) -> Bytes {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

pub(crate) async fn produce(
    protocol: &dyn Protocol,
    plan: &Plan,
    bar: &ProgressBar,
) -> anyhow::Result<Measured> {
    let mut producers = Vec::with_capacity(plan.producers);
    for index in 0..plan.producers {
        producers.push(protocol.producer(&plan.topic, plan.shape(index)).await?);
    }
    let value = payload(plan.record_bytes);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(plan.producers);
    for (index, producer) in producers.into_iter().enumerate() {
        let plan = plan.clone();
        let run = ProducerRun {
            first_partition: (index as u32) % plan.partitions,
            records: plan.share(index, plan.producers),
            value: value.clone(),
            bar: bar.clone(),
        };
        tasks.push(tokio::spawn(run.run(producer, plan)));
    }
    let mut latency = histogram();
    // The producers are closed after the clock stops: a client's teardown (librdkafka's
    // polling thread ends its 100 ms poll) is not part of producing.
    let mut done = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (run_latency, producer) = task.await.context("producer task")??;
        latency.add(run_latency)?;
        done.push(producer);
    }
    let elapsed = started.elapsed();
    drop(done);
    Ok(plan.measured(elapsed, latency))
}

/// One producer's part of a produce run.
struct ProducerRun {
    first_partition: u32,
    records: u64,
    value: Bytes,
    bar: ProgressBar,
}

impl ProducerRun {
    /// Returns the producer with the latencies, still open: see [`produce`].
    async fn run(
        self,
        producer: Box<dyn BenchProducer>,
        plan: Plan,
    ) -> anyhow::Result<(Histogram<u64>, Box<dyn BenchProducer>)> {
        let mut latency = histogram();
        // Each ack is awaited by its own task, so its time is taken when it lands, not when
        // this loop next looks.
        let mut window = FuturesUnordered::new();
        let (mut sent, mut partition) = (0, self.first_partition);
        while sent < self.records {
            let count = (plan.batch as u64).min(self.records - sent);
            let values = vec![self.value.clone(); count as usize];
            let started = Instant::now();
            let ack = producer.send_batch(partition, values).await?;
            window.push(tokio::spawn(async move {
                ack.await.map(|()| (started.elapsed(), count))
            }));
            sent += count;
            partition = (partition + 1) % plan.partitions;
            while window.len() >= plan.in_flight {
                self.settle(window.next().await, &mut latency)?;
            }
        }
        while let Some(done) = window.next().await {
            self.settle(Some(done), &mut latency)?;
        }
        Ok((latency, producer))
    }

    fn settle(
        &self,
        done: Option<Result<anyhow::Result<(Duration, u64)>, tokio::task::JoinError>>,
        latency: &mut Histogram<u64>,
    ) -> anyhow::Result<()> {
        let Some(done) = done else {
            return Ok(());
        };
        let (took, count) = done.context("ack task")??;
        record(latency, took, count);
        self.bar.inc(count);
        Ok(())
    }
}

pub(crate) async fn consume(
    protocol: &dyn Protocol,
    plan: &Plan,
    fill_bar: &ProgressBar,
    bar: &ProgressBar,
) -> anyhow::Result<Measured> {
    let before = protocol.end_offsets(&plan.topic).await?;
    produce(protocol, plan, fill_bar)
        .await
        .context("filling the topic")?;
    fill_bar.finish_and_clear();
    let written = plan.records_per_partition();

    let mut consumers = Vec::with_capacity(plan.consumers);
    for index in 0..plan.consumers {
        let partitions = plan.partitions_of(index);
        let expected: u64 = partitions.iter().map(|&p| written[p as usize]).sum();
        let starts = partitions
            .iter()
            .map(|&p| (p, before[p as usize]))
            .collect();
        consumers.push((protocol.consumer(&plan.topic, starts).await?, expected));
    }
    let started = Instant::now();
    let tasks: Vec<_> = consumers
        .into_iter()
        .map(|(consumer, expected)| tokio::spawn(read_all(consumer, expected, bar.clone())))
        .collect();
    let (mut latency, mut records, mut bytes) = (histogram(), 0, 0);
    // Closed after the clock stops, as the producers of a produce run are.
    let mut done = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (read_latency, read_records, read_bytes, consumer) =
            task.await.context("consumer task")??;
        latency.add(read_latency)?;
        records += read_records;
        bytes += read_bytes;
        done.push(consumer);
    }
    let elapsed = started.elapsed();
    drop(done);
    Ok(Measured {
        records,
        bytes,
        elapsed,
        latency,
    })
}

/// What [`read_all`] returns: latencies, records, bytes, and the consumer, still open.
type ReadAll = (Histogram<u64>, u64, u64, Box<dyn BenchConsumer>);

/// Reads until `expected` records came; each receive's time is one latency sample.
async fn read_all(
    mut consumer: Box<dyn BenchConsumer>,
    expected: u64,
    bar: ProgressBar,
) -> anyhow::Result<ReadAll> {
    let (mut latency, mut records, mut bytes) = (histogram(), 0u64, 0u64);
    while records < expected {
        let started = Instant::now();
        let mut sink = |value: &[u8]| bytes += value.len() as u64;
        let got = tokio::time::timeout(STALL_TIMEOUT, consumer.receive(&mut sink))
            .await
            .map_err(|_| stalled(records, expected))??;
        record(&mut latency, started.elapsed(), 1);
        records += got as u64;
        bar.inc(got as u64);
    }
    Ok((latency, records, bytes, consumer))
}

fn stalled(got: u64, expected: u64) -> anyhow::Error {
    anyhow::anyhow!(
        "no record for {}s: received {got} of {expected}",
        STALL_TIMEOUT.as_secs()
    )
}

/// Returns send to receipt (the run's figures) and send to ack of the same records, so a
/// receipt's time splits into the produce's share and the delivery's.
pub(crate) async fn e2e(
    protocol: &dyn Protocol,
    plan: &Plan,
    bar: &ProgressBar,
) -> anyhow::Result<(Measured, Measured)> {
    let before = protocol.end_offsets(&plan.topic).await?;
    let mut consumers = Vec::with_capacity(plan.consumers);
    for index in 0..plan.consumers {
        let starts = plan
            .partitions_of(index)
            .into_iter()
            .map(|p| (p, before[p as usize]))
            .collect();
        consumers.push(protocol.consumer(&plan.topic, starts).await?);
    }
    let mut producers = Vec::with_capacity(plan.producers);
    for index in 0..plan.producers {
        producers.push(protocol.producer(&plan.topic, plan.shape(index)).await?);
    }

    let epoch = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let (done_tx, done_rx) = watch::channel(false);
    let readers: Vec<_> = consumers
        .into_iter()
        .map(|consumer| {
            let receipt = Receipt {
                epoch,
                received: Arc::clone(&received),
                expected: plan.records,
                done_tx: done_tx.clone(),
                done_rx: done_rx.clone(),
                bar: bar.clone(),
            };
            tokio::spawn(receipt.run(consumer))
        })
        .collect();
    drop(done_tx);

    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let acks = tokio::spawn(await_acks(ack_rx));
    let handle = tokio::runtime::Handle::current();
    let mut senders = Vec::with_capacity(plan.producers);
    for (index, producer) in producers.into_iter().enumerate() {
        let paced = Paced {
            handle: handle.clone(),
            first_partition: (index as u32) % plan.partitions,
            records: plan.share(index, plan.producers),
            // Each producer sends its share of the rate.
            rate: plan.rate as f64 / plan.producers as f64,
            epoch,
            acks: ack_tx.clone(),
        };
        let plan = plan.clone();
        // A blocking-pool thread, awaited without blocking: on a current-thread runtime
        // (`--client-runtime current-thread`) this task's thread is the one driving the IO.
        senders.push(tokio::task::spawn_blocking(move || {
            paced.run(producer.as_ref(), &plan)
        }));
    }
    drop(ack_tx);
    for sender in senders {
        match sender.await {
            Ok(result) => result?,
            Err(_) => bail!("an e2e producer thread panicked"),
        }
    }
    let acked = acks.await.context("ack task")??;
    let mut latency = histogram();
    for reader in readers {
        latency.add(reader.await.context("consumer task")??)?;
    }
    let elapsed = epoch.elapsed();
    Ok((
        plan.measured(elapsed, latency),
        plan.measured(elapsed, acked),
    ))
}

/// The time since `epoch`, as stamped into records.
fn stamp(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A record value of `len` bytes starting with `stamp`.
pub(crate) fn stamped(template: &Bytes, stamp: u64) -> Bytes {
    let mut value = BytesMut::from(template.as_ref());
    value[..STAMP_BYTES].copy_from_slice(&stamp.to_le_bytes());
    value.freeze()
}

/// The send-to-receipt latency of a stamped value.
pub(crate) fn since_stamp(epoch: Instant, value: &[u8]) -> Option<Duration> {
    let sent = u64::from_le_bytes(value.get(..STAMP_BYTES)?.try_into().ok()?);
    Some(Duration::from_nanos(stamp(epoch).saturating_sub(sent)))
}

/// One e2e producer: a (blocking-pool) thread of its own, so sends leave on time (a tokio
/// timer only resolves to the millisecond, which alone would add up to 1 ms of latency to each
/// record).
struct Paced {
    handle: tokio::runtime::Handle,
    first_partition: u32,
    records: u64,
    rate: f64,
    epoch: Instant,
    acks: mpsc::UnboundedSender<SentAck>,
}

/// A sent batch's ack, with when it was sent and how many records it holds.
type SentAck = (Instant, u64, Ack);

impl Paced {
    fn run(self, producer: &dyn BenchProducer, plan: &Plan) -> anyhow::Result<()> {
        let template = payload(plan.record_bytes);
        let batch_interval = Duration::from_secs_f64(plan.batch as f64 / self.rate);
        let start = Instant::now();
        let (mut sent, mut partition, mut index) = (0, self.first_partition, 0u32);
        while sent < self.records {
            if let Some(wait) =
                (start + batch_interval * index).checked_duration_since(Instant::now())
            {
                std::thread::sleep(wait);
            }
            let count = (plan.batch as u64).min(self.records - sent);
            let sent_at = Instant::now();
            let now = stamp(self.epoch);
            let values = (0..count).map(|_| stamped(&template, now)).collect();
            // Started inside `block_on`: a door may need the runtime when a send starts.
            let ack = self
                .handle
                .block_on(async { producer.send_batch(partition, values).await })?;
            if self.acks.send((sent_at, count, ack)).is_err() {
                // The ack task stopped on a failed produce; it reports the failure.
                return Ok(());
            }
            sent += count;
            partition = (partition + 1) % plan.partitions;
            index += 1;
        }
        Ok(())
    }
}

/// Awaits every ack the e2e producers hand over, timing each from its send (per record);
/// the first failure fails the run.
async fn await_acks(mut acks: mpsc::UnboundedReceiver<SentAck>) -> anyhow::Result<Histogram<u64>> {
    let mut latency = histogram();
    let mut pending = FuturesUnordered::new();
    let timed = |(sent_at, count, ack): SentAck| async move {
        ack.await.map(|()| (sent_at.elapsed(), count))
    };
    loop {
        tokio::select! {
            ack = acks.recv() => match ack {
                Some(ack) => pending.push(timed(ack)),
                None => break,
            },
            Some(result) = pending.next(), if !pending.is_empty() => {
                let (took, count) = result?;
                record(&mut latency, took, count);
            }
        }
    }
    while let Some(result) = pending.next().await {
        let (took, count) = result?;
        record(&mut latency, took, count);
    }
    Ok(latency)
}

/// One e2e consumer: reads until every consumer together has `expected` records.
struct Receipt {
    epoch: Instant,
    received: Arc<AtomicU64>,
    expected: u64,
    done_tx: watch::Sender<bool>,
    done_rx: watch::Receiver<bool>,
    bar: ProgressBar,
}

impl Receipt {
    async fn run(mut self, mut consumer: Box<dyn BenchConsumer>) -> anyhow::Result<Histogram<u64>> {
        let mut latency = histogram();
        let epoch = self.epoch;
        loop {
            let mut sink = |value: &[u8]| {
                if let Some(took) = since_stamp(epoch, value) {
                    record(&mut latency, took, 1);
                }
            };
            let got = tokio::select! {
                got = tokio::time::timeout(STALL_TIMEOUT, consumer.receive(&mut sink)) => Some(got),
                // Another consumer took the last record.
                _ = self.done_rx.wait_for(|done| *done) => None,
            };
            let Some(got) = got else {
                return Ok(latency);
            };
            let got =
                got.map_err(|_| stalled(self.received.load(Ordering::Relaxed), self.expected))??;
            self.bar.inc(got as u64);
            let total = self.received.fetch_add(got as u64, Ordering::Relaxed) + got as u64;
            if total >= self.expected {
                self.done_tx.send_replace(true);
                return Ok(latency);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::TopicSpec;
    use futures::future::BoxFuture;
    use futures::FutureExt;
    use std::sync::Mutex;

    /// How long a [`SlowClose`] producer or consumer takes to close.
    const CLOSE: Duration = Duration::from_millis(200);

    /// A door whose producers and consumers take [`CLOSE`] to close (as librdkafka's do, up
    /// to its 100 ms poll), noting when each close began.
    #[derive(Default)]
    struct SlowClose {
        producers: Arc<Mutex<Vec<Instant>>>,
        consumers: Arc<Mutex<Vec<Instant>>>,
    }

    struct Closing(Arc<Mutex<Vec<Instant>>>);

    impl Drop for Closing {
        fn drop(&mut self) {
            self.0.lock().expect("lock").push(Instant::now());
            std::thread::sleep(CLOSE);
        }
    }

    impl BenchProducer for Closing {
        fn send_batch(&self, _: u32, _: Vec<Bytes>) -> BoxFuture<'_, anyhow::Result<Ack>> {
            async { Ok(async { Ok(()) }.boxed()) }.boxed()
        }
    }

    impl BenchConsumer for Closing {
        fn receive<'a>(
            &'a mut self,
            sink: &'a mut (dyn FnMut(&[u8]) + Send),
        ) -> BoxFuture<'a, anyhow::Result<usize>> {
            sink(b"v");
            async { Ok(1) }.boxed()
        }
    }

    impl Protocol for SlowClose {
        fn prepare_topic<'a>(&'a self, _: &'a TopicSpec) -> BoxFuture<'a, anyhow::Result<bool>> {
            async { Ok(true) }.boxed()
        }
        fn end_offsets<'a>(&'a self, _: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u64>>> {
            async { Ok(vec![0]) }.boxed()
        }
        fn delete_topic<'a>(&'a self, _: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
            async { Ok(()) }.boxed()
        }
        fn producer<'a>(
            &'a self,
            _: &'a str,
            _: ProducerShape,
        ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchProducer>>> {
            let closing = Closing(Arc::clone(&self.producers));
            async move { Ok(Box::new(closing) as Box<dyn BenchProducer>) }.boxed()
        }
        fn consumer<'a>(
            &'a self,
            _: &'a str,
            _: Vec<(u32, u64)>,
        ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchConsumer>>> {
            let closing = Closing(Arc::clone(&self.consumers));
            async move { Ok(Box::new(closing) as Box<dyn BenchConsumer>) }.boxed()
        }
    }

    /// A run's clock stops at its last ack (or record), before its clients close: a client's
    /// teardown is not producing or consuming. Had a close been inside the clock, the run
    /// would have taken at least [`CLOSE`] longer than its first close began after `before`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clients_close_after_the_clock_stops() {
        let door = SlowClose::default();
        let plan = Plan {
            topic: "t".into(),
            records: 10,
            record_bytes: 1,
            batch: 5,
            producers: 2,
            consumers: 1,
            partitions: 1,
            in_flight: 1,
            rate: 1,
        };
        let bar = ProgressBar::hidden();
        let first = |closes: &Mutex<Vec<Instant>>| {
            closes
                .lock()
                .expect("lock")
                .iter()
                .min()
                .copied()
                .expect("closed")
        };

        let before = Instant::now();
        let produced = produce(&door, &plan, &bar).await.expect("produce");
        assert_eq!(door.producers.lock().expect("lock").len(), 2);
        assert!(produced.elapsed < first(&door.producers) - before);

        let before = Instant::now();
        let consumed = consume(&door, &plan, &bar, &bar).await.expect("consume");
        assert_eq!(consumed.records, 10);
        assert!(consumed.elapsed < first(&door.consumers) - before);
    }

    #[test]
    fn shares_and_partitions_split_evenly() {
        let plan = Plan {
            topic: "t".into(),
            records: 10,
            record_bytes: 100,
            batch: 3,
            producers: 3,
            consumers: 2,
            partitions: 5,
            in_flight: 1,
            rate: 1,
        };
        let shares: Vec<u64> = (0..3).map(|i| plan.share(i, 3)).collect();
        assert_eq!(shares, [4, 3, 3]);
        assert_eq!(plan.partitions_of(0), [0, 2, 4]);
        assert_eq!(plan.partitions_of(1), [1, 3]);
        // Producer 0 writes 3 to partition 0 and 1 to partition 1; 1 and 2 write 3 each.
        assert_eq!(plan.records_per_partition(), [3, 4, 3, 0, 0]);
    }

    #[test]
    fn a_stamp_reads_back_as_the_time_since_it_was_written() {
        let epoch = Instant::now();
        let value = stamped(&payload(16), stamp(epoch));
        assert_eq!(value.len(), 16);
        std::thread::sleep(Duration::from_millis(2));
        let took = since_stamp(epoch, &value).expect("stamped value");
        assert!(took >= Duration::from_millis(2) && took < Duration::from_secs(5));
        assert!(since_stamp(epoch, b"short").is_none());
    }

    #[test]
    fn payloads_have_the_length_asked_and_do_not_repeat_a_byte() {
        let value = payload(1000);
        assert_eq!(value.len(), 1000);
        assert!(value.iter().any(|b| *b != value[0]));
    }
}
