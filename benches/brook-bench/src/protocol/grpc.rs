//! The gRPC door through brook-client: what an application using the Rust client gets.
//!
//! Producing goes through [`brook::client::Producer`] (records batched per partition, several
//! requests in flight on one `ProduceStream`): each batch of the workload is one
//! `Producer::send_batch` call, or with `BROOK_BENCH_GRPC_SEND=record` one `Producer::send` per
//! record; the bench decides batch boundaries by flushing after each batch, with a linger long
//! enough never to cut one. With `--batch 1` each record is one `Producer::send` with
//! `linger_ms` 0 and no flush, as an application sending one record at a time sets it up (the
//! record leaves at once; with every request slot taken, records wait and share a request, as
//! they do under flushes). Consuming goes through
//! [`brook::client::Consumer::assign`] (one `Subscribe` stream per partition).

use std::time::Duration;

use anyhow::{bail, Context};
use brook::broker::Durability;
use brook::client::proto::{Durability as WireDurability, TopicConfig as WireTopicConfig};
use brook::client::{
    Client, ConsumerConfig, NewTopic, Producer, ProducerConfig, ProducerRecord, RecordStream,
    StartAt, TopicPartition,
};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use super::grpc_raw::{RawConsumer, RawProducer};
use super::{receive_ready, Ack, BenchConsumer, BenchProducer, ProducerShape, Protocol, TopicSpec};

/// Allowance per record on top of its value, at least what brook-client counts (16).
const RECORD_OVERHEAD_BYTES: usize = 64;
/// brook-client's ceiling on one request's batch.
const BATCH_BYTES_MAX: usize = 8 << 20;
/// Longest linger brook-client accepts: batches leave on our flush, never on the timer.
const LINGER_MS: u64 = 60_000;

/// Where the gRPC protocol dials: the URL and, for an `https://` URL, the TLS settings that
/// trust `--tls-ca` (the server's certificate or the CA that signed it).
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    url: String,
    tls: Option<ClientTlsConfig>,
}

impl Dial {
    /// `ca_pem`: the PEM `--tls-ca` names; needed by, and only by, an `https://` URL.
    pub(crate) fn new(url: &str, ca_pem: Option<&[u8]>) -> anyhow::Result<Dial> {
        let tls = match (url.starts_with("https://"), ca_pem) {
            (true, Some(pem)) => {
                Some(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
            }
            (true, None) => bail!("{url} is TLS: name the CA to trust with --tls-ca FILE"),
            (false, Some(_)) => bail!("--tls-ca needs an https:// --server, not {url}"),
            (false, None) => None,
        };
        Ok(Dial {
            url: url.to_owned(),
            tls,
        })
    }

    /// A new connection (its own HTTP/2 connection, and TLS session when `https://`).
    pub(crate) async fn connect(&self) -> anyhow::Result<Client> {
        let Some(tls) = &self.tls else {
            return Ok(Client::connect(self.url.as_str()).await?);
        };
        let endpoint = Endpoint::from_shared(self.url.clone())
            .with_context(|| format!("invalid URL {}", self.url))?
            .tls_config(tls.clone())
            .with_context(|| format!("TLS settings for {}", self.url))?;
        Ok(Client::connect_endpoint(endpoint).await?)
    }
}

/// `raw`: produce and consume whole batches over the generated stubs ([`super::grpc_raw`])
/// instead of records through brook-client's Producer and Consumer.
pub(super) async fn connect(dial: Dial, raw: bool) -> anyhow::Result<Box<dyn Protocol>> {
    let client = dial.connect().await?;
    Ok(Box::new(Grpc { dial, client, raw }))
}

struct Grpc {
    dial: Dial,
    /// For admin calls; producers and consumers open their own connections.
    client: Client,
    raw: bool,
}

impl Protocol for Grpc {
    fn prepare_topic<'a>(&'a self, spec: &'a TopicSpec) -> BoxFuture<'a, anyhow::Result<bool>> {
        async move {
            let admin = self.client.admin();
            match admin.describe_topic(&spec.name).await {
                Ok(existing) => {
                    let partitions = existing.partitions.len();
                    if partitions != spec.partitions as usize {
                        bail!(
                            "topic {} exists with {partitions} partitions, not {}: choose \
                             another --topic",
                            spec.name,
                            spec.partitions
                        );
                    }
                    Ok(false)
                }
                Err(e) if e.code() == brook::client::Code::NotFound => {
                    let mut topic = NewTopic::new(spec.name.clone(), spec.partitions);
                    topic.config = wire_config(spec.durability);
                    admin.create_topic(topic).await?;
                    Ok(true)
                }
                Err(e) => Err(e.into()),
            }
        }
        .boxed()
    }

