//! The gRPC door with whole record batches: what a client gets that builds Kafka
//! RecordBatch v2 bytes itself (`RawBatch` on a `ProduceStream`) and reads them back as stored
//! (`Subscribe` with `RECORD_FORMAT_RAW_BATCHES`), over the generated stubs.
//!
//! Beside `--protocol grpc` it separates what the door costs (HTTP/2, one protobuf message per
//! request, the log) from what per-record protobuf and brook-client's per-record bookkeeping
//! cost: here a batch of records is one `bytes` field each way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use brook::client::proto as v1;
use brook::client::Client;
use brook::log::batch::{records, Batches};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, SelectAll};
use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::{receive_ready, record_batch, Ack, BenchConsumer, BenchProducer};

/// The outcome of one request, by its sequence number.
type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<(), String>>>>>;

/// A producer on its own connection and `ProduceStream`, one raw batch per request.
pub(super) struct RawProducer {
    topic: String,
    requests: mpsc::Sender<v1::ProduceStreamRequest>,
    // A std mutex: held for one map insert or remove, never across an await.
    waiting: Waiting,
    next_sequence: AtomicU64,
    /// `--in-flight 1`: each request is answered before the next is sent, which the request
    /// says (`awaited`), as brook-client's producer does.
    awaited: bool,
}

impl RawProducer {
    pub(super) async fn open(
        client: &Client,
        topic: &str,
        in_flight: usize,
    ) -> anyhow::Result<Self> {
        let (requests, outgoing) = mpsc::channel(in_flight.max(1));
        let mut answers = client
            .grpc()
            .produce_stream(ReceiverStream::new(outgoing))
            .await
            .context("open a produce stream")?
            .into_inner();
        let waiting: Waiting = Arc::default();
        let resolver = Arc::clone(&waiting);
        tokio::spawn(async move {
            let ended = loop {
                match answers.message().await {
                    Ok(Some(answer)) => {
                        let outcome = match answer.result {
                            Some(v1::produce_stream_response::Result::Ok(_)) => Ok(()),
                            Some(v1::produce_stream_response::Result::Error(e)) => {
                                Err(format!("code {}: {}", e.code, e.message))
                            }
                            None => Err("an answer with no result".to_owned()),
                        };
                        let waiter = lock(&resolver).remove(&answer.sequence);
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(outcome);
                        }
                    }
                    Ok(None) => break "the server ended the produce stream".to_owned(),
                    Err(status) => break status.to_string(),
                }
            };
            for (_, waiter) in lock(&resolver).drain() {
                let _ = waiter.send(Err(ended.clone()));
            }
        });
        Ok(RawProducer {
            topic: topic.to_owned(),
            requests,
            waiting,
            next_sequence: AtomicU64::new(0),
            awaited: in_flight == 1,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BenchProducer for RawProducer {
    fn send_batch(&self, partition: u32, values: Vec<Bytes>) -> BoxFuture<'_, anyhow::Result<Ack>> {
        async move {
            let data = record_batch(&values)?;
            let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
            let (answered, answer) = oneshot::channel();
            lock(&self.waiting).insert(sequence, answered);
            let request = v1::ProduceStreamRequest {
                sequence,
                produce: Some(v1::ProduceRequest {
                    topic: self.topic.clone(),
                    records: Vec::new(),
                    raw_batch: Some(v1::RawBatch { partition, data }),
                }),
                awaited: self.awaited,
            };
            self.requests
                .send(request)
                .await
                .context("the produce stream closed")?;
            let ack: Ack = async move {
                match answer.await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(reason)) => anyhow::bail!("produce: {reason}"),
                    Err(_) => anyhow::bail!("produce: the answer task ended"),
                }
            }
            .boxed();
            Ok(ack)
        }
        .boxed()
    }
}

/// Record values of one partition's raw-batch `Subscribe` stream.
type Values = BoxStream<'static, Result<Bytes, Status>>;

/// A consumer reading each partition as stored batches, decoded here.
pub(super) struct RawConsumer {
    values: SelectAll<Values>,
}

impl RawConsumer {
    pub(super) async fn open(
        client: &Client,
        topic: &str,
        starts: Vec<(u32, u64)>,
    ) -> anyhow::Result<Self> {
        let mut values = SelectAll::new();
        for (partition, start) in starts {
            let request = v1::SubscribeRequest {
                target: Some(v1::subscribe_request::Target::Partition(
                    v1::PartitionTarget {
                        topic: topic.to_owned(),
                        partition,
                        start: Some(v1::partition_target::Start::Offset(start)),
                    },
                )),
                format: v1::RecordFormat::RawBatches.into(),
                max_bytes: 0,
                isolation: v1::Isolation::Unspecified.into(),
            };
            let events = client
                .grpc()
                .subscribe(request)
                .await
                .context("subscribe")?
                .into_inner();
            let partition_values = events
                .flat_map(move |event| stream::iter(decode(event, start)))
                .boxed();
            values.push(partition_values);
        }
        Ok(RawConsumer { values })
    }
}

/// The values of an event's batches, from offset `start` on (its first batch may begin
/// before).
fn decode(event: Result<v1::SubscribeResponse, Status>, start: u64) -> Vec<Result<Bytes, Status>> {
    let raw = match event.map(|e| e.event) {
        Ok(Some(v1::subscribe_response::Event::Records(records))) => records.raw_batches,
        Ok(_) => return Vec::new(),
        Err(status) => return vec![Err(status)],
    };
    let mut values = Vec::new();
    for batch in Batches::new(&raw) {
        let decoded = batch
            .map_err(|e| e.to_string())
            .and_then(|b| records(raw.slice_ref(b.bytes)).map_err(|e| e.to_string()));
        let batch_records = match decoded {
            Ok(batch_records) => batch_records,
            Err(reason) => {
                values.push(Err(Status::data_loss(reason)));
                return values;
            }
        };
        for record in batch_records {
            match record {
                Ok(record) if record.offset < start => {}
                Ok(record) => values.push(Ok(record.value.unwrap_or_default())),
                Err(e) => {
                    values.push(Err(Status::data_loss(e.to_string())));
                    return values;
                }
            }
        }
    }
    values
}

impl BenchConsumer for RawConsumer {
    fn receive<'a>(
        &'a mut self,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> BoxFuture<'a, anyhow::Result<usize>> {
        receive_ready(&mut self.values, |value: &Bytes| value.as_ref(), sink).boxed()
    }
}
