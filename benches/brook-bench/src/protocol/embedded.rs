//! The embedded broker's API, called in the bench's own process: no socket, no protobuf, no
//! client. Beside a door's figures it shows what the door itself costs.

use anyhow::{bail, Context};
use brook::broker::{
    Broker, BrokerError, ConsumerRecord, NewTopic, PartitionSubscribe, ProduceRecord, StartAt,
    TopicConfig,
};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{BoxStream, SelectAll};
use futures::FutureExt;

use super::{receive_ready, Ack, BenchConsumer, BenchProducer, ProducerShape, Protocol, TopicSpec};

pub(super) fn connect(broker: Broker) -> Box<dyn Protocol> {
    Box::new(Embedded { broker })
}

struct Embedded {
    broker: Broker,
}

impl Protocol for Embedded {
    fn prepare_topic<'a>(&'a self, spec: &'a TopicSpec) -> BoxFuture<'a, anyhow::Result<bool>> {
        async move {
            match self.broker.describe_topic(&spec.name) {
                Ok(existing) if existing.partitions.len() == spec.partitions as usize => Ok(false),
                Ok(existing) => bail!(
                    "topic {} exists with {} partitions, not {}: choose another --topic",
                    spec.name,
                    existing.partitions.len(),
                    spec.partitions
                ),
                Err(BrokerError::UnknownTopic { .. }) => {
                    let mut config = TopicConfig::default();
                    config.durability = spec.durability;
                    let topic = NewTopic {
                        config,
                        ..NewTopic::new(spec.name.clone(), spec.partitions)
                    };
                    self.broker.create_topic(topic).await?;
                    Ok(true)
                }
                Err(e) => Err(e.into()),
            }
        }
        .boxed()
    }

    fn end_offsets<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u64>>> {
        async move {
            let description = self.broker.describe_topic(topic)?;
            Ok(description
                .partitions
                .iter()
                .map(|p| p.high_watermark)
                .collect())
        }
        .boxed()
    }

    fn delete_topic<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, anyhow::Result<()>> {
        async move { Ok(self.broker.delete_topic(topic).await?) }.boxed()
    }

    fn producer<'a>(
        &'a self,
        topic: &'a str,
        _shape: ProducerShape,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchProducer>>> {
        let producer = EmbeddedProducer {
            broker: self.broker.clone(),
            topic: topic.to_owned(),
        };
        futures::future::ready(Ok(Box::new(producer) as Box<dyn BenchProducer>)).boxed()
    }

    fn consumer<'a>(
        &'a self,
        topic: &'a str,
        starts: Vec<(u32, u64)>,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn BenchConsumer>>> {
        async move {
            let mut records = SelectAll::new();
            for (partition, offset) in starts {
                let request = PartitionSubscribe::new(topic, partition, StartAt::Offset(offset));
                records.push(self.broker.subscribe(request).await?.records());
            }
            Ok(Box::new(EmbeddedConsumer { records }) as Box<dyn BenchConsumer>)
        }
        .boxed()
    }
}

struct EmbeddedProducer {
    broker: Broker,
    topic: String,
}

impl BenchProducer for EmbeddedProducer {
    fn send_batch(&self, partition: u32, values: Vec<Bytes>) -> BoxFuture<'_, anyhow::Result<Ack>> {
        let records = values
            .into_iter()
            .map(|value| ProduceRecord {
                partition: Some(partition),
                ..ProduceRecord::value(value)
            })
            .collect();
        // Queued by the call itself, so batches keep their order while acks are awaited later.
        let produced = self.broker.produce(&self.topic, records);
        let ack: Ack = async move {
            produced.await.context("produce")?;
            Ok(())
        }
        .boxed();
        futures::future::ready(Ok(ack)).boxed()
    }
}

struct EmbeddedConsumer {
    records: SelectAll<BoxStream<'static, brook::broker::Result<ConsumerRecord>>>,
}

impl BenchConsumer for EmbeddedConsumer {
    fn receive<'a>(
        &'a mut self,
        sink: &'a mut (dyn FnMut(&[u8]) + Send),
    ) -> BoxFuture<'a, anyhow::Result<usize>> {
        receive_ready(&mut self.records, record_value, sink).boxed()
    }
}

fn record_value(record: &ConsumerRecord) -> &[u8] {
    record.value.as_deref().unwrap_or_default()
}