    fn end_offsets<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u64>>> {
        async move {
            let description = self.client.admin().describe_topic(topic).await?;
            let mut partitions = description.partitions;
            partitions.sort_by_key(|p| p.partition);
            Ok(partitions.iter().map(|p| p.high_watermark).collect())
        }
        .boxed()
    }

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        async move { Ok(self.client.admin().delete_topic(topic).await?) }.boxed()
    }

    fn producer<'a>(
        &'a self,
        topic: &'a str,
        shape: ProducerShape,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchProducer>>> {
        async move {
            let client = self.dial.connect().await?;
            if self.raw {
                let producer = RawProducer::open(&client, topic, shape.in_flight).await?;
                return Ok(Box::new(producer) as Box<dyn BenchProducer>);
            }
            // Room for two batches, so a batch is cut by our flush, not by its size.
            let batch_bytes = 2 * shape.batch * (shape.record_bytes + RECORD_OVERHEAD_BYTES);
            let batch_bytes_max = batch_bytes.clamp(1, BATCH_BYTES_MAX);
            let lone = shape.batch == 1;
            let mut config = ProducerConfig::default();
            config.linger_ms = if lone { 0 } else { LINGER_MS };
            config.batch_bytes_max = batch_bytes_max;
            config.requests_in_flight_max = shape.in_flight.clamp(1, 256);
            config.buffer_bytes_max = (batch_bytes_max * shape.in_flight.max(2)).max(64 << 20);
            let producer = client.producer(config)?;
            Ok(Box::new(GrpcProducer {
                producer,
                topic: topic.to_owned(),
                per_record: per_record_send()?,
                lone,
            }) as Box<dyn BenchProducer>)
        }
        .boxed()
    }

    fn consumer<'a>(
        &'a self,
        topic: &'a str,
        starts: Vec<(u32, u64)>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchConsumer>>> {
        async move {
            let client = self.dial.connect().await?;
            if self.raw {
                let consumer = RawConsumer::open(&client, topic, starts).await?;
                return Ok(Box::new(consumer) as Box<dyn BenchConsumer>);
            }
            let mut config = ConsumerConfig::default();
            config.auto_commit_interval_ms = None;
            let partitions = starts
                .into_iter()
                .map(|(p, offset)| (TopicPartition::new(topic, p), StartAt::Offset(offset)))
                .collect();
            let records = client.consumer(config)?.assign(partitions).await?;
            Ok(Box::new(GrpcConsumer { records }) as Box<dyn BenchConsumer>)
        }
        .boxed()
    }
}

