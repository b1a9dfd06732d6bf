//! The orders application: written once against [`Brook`], run embedded, remote or on a Kafka
//! cluster by `main.rs`, and run all three ways by `tests/scale_out_api.rs`, which checks they
//! give the same lines.
//!
//! It produces orders keyed by customer, totals them with request-reply fetches, consumes them
//! as the `billing` consumer group and commits, then watches a late order arrive live on a
//! subscription that starts at the group's committed offset. Nothing it prints depends on the
//! clock, so two runs on fresh brokers print the same lines.

use std::collections::BTreeMap;
use std::time::Duration;

use brook::api::{Brook, Subscribe};
use brook::{OffsetReset, ProduceRecord, StartAt, TopicPartition};
use futures::StreamExt;

pub(crate) type AppResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub(crate) const TOPIC: &str = "orders";
pub(crate) const GROUP: &str = "billing";

/// (customer, item, quantity, unit price in cents)
const ORDERS: [(&str, &str, u64, u64); 8] = [
    ("alice", "apples", 3, 120),
    ("bob", "pears", 1, 80),
    ("carol", "plums", 6, 45),
    ("alice", "figs", 2, 300),
    ("dave", "limes", 10, 25),
    ("bob", "grapes", 2, 250),
    ("carol", "dates", 1, 900),
    ("erin", "melon", 1, 400),
];

/// Runs the application on `brook`; returns the lines it reports.
pub(crate) async fn run(brook: &impl Brook) -> AppResult<Vec<String>> {
    let mut out = Vec::new();
    brook.create_topic(TOPIC, 3).await?;

    // Keyed by customer: one customer's orders share a partition, in order.
    let records = ORDERS
        .iter()
        .map(|(customer, item, qty, cents)| {
            ProduceRecord::keyed(customer.to_string(), format!("{item} {qty} {cents}"))
        })
        .collect();
    let positions = brook.produce(TOPIC, records).await?;
    for ((customer, ..), p) in ORDERS.iter().zip(&positions) {
        out.push(format!(
            "produced {customer} -> {TOPIC}-{}@{}",
            p.partition, p.offset
        ));
    }

    // Request-reply: read every partition from its start, total per customer.
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for p in brook.partitions(TOPIC).await? {
        let fetched = brook
            .fetch(TOPIC, p.partition, p.log_start_offset, Duration::ZERO)
            .await?;
        out.push(format!(
            "partition {}: {} orders, high watermark {}",
            p.partition,
            fetched.records.len(),
            fetched.high_watermark
        ));
        for record in fetched.records {
            let (customer, cents) = parse(&record)?;
            *totals.entry(customer).or_default() += cents;
        }
    }
    for (customer, cents) in &totals {
        out.push(format!(
            "total {customer}: {}.{:02}",
            cents / 100,
            cents % 100
        ));
    }

    // Streaming: the billing group reads everything, then commits what it processed.
    let billing = Subscribe::group(GROUP, vec![TOPIC.into()], OffsetReset::Earliest);
    let mut stream = brook.subscribe(billing).await?;
    let mut consumed: BTreeMap<TopicPartition, u64> = BTreeMap::new();
    for _ in 0..ORDERS.len() {
        let record = stream
            .next()
            .await
            .ok_or("the subscription ended early")??;
        consumed.insert(
            TopicPartition::new(record.topic.to_string(), record.partition),
            record.offset + 1,
        );
    }
    drop(stream);
    brook.commit(GROUP, consumed.into_iter().collect()).await?;
    for (tp, offset) in brook.committed(GROUP, &[]).await? {
        out.push(format!("committed {GROUP} {tp} -> {offset}"));
    }

    // Live: a subscription from the group's committed offset sees a late order arrive.
    let bob = positions[1].partition;
    let from_committed = StartAt::Committed {
        group: GROUP.into(),
        reset: OffsetReset::Earliest,
    };
    let mut live = brook
        .subscribe(Subscribe::partition(TOPIC, bob, from_committed))
        .await?;
    brook
        .produce(TOPIC, vec![ProduceRecord::keyed("bob", "kiwis 4 50")])
        .await?;
    let late = live.next().await.ok_or("the subscription ended early")??;
    let (customer, cents) = parse(&late)?;
    out.push(format!(
        "live {}-{}@{}: {customer} {}.{:02}",
        late.topic,
        late.partition,
        late.offset,
        cents / 100,
        cents % 100
    ));
    Ok(out)
}

/// (customer, order value in cents) of an order record.
fn parse(record: &brook::ConsumerRecord) -> AppResult<(String, u64)> {
    let text = |bytes: &Option<bytes::Bytes>| -> AppResult<String> {
        let bytes = bytes.as_deref().ok_or("an order without key or value")?;
        Ok(std::str::from_utf8(bytes)?.to_owned())
    };
    let customer = text(&record.key)?;
    let value = text(&record.value)?;
    let fields: Vec<&str> = value.split(' ').collect();
    let [_item, qty, cents] = fields[..] else {
        return Err(format!("malformed order {value:?}").into());
    };
    Ok((customer, qty.parse::<u64>()? * cents.parse::<u64>()?))
}
