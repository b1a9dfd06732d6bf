//! `brook bench call`: request-reply calls, beside a plain round trip measured in the same
//! run, so the cost of going through the log is one ratio.
//!
//! `--producers` callers make `--records` calls in all, each caller pacing itself to its share
//! of `--rate` calls/s (a rate above what the callers can do measures their maximum: each then
//! calls back to back). `--consumers` responders in one group echo each request's value
//! (`--record-bytes` of it). Latency is call to reply, timed from each call's send.
//!
//! - `--protocol grpc` (the default): callers use `Call` on their own connections, responders
//!   `Respond` streams on theirs. The baseline is the same callers, count and pacing making
//!   `ListTopics` calls: the same client, connection and server stack without the log, the
//!   responder and the two appends between.
//! - `--protocol embedded` (with `--embedded`): callers and responders use the broker's API in
//!   this process. The baseline hands each value to a task over a channel and gets it back:
//!   what any in-process request-reply costs, without the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use brook::broker::{Broker, Request};
use brook::client::{Answer, CallRequest, Client, IncomingRequest};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use indicatif::ProgressBar;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::protocol::{self, Protocol, ProtocolKind, TopicSpec};
use super::report::{histogram, record, Measured, Report, RunInfo};
use super::workload::Plan;
use super::{BenchArgs, Target};

/// The responders' group.
const GROUP: &str = "brook-bench-call";
/// How long one call may take before the run fails rather than hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What the latency figures time.
pub(crate) const LATENCY: &str =
    "call to reply, per call (request appended, echoed by a responder, \
                           reply appended)";
/// What the gRPC baseline is.
pub(crate) const BASELINE: &str =
    "plain gRPC unary round trips (ListTopics) on the same connections, \
                            callers and pacing";
/// What the in-process baseline is.
const EMBEDDED_BASELINE: &str = "in-process round trips: each value sent to an echo task over a \
                                 channel and back, same callers and pacing";

/// Runs the call bench and its baseline against the target `args` describe.
pub(crate) async fn bench(args: &BenchArgs, plan: &Plan) -> anyhow::Result<Report> {
    let kind = match args.protocol.as_slice() {
        [kind @ (ProtocolKind::Grpc | ProtocolKind::Embedded)] => *kind,
        _ => bail!("brook bench call runs over one --protocol: grpc or embedded"),
    };
    let target = Target::start(args.embedded, args.durability).await?;
    let outcome = measure(args, plan, &target, kind).await;
    target.stop().await?;
    let (calls, baseline, address) = outcome?;
    let info = RunInfo {
        workload: "call",
        protocol: kind.name(),
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
        baseline_kind: match kind {
            ProtocolKind::Embedded => EMBEDDED_BASELINE,
            _ => BASELINE,
        },
        client_runtime: args.client_runtime.name(),
        cpu_idle: crate::machine::cpu_idle(),
        warmup_records: 0,
    };
    Ok(Report::new(info, &calls, &baseline))
}

/// Prepares the topic, runs the calls and the baseline over `kind`, and cleans up; returns
/// both measurements and the address they went to.
async fn measure(
    args: &BenchArgs,
    plan: &Plan,
    target: &Target,
    kind: ProtocolKind,
) -> anyhow::Result<(Measured, Measured, String)> {
    if args.tls_ca.is_some() {
        bail!("--tls-ca: brook bench call does not connect over TLS yet");
    }
    let (door, address) =
        protocol::connect(kind, target, args.server.as_deref(), None, &args.kafka)
            .await
            .context("connecting")?;
    let spec = TopicSpec {
        name: plan.topic.clone(),
        partitions: plan.partitions,
        durability: args.durability,
    };
    let created = door.prepare_topic(&spec).await?;
    let outcome = match (kind, target.broker()) {
        (ProtocolKind::Embedded, Some(broker)) => in_process(plan, broker, args.json).await,
        (ProtocolKind::Embedded, None) => Err(anyhow::anyhow!(
            "--protocol embedded runs the broker in this process: add --embedded"
        )),
        _ => over_grpc(plan, &address, args.json).await,
    };
    clean_up(door.as_ref(), &plan.topic, created).await;
    let (calls, baseline) = outcome?;
    Ok((calls, baseline, address))
}

async fn clean_up(door: &dyn Protocol, topic: &str, created: bool) {
    if created {
        if let Err(e) = door.delete_topic(topic).await {
            tracing::warn!(topic, error = %e, "cannot delete the bench topic");
        }
    }
}

