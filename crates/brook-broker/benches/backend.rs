//! What the `Backend` seam costs the local log: the same calls made on a `Broker` directly and
//! through `Backend::Local`, which is what every door but Kafka's holds since gateway mode.
//!
//! The seam promises no cost on the local path (a `match` per request; no boxing, no dynamic
//! dispatch, no allocation), so the bench measures where a per-request cost would show most:
//! calls that each carry almost nothing.
//!
//! - **produce**: one 100-byte record per call, 64 calls in flight (durability `none`, so the
//!   disk does not hide the call's own cost);
//! - **fetch**: one record per call (`max_bytes` 1), one call at a time, walking a filled log.
//!
//! The two ways alternate in rounds within one process, so a busy machine slows both alike; the
//! median of each is printed with their ratio. A plain program that prints figures (no
//! criterion): `cargo bench -p brook-broker --bench backend` (under a minute).
//! `BROOK_BENCH_ROUNDS` sets the rounds (default 101).

use std::future::Future;
use std::time::{Duration, Instant};

use brook_broker::{Backend, Broker, NewTopic, ProduceRecord, Produced, Result};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};

const TOPIC: &str = "bench";
/// Calls of each kind per round: short rounds, many of them, so a burst of load elsewhere on
/// the machine lands in a few rounds of either way rather than in one way's long run.
const PRODUCE_CALLS: u64 = 4_000;
const IN_FLIGHT: usize = 64;
const FETCH_CALLS: u64 = 2_000;
// The warm-up's produces fill the log the fetches walk.
const _: () = assert!(2 * PRODUCE_CALLS >= FETCH_CALLS);

/// Which way a call goes.
#[derive(Clone, Copy, Debug)]
enum Way {
    Direct,
    Seam,
}

fn record() -> Vec<ProduceRecord> {
    let mut record = ProduceRecord::value(Bytes::from_static(&[b'x'; 100]));
    record.partition = Some(0);
    vec![record]
}

/// `calls` single-record produces with `IN_FLIGHT` outstanding; calls per second.
async fn produce(broker: &Broker, backend: &Backend, way: Way, calls: u64) -> f64 {
    match way {
        Way::Direct => produce_with(calls, || broker.produce(TOPIC, record())).await,
        Way::Seam => produce_with(calls, || backend.produce(TOPIC, record())).await,
    }
}

async fn produce_with<F, Fut>(calls: u64, call: F) -> f64
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Produced>>,
{
    let started = Instant::now();
    let mut in_flight: FuturesUnordered<Fut> = FuturesUnordered::new();
    for _ in 0..calls {
        if in_flight.len() >= IN_FLIGHT {
            in_flight.next().await.expect("a call").expect("produced");
        }
        in_flight.push(call());
    }
    while let Some(done) = in_flight.next().await {
        done.expect("produced");
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

/// `calls` one-record fetches from the start of the log; calls per second.
async fn fetch(broker: &Broker, backend: &Backend, way: Way, calls: u64) -> f64 {
    let started = Instant::now();
    for offset in 0..calls {
        let fetched = match way {
            Way::Direct => broker.fetch(TOPIC, 0, offset, 1, Duration::ZERO).await,
            Way::Seam => backend.fetch(TOPIC, 0, offset, 1, Duration::ZERO).await,
        }
        .expect("fetched");
        assert!(!fetched.batches.is_empty(), "a record at {offset}");
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn report(what: &str, direct: Vec<f64>, seam: Vec<f64>) {
    let (d, s) = (median(direct), median(seam));
    println!(
        "{what:<8} direct {:>9.0} calls/s   through Backend::Local {:>9.0} calls/s   seam/direct {:.3}",
        d,
        s,
        s / d
    );
}

fn main() {
    let rounds: usize = std::env::var("BROOK_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(101);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let broker = Broker::ephemeral().await.expect("broker");
        broker
            .create_topic(NewTopic::new(TOPIC, 1))
            .await
            .expect("topic");
        let backend = Backend::Local(broker.clone());
        // Warm up both ways; this also fills the log the fetches walk.
        produce(&broker, &backend, Way::Direct, PRODUCE_CALLS).await;
        produce(&broker, &backend, Way::Seam, PRODUCE_CALLS).await;
        fetch(&broker, &backend, Way::Direct, FETCH_CALLS).await;
        fetch(&broker, &backend, Way::Seam, FETCH_CALLS).await;
        let (mut produce_direct, mut produce_seam) = (Vec::new(), Vec::new());
        let (mut fetch_direct, mut fetch_seam) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // Alternate which way goes first, so neither always runs on a warmer machine.
            let ways = if round % 2 == 0 {
                [Way::Direct, Way::Seam]
            } else {
                [Way::Seam, Way::Direct]
            };
            for way in ways {
                let p = produce(&broker, &backend, way, PRODUCE_CALLS).await;
                let f = fetch(&broker, &backend, way, FETCH_CALLS).await;
                match way {
                    Way::Direct => {
                        produce_direct.push(p);
                        fetch_direct.push(f);
                    }
                    Way::Seam => {
                        produce_seam.push(p);
                        fetch_seam.push(f);
                    }
                }
            }
        }
        println!("{rounds} rounds, medians:");
        report("produce", produce_direct, produce_seam);
        report("fetch", fetch_direct, fetch_seam);
        broker.close().await.expect("close");
    });
}
