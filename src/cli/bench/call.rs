//! `brook bench call`: request-reply calls through the gRPC door, beside plain unary gRPC round
//! trips measured in the same run, so the cost of going through the log is one ratio.
//!
//! `--producers` callers (each on its own connection) make `--records` calls in all, each caller
//! pacing itself to its share of `--rate` calls/s (a rate above what the callers can do
//! measures their maximum: each then calls back to back). `--consumers` responders, on
//! `Respond` streams of their own connections in one group, echo each request's value
//! (`--record-bytes` of it). Latency is call to reply, timed from each call's send. The
//! baseline is the same callers, count and pacing making `ListTopics` calls: the same client,
//! connection and server stack, without the log, the responder and the two appends between.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use brook_client::{Answer, CallRequest, Client, IncomingRequest};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use indicatif::ProgressBar;

use super::protocol::{self, ProtocolKind, TopicSpec};
use super::report::{histogram, record, Measured, Report, RunInfo};
use super::workload::Plan;
use super::{BenchArgs, Target};

/// The responders' group.
const GROUP: &str = "brook-bench-call";
/// How long one call may take before the run fails rather than hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the latency figures time.
pub const LATENCY: &str = "call to reply, per call (request appended, echoed by a responder, \
                           reply appended)";
/// What the baseline is.
pub const BASELINE: &str = "plain gRPC unary round trips (ListTopics) on the same connections, \
                            callers and pacing";

/// Runs the call bench and its baseline against the target `args` describe.
pub async fn bench(args: &BenchArgs, plan: &Plan) -> anyhow::Result<Report> {
    let target = Target::start(args.embedded, args.durability).await?;
    let outcome = measure(args, plan, &target).await;
    target.stop().await?;
    let (calls, baseline, address) = outcome?;
    let info = RunInfo {
        workload: "call",
        protocol: ProtocolKind::Grpc.name(),
        target: if args.embedded { "embedded" } else { "server" },
        address,
        topic: plan.topic.clone(),
        record_bytes: plan.record_bytes,
        batch: 1,
        producers: plan.producers,
        consumers: plan.consumers,
        partitions: plan.partitions,
        in_flight: 1,
        rate: Some(plan.rate),
        durability: args
            .durability
            .map_or_else(|| "the broker's default".to_owned(), |d| d.to_string()),
        latency: LATENCY,
        baseline_kind: BASELINE,
    };
    Ok(Report::new(info, &calls, &baseline))
}

/// The calls, then the baseline, and the address they went to.
async fn measure(
    args: &BenchArgs,
    plan: &Plan,
    target: &Target,
) -> anyhow::Result<(Measured, Measured, String)> {
    let (door, url) = protocol::connect(
        ProtocolKind::Grpc,
        target,
        args.server.as_deref(),
        &args.kafka,
    )
    .await
    .context("connecting")?;
    let spec = TopicSpec {
        name: plan.topic.clone(),
        partitions: plan.partitions,
        durability: args.durability,
    };
    let created = door.prepare_topic(&spec).await?;
    let mut responders = tokio::task::JoinSet::new();
    for _ in 0..plan.consumers {
        let client = Client::connect(url.as_str()).await?;
        let topic = plan.topic.clone();
        responders.spawn(async move { client.respond(&topic, GROUP, echo).await });
    }
    let callers = connect_callers(&url, plan.producers).await?;
    let outcome = async {
        warm_up(&callers, &plan.topic).await?;
        let bar = super::report::progress(plan.records, "call", args.json);
        let value = Bytes::from(vec![b'x'; plan.record_bytes]);
        let topic = plan.topic.clone();
        let bytes = plan.record_bytes as u64;
        let calls = run_callers(plan, &callers, &bar, bytes, move |client| {
            let (topic, value) = (topic.clone(), value.clone());
            async move {
                let request = CallRequest::value(value).with_timeout(CALL_TIMEOUT);
                client.call(&topic, request).await.map(drop)
            }
            .boxed()
        })
        .await?;
        bar.finish_and_clear();
        let baseline = run_callers(plan, &callers, &ProgressBar::hidden(), 0, |client| {
            async move { client.admin().list_topics().await.map(drop) }.boxed()
        })
        .await?;
        anyhow::Ok((calls, baseline))
    }
    .await;
    responders.shutdown().await;
    if created {
        if let Err(e) = door.delete_topic(&plan.topic).await {
            tracing::warn!(topic = %plan.topic, error = %e, "cannot delete the bench topic");
        }
    }
    let (calls, baseline) = outcome?;
    Ok((calls, baseline, url))
}

async fn echo(request: IncomingRequest) -> Result<Answer, String> {
    Ok(Answer {
        value: request.value,
        headers: Vec::new(),
    })
}

async fn connect_callers(url: &str, callers: usize) -> anyhow::Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(callers);
    for _ in 0..callers {
        clients.push(Client::connect(url).await?);
    }
    Ok(clients)
}

/// One call from each caller, untimed: connections warm, and the responders in their group
/// (a call waits until a member owns its partition).
async fn warm_up(callers: &[Client], topic: &str) -> anyhow::Result<()> {
    for client in callers {
        client
            .call(
                topic,
                CallRequest::value("warm-up").with_timeout(CALL_TIMEOUT),
            )
            .await
            .context("warm-up call (is a responder answering?)")?;
    }
    Ok(())
}

/// Each caller makes its share of the plan's calls with `call`, paced to its share of the
/// rate; the latency of every call, and the time all took.
/// `bytes_per_call` is the value bytes one call moves (0 for the baseline's).
async fn run_callers(
    plan: &Plan,
    callers: &[Client],
    bar: &ProgressBar,
    bytes_per_call: u64,
    call: impl Fn(Client) -> BoxFuture<'static, Result<(), brook_client::ClientError>>
        + Send
        + Sync
        + 'static,
) -> anyhow::Result<Measured> {
    let call = Arc::new(call);
    // Each caller's gap between calls: its share of the rate.
    let period = Duration::from_secs_f64(callers.len() as f64 / plan.rate as f64);
    let started = Instant::now();
    // A task per caller, so callers run on every worker thread.
    let mut tasks = tokio::task::JoinSet::new();
    for (i, client) in callers.iter().enumerate() {
        let (client, call, bar) = (client.clone(), Arc::clone(&call), bar.clone());
        let share = plan.share(i, callers.len());
        tasks.spawn(async move {
            let mut latency = histogram();
            let mut due = tokio::time::Instant::now();
            for _ in 0..share {
                tokio::time::sleep_until(due).await;
                due += period;
                let sent = Instant::now();
                call(client.clone()).await?;
                record(&mut latency, sent.elapsed(), 1);
                bar.inc(1);
            }
            anyhow::Ok(latency)
        });
    }
    let mut latency = histogram();
    while let Some(caller) = tasks.join_next().await {
        latency
            .add(caller.context("a caller task failed")??)
            .context("merging latency histograms")?;
    }
    Ok(Measured {
        records: plan.records,
        bytes: plan.records * bytes_per_call,
        elapsed: started.elapsed(),
        latency,
    })
}