/// A topic config that only sets durability (the rest follows the server's defaults).
fn wire_config(durability: Option<Durability>) -> WireTopicConfig {
    let mut config = WireTopicConfig::default();
    match durability {
        None => {}
        Some(Durability::Sync) => config.set_durability(WireDurability::Sync),
        Some(Durability::None) => config.set_durability(WireDurability::None),
        Some(Durability::Interval(interval)) => {
            config.set_durability(WireDurability::Interval);
            config.durability_interval_ms = Some(millis(interval));
        }
    }
    config
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

struct GrpcProducer {
    producer: Producer,
    topic: String,
    /// Each record through `Producer::send` instead of each batch through `send_batch`.
    per_record: bool,
    /// Batches of one record (`--batch 1`): each is one `send` with linger 0, never flushed.
    lone: bool,
}

/// Set to `record` to send each record through `Producer::send` (one call and one `Delivery`
/// per record) instead of each batch through `Producer::send_batch`.
const SEND_ENV: &str = "BROOK_BENCH_GRPC_SEND";

fn per_record_send() -> anyhow::Result<bool> {
    match std::env::var(SEND_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(false),
        Ok(value) if value == "batch" => Ok(false),
        Ok(value) if value == "record" => Ok(true),
        Ok(value) => bail!("{SEND_ENV}={value}: expected record or batch"),
        Err(e) => bail!("{SEND_ENV}: {e}"),
    }
}

impl GrpcProducer {
    /// Makes everything sent so far sendable now (the bench, not the linger, cuts batches).
    /// Polled once here so the flush is queued behind the batch's records before the next
    /// batch's; the returned future keeps polling it in case the queue was full.
    async fn flush(&self) -> BoxFuture<'static, anyhow::Result<()>> {
        let producer = self.producer.clone();
        let mut flush = async move { producer.flush().await }.boxed();
        let flushed = futures::poll!(&mut flush).is_ready();
        async move {
            if !flushed {
                flush.await?;
            }
            Ok(())
        }
        .boxed()
    }
}

impl BenchProducer for GrpcProducer {
    fn send_batch(&self, partition: u32, values: Vec<Bytes>) -> BoxFuture<'_, anyhow::Result<Ack>> {
        async move {
            let mut records = values
                .into_iter()
                .map(|value| ProducerRecord::value(value).with_partition(partition));
            if self.lone && records.len() == 1 {
                let record = records.next().context("a batch of one record")?;
                let delivery = self.producer.send(&self.topic, record).await?;
                return Ok(async move {
                    delivery.await.context("produce")?;
                    Ok(())
                }
                .boxed());
            }
            if self.per_record {
                let mut deliveries = Vec::with_capacity(records.len());
                for record in records {
                    deliveries.push(self.producer.send(&self.topic, record).await?);
                }
                let flush = self.flush().await;
                let ack = async move {
                    flush.await?;
                    for delivery in deliveries {
                        delivery.await.context("produce")?;
                    }
                    Ok(())
                };
                return Ok(ack.boxed());
            }
            let records: Vec<ProducerRecord> = records.collect();
            let delivery = self.producer.send_batch(&self.topic, &records).await?;
            let flush = self.flush().await;
            let ack = async move {
                flush.await?;
                delivery.await.context("produce")?;
                Ok(())
            };
            Ok(ack.boxed())
        }
        .boxed()
    }
}

struct GrpcConsumer {
    records: RecordStream,
}

impl BenchConsumer for GrpcConsumer {
    fn receive<'a>(
        &'a mut self,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> BoxFuture<'a, anyhow::Result<usize>> {
        receive_ready(&mut self.records, record_value, sink).boxed()
    }
}

fn record_value(record: &brook::client::ConsumerRecord) -> &[u8] {
    record.value.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::Dial;

    // The TLS connection itself is checked end to end by `benches/tls-bench.sh` (a real
    // `brook serve --tls-cert`); these are the refusals that need no server.
    #[test]
    fn tls_needs_an_https_url_and_a_ca() {
        let pem = b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n";
        let no_ca = Dial::new("https://127.0.0.1:50051", None).unwrap_err();
        assert!(no_ca.to_string().contains("--tls-ca FILE"), "{no_ca}");
        let plain = Dial::new("http://127.0.0.1:50051", Some(pem)).unwrap_err();
        assert!(plain.to_string().contains("needs an https://"), "{plain}");
        assert!(Dial::new("https://127.0.0.1:50051", Some(pem))
            .unwrap()
            .tls
            .is_some());
        assert!(Dial::new("http://127.0.0.1:50051", None)
            .unwrap()
            .tls
            .is_none());
    }
}
