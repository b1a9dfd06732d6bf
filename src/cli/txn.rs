//! `brook txn list|describe|producers`: what the server's transaction coordinator knows of
//! transactional ids, and which producers hold a partition's last stable offset back, to find
//! a stuck transaction (as `kafka-transactions.sh` does against Kafka).

use std::io::Write;

use brook_client::proto::{DescribeProducersResponse, DescribeTransactionResponse};
use clap::{Args, Subcommand};
use serde_json::json;

use super::remote::{self, ServerArgs};
use super::{json, table};

#[derive(Debug, Subcommand)]
pub(super) enum TxnCommand {
    /// List transactional ids with their producer id and state.
    List(TxnListArgs),
    /// Show a transactional id: producer, epoch, state, timeout, open partitions and groups.
    Describe(DescribeArgs),
    /// Show a partition's producers, their open transactions and its last stable offset.
    Producers(ProducersArgs),
}

#[derive(Debug, Args)]
pub(super) struct TxnListArgs {
    /// Only these states (Kafka's names: Empty, Ongoing, PrepareCommit, PrepareAbort,
    /// CompleteCommit, CompleteAbort); repeat or comma-separate.
    #[arg(long, value_delimiter = ',')]
    state: Vec<String>,
    #[command(flatten)]
    list: json::ListArgs,
}

#[derive(Debug, Args)]
pub(super) struct DescribeArgs {
    /// Transactional id.
    transactional_id: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
pub(super) struct ProducersArgs {
    /// Topic.
    topic: String,
    /// Partition.
    partition: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

impl TxnCommand {
    pub(super) fn run(self) -> anyhow::Result<std::process::ExitCode> {
        remote::run(async move {
            let mut out = std::io::stdout().lock();
            match self {
                TxnCommand::List(args) => {
                    let admin = args.list.server.connect().await?.admin();
                    let listed = admin.list_transactions(args.state).await?;
                    if args.list.json {
                        let value: Vec<_> = listed
                            .iter()
                            .map(|t| {
                                json!({
                                    "transactional_id": t.transactional_id,
                                    "producer_id": t.producer_id,
                                    "state": t.state,
                                })
                            })
                            .collect();
                        json::print(&mut out, &value.into())?;
                        return Ok(());
                    }
                    let rows: Vec<Vec<String>> = listed
                        .into_iter()
                        .map(|t| vec![t.transactional_id, t.producer_id.to_string(), t.state])
                        .collect();
                    table::write(
                        &mut out,
                        &["TRANSACTIONAL-ID", "PRODUCER-ID", "STATE"],
                        &rows,
                    )?;
                }
                TxnCommand::Describe(args) => {
                    let admin = args.server.connect().await?.admin();
                    let txn = admin.describe_transaction(&args.transactional_id).await?;
                    if args.json {
                        json::print(&mut out, &transaction_json(&txn))?;
                    } else {
                        describe(&mut out, &txn)?;
                    }
                }
                TxnCommand::Producers(args) => {
                    let admin = args.server.connect().await?.admin();
                    let producers = admin
                        .describe_producers(&args.topic, args.partition)
                        .await?;
                    if args.json {
                        json::print(
                            &mut out,
                            &producers_json(&args.topic, args.partition, &producers),
                        )?;
                    } else {
                        producers_table(&mut out, &producers)?;
                    }
                }
            }
            Ok(())
        })
    }
}

fn describe(out: &mut impl Write, txn: &DescribeTransactionResponse) -> anyhow::Result<()> {
    writeln!(out, "transactional id: {}", txn.transactional_id)?;
    writeln!(
        out,
        "producer:         {} (epoch {})",
        txn.producer_id, txn.producer_epoch
    )?;
    writeln!(out, "state:            {}", txn.state)?;
    writeln!(out, "timeout:          {} ms", txn.timeout_ms)?;
    if let Some(start) = txn.start_time_ms {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        writeln!(out, "open for:         {} ms", now.saturating_sub(start))?;
    }
    if txn.internal {
        writeln!(out, "kind:             brook atomic write")?;
    }
    if !txn.groups.is_empty() {
        writeln!(out, "groups:           {}", txn.groups.join(", "))?;
    }
    if !txn.partitions.is_empty() {
        writeln!(out)?;
        let rows: Vec<Vec<String>> = txn
            .partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| vec![t.topic.clone(), p.to_string()])
            })
            .collect();
        table::write(out, &["TOPIC", "PARTITION"], &rows)?;
    }
    Ok(())
}

fn transaction_json(txn: &DescribeTransactionResponse) -> serde_json::Value {
    let partitions: Vec<_> = txn
        .partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| json!({ "topic": t.topic, "partition": p }))
        })
        .collect();
    json!({
        "transactional_id": txn.transactional_id,
        "producer_id": txn.producer_id,
        "producer_epoch": txn.producer_epoch,
        "state": txn.state,
        "timeout_ms": txn.timeout_ms,
        "start_time_ms": txn.start_time_ms,
        "partitions": partitions,
        "groups": txn.groups,
        "internal": txn.internal,
    })
}

fn producers_table(out: &mut impl Write, p: &DescribeProducersResponse) -> anyhow::Result<()> {
    writeln!(out, "last stable offset: {}", p.last_stable_offset)?;
    writeln!(out, "high watermark:     {}", p.high_watermark)?;
    writeln!(out)?;
    let rows: Vec<Vec<String>> = p
        .producers
        .iter()
        .map(|s| {
            vec![
                s.producer_id.to_string(),
                s.producer_epoch.to_string(),
                s.last_sequence.to_string(),
                s.current_txn_start_offset
                    .map_or_else(|| "-".into(), |o| o.to_string()),
            ]
        })
        .collect();
    let header = ["PRODUCER-ID", "EPOCH", "LAST-SEQUENCE", "OPEN-TXN-START"];
    table::write(out, &header, &rows)?;
    Ok(())
}

fn producers_json(topic: &str, partition: u32, p: &DescribeProducersResponse) -> serde_json::Value {
    let producers: Vec<_> = p
        .producers
        .iter()
        .map(|s| {
            json!({
                "producer_id": s.producer_id,
                "producer_epoch": s.producer_epoch,
                "last_sequence": s.last_sequence,
                "last_timestamp": s.last_timestamp_ms,
                "coordinator_epoch": s.coordinator_epoch,
                "current_txn_start_offset": s.current_txn_start_offset,
            })
        })
        .collect();
    json!({
        "topic": topic,
        "partition": partition,
        "last_stable_offset": p.last_stable_offset,
        "high_watermark": p.high_watermark,
        "producers": producers,
    })
}