/// Calls through `Call`, answered on `Respond` streams; then the `ListTopics` baseline.
async fn over_grpc(plan: &Plan, url: &str, json: bool) -> anyhow::Result<(Measured, Measured)> {
    let mut responders = JoinSet::new();
    for _ in 0..plan.consumers {
        let client = Client::connect(url).await?;
        let topic = plan.topic.clone();
        responders.spawn(async move { client.respond(&topic, GROUP, echo).await });
    }
    let callers = connect_callers(url, plan.producers).await?;
    let outcome = async {
        warm_up(&callers, &plan.topic).await?;
        let bar = super::report::progress(plan.records, "call", json);
        let (topic, value) = (plan.topic.clone(), payload(plan));
        let bytes = plan.record_bytes as u64;
        let calls = run_callers(plan, &callers, &bar, bytes, move |client: Client| {
            let (topic, value) = (topic.clone(), value.clone());
            async move {
                let request = CallRequest::value(value).with_timeout(CALL_TIMEOUT);
                client.call(&topic, request).await?;
                Ok(())
            }
            .boxed()
        })
        .await?;
        bar.finish_and_clear();
        let baseline = run_callers(
            plan,
            &callers,
            &ProgressBar::hidden(),
            0,
            |client: Client| {
                async move {
                    client.admin().list_topics().await?;
                    Ok(())
                }
                .boxed()
            },
        )
        .await?;
        anyhow::Ok((calls, baseline))
    }
    .await;
    responders.shutdown().await;
    outcome
}

/// Calls through the broker's API, answered by `Broker::respond`; then the channel baseline.
async fn in_process(
    plan: &Plan,
    broker: &Broker,
    json: bool,
) -> anyhow::Result<(Measured, Measured)> {
    let mut responders = JoinSet::new();
    for _ in 0..plan.consumers {
        let (broker, topic) = (broker.clone(), plan.topic.clone());
        responders.spawn(async move {
            broker
                .respond(&topic, GROUP, |request: Request| async move {
                    Ok::<_, String>(brook::broker::Answer {
                        value: request.value,
                        headers: Vec::new(),
                    })
                })
                .await
        });
    }
    let outcome = async {
        let warm = brook::broker::Call::new("warm-up").with_timeout(CALL_TIMEOUT);
        broker
            .call(&plan.topic, warm)
            .await
            .context("warm-up call")?;
        let callers = vec![broker.clone(); plan.producers];
        let bar = super::report::progress(plan.records, "call", json);
        let (topic, value) = (plan.topic.clone(), payload(plan));
        let bytes = plan.record_bytes as u64;
        let calls = run_callers(plan, &callers, &bar, bytes, move |broker: Broker| {
            let (topic, value) = (topic.clone(), value.clone());
            async move {
                let call = brook::broker::Call::new(value).with_timeout(CALL_TIMEOUT);
                broker.call(&topic, call).await?;
                Ok(())
            }
            .boxed()
        })
        .await?;
        bar.finish_and_clear();
        let echo = echo_tasks(plan.consumers);
        let callers = vec![echo; plan.producers];
        let value = payload(plan);
        let baseline = run_callers(plan, &callers, &ProgressBar::hidden(), bytes, move |echo| {
            let value = value.clone();
            async move {
                let (tx, rx) = oneshot::channel();
                echo.send((value, tx))
                    .await
                    .context("the echo task ended")?;
                rx.await.context("the echo task ended")?;
                Ok(())
            }
            .boxed()
        })
        .await?;
        anyhow::Ok((calls, baseline))
    }
    .await;
    responders.shutdown().await;
    outcome
}

/// A channel into `tasks` echo tasks (sharing it, as responders share a topic).
fn echo_tasks(tasks: usize) -> mpsc::Sender<(Bytes, oneshot::Sender<Bytes>)> {
    let (tx, rx) = mpsc::channel::<(Bytes, oneshot::Sender<Bytes>)>(1024);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    for _ in 0..tasks {
        let rx = Arc::clone(&rx);
        tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some((value, reply)) = next else { break };
                let _ = reply.send(value);
            }
        });
    }
    tx
}

/// A request value of `--record-bytes`.
fn payload(plan: &Plan) -> Bytes {
    Bytes::from(vec![b'x'; plan.record_bytes])
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
/// `bytes_per_call` is the value bytes one call moves (0 for a baseline that moves none).
async fn run_callers<C: Clone + Send + 'static>(
    plan: &Plan,
    callers: &[C],
    bar: &ProgressBar,
    bytes_per_call: u64,
    call: impl Fn(C) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync + 'static,
) -> anyhow::Result<Measured> {
    let call = Arc::new(call);
    // Each caller's gap between calls: its share of the rate.
    let period = Duration::from_secs_f64(callers.len() as f64 / plan.rate as f64);
    let started = Instant::now();
    // A task per caller, so callers run on every worker thread.
    let mut tasks = JoinSet::new();
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
